//! Data-parallel pretraining: N ranks sharing a global batch of B rows give the losses of one
//! process with batch B (same data order, same seed) to 1e-5.
//! - in process: two ranks as threads ([`ThreadGroup`]), always run;
//! - MPI: `mpirun -np 2` on the built binary over loopback (needs `--features mpi` and mpirun;
//!   skipped with a notice otherwise, unless REQUIRE_MPI=1), including a resume with another
//!   number of ranks and a rank that stops responding (the job must stop, not hang, and the last
//!   checkpoint must stay intact). The NCCL world of one is in `cuda_distributed.rs`.
//!
//! The test model has every dropout at 0 (the presets keep 0.1 on the sentence-order head's pooled
//! output): with dropout the ranks draw their own masks and match one process only in
//! distribution.

mod dist_common;

use albert::data::CorpusSource;
use albert::train::distributed::{ThreadGroup, Watchdog};
use albert::train::{self, metrics, RunOptions};
use dist_common::{assert_same_losses, config, root, run_opts, settings, small_corpus, temp, tokenizer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn two_thread_ranks_match_one_process() {
    let dir = temp("threads");
    let corpus = small_corpus(&dir);
    let tok = tokenizer();
    let cfg = config(&tok);
    for accumulate in [1, 2] {
        let s = settings(&corpus, 5, accumulate);
        let one = train::pretrain(
            &s,
            &run_opts(&dir.join(format!("one{accumulate}"))),
            &cfg,
            tok.clone(),
            CorpusSource::path(&corpus),
        )
        .unwrap();
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .enumerate()
            .map(|(rank, g)| {
                let (s, cfg, tok, corpus) = (s.clone(), cfg.clone(), tok.clone(), corpus.clone());
                let out = dir.join(format!("rank{rank}-{accumulate}"));
                std::thread::spawn(move || {
                    let run = RunOptions { collective: Some(Rc::new(g)), ..run_opts(&out) };
                    train::pretrain(&s, &run, &cfg, tok, CorpusSource::path(&corpus)).unwrap().train_rows
                })
            })
            .collect();
        let rows: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_same_losses(&one.train_rows, &rows[0], &format!("2 thread ranks, accumulate {accumulate}"));
        // Only rank 0 writes the outputs.
        assert!(dir.join(format!("rank0-{accumulate}/checkpoint-0000005/trainer_state.json")).is_file());
        let rank1 = dir.join(format!("rank1-{accumulate}"));
        let written: Vec<_> = std::fs::read_dir(&rank1).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(written.is_empty(), "rank 1 wrote {written:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn watchdog_names_the_stalled_collective() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let dog = Watchdog::spawn(
        Duration::from_millis(100),
        Box::new(move |msg| {
            let _ = tx.lock().unwrap().send(msg.to_string());
            // The real handlers abort the job; here the thread just stops.
            loop {
                std::thread::park();
            }
        }),
    );
    // A collective that finishes in time does not fire it.
    dog.guard(|| "quick call".into(), || std::thread::sleep(Duration::from_millis(10)));
    assert!(rx.try_recv().is_err());
    let waiter = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(30)));
    dog.guard(|| "rank 0: all-reduce #2".into(), || std::thread::sleep(Duration::from_millis(600)));
    let msg = waiter.join().unwrap().expect("the watchdog fired");
    assert!(msg.starts_with("rank 0: all-reduce #2 did not complete within 0.1 s"), "{msg}");
    // Its thread is parked in the handler: do not join it.
    std::mem::forget(dog);
}

#[test]
fn distributed_without_the_mpi_feature_says_how_to_build() {
    if cfg!(feature = "mpi") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(["pretrain", "--distributed", "--steps", "1", "--out"])
        .arg(temp("nofeature"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built without MPI") && err.contains("--features mpi"), "{err}");
}

// ------------------------------------------------------------------------------------ MPI

fn mpirun() -> Option<PathBuf> {
    let require = std::env::var("REQUIRE_MPI").is_ok_and(|v| v == "1");
    if !cfg!(feature = "mpi") {
        assert!(!require, "REQUIRE_MPI=1 but the test was built without --features mpi");
        eprintln!("skipped: built without the `mpi` feature (cargo test -p albert --features mpi)");
        return None;
    }
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("mpirun")).find(|f| f.is_file()));
    if found.is_none() {
        assert!(!require, "REQUIRE_MPI=1 but mpirun is not on the PATH");
        eprintln!("skipped: mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)");
    }
    found
}

/// `albert pretrain` arguments for the test model, corpus and tokenizer.
fn pretrain_args(dir: &Path, out: &str, steps: usize) -> Vec<String> {
    let tok = tokenizer();
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, config(&tok).to_json()).unwrap();
    let corpus = dir.join("corpus.txt");
    if !corpus.is_file() {
        small_corpus(dir);
    }
    let mut a: Vec<String> = ["pretrain", "--tokenizer"].map(String::from).to_vec();
    a.push(root().join("data/tokenizer").display().to_string());
    a.extend(["--config".into(), cfg_path.display().to_string(), "--corpus".into(), corpus.display().to_string()]);
    let rest = format!(
        "--steps {steps} --batch-size 8 --seq-len 64 --lr 2e-3 --warmup 2 --seed 7 --eval-every 1000 \
         --eval-batches 2 --checkpoint-every 2 --threads 1 --out {}",
        dir.join(out).display()
    );
    a.extend(rest.split_whitespace().map(String::from));
    a
}

fn mpi_command(mpirun: &Path, np: usize, mpirun_args: &[&str]) -> Command {
    let mut c = Command::new(mpirun);
    c.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", &np.to_string()]);
    c.args(mpirun_args);
    c.arg(env!("CARGO_BIN_EXE_albert"));
    c
}

fn run(mut c: Command, what: &str) -> std::process::Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn rows(dir: &Path, out: &str) -> Vec<metrics::Row> {
    metrics::read(&dir.join(out).join("metrics.csv"), usize::MAX)
}

#[test]
fn mpirun_two_ranks_match_one_process_and_resume_with_one() {
    let Some(mpirun) = mpirun() else { return };
    let dir = temp("mpi");
    let bin = env!("CARGO_BIN_EXE_albert");

    let mut one = Command::new(bin);
    one.args(pretrain_args(&dir, "one", 6));
    run(one, "one process");

    let mut two = mpi_command(&mpirun, 2, &[]);
    two.args(pretrain_args(&dir, "two", 6)).arg("--distributed");
    let out = run(two, "mpirun -np 2");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data parallel: 2 ranks"), "{text}");
    assert_same_losses(&rows(&dir, "one"), &rows(&dir, "two"), "mpirun -np 2");

    // Two ranks stop at step 3 (checkpoint), one process finishes: the same trajectory.
    let mut first = mpi_command(&mpirun, 2, &[]);
    first.args(pretrain_args(&dir, "resumed", 6)).args(["--distributed", "--stop-after", "3"]);
    run(first, "mpirun -np 2 --stop-after 3");
    assert!(dir.join("resumed/checkpoint-0000003/trainer_state.json").is_file());
    let mut rest = Command::new(bin);
    rest.args(pretrain_args(&dir, "resumed", 6)).arg("--resume").arg(dir.join("resumed"));
    run(rest, "resume with one process");
    assert_same_losses(&rows(&dir, "one"), &rows(&dir, "resumed"), "-np 2 then resumed by one process");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mpirun_stalled_rank_stops_the_job_and_keeps_the_checkpoint() {
    let Some(mpirun) = mpirun() else { return };
    let dir = temp("mpi-stall");
    // Rank 1 stops responding before all-reduce #4: #1 is the start check, #2 and #3 steps 1 and
    // 2 (checkpoint-2 is written), #4 step 3.
    let mut c = mpi_command(&mpirun, 2, &["-x", "ALBERT_TEST_STALL=1:4"]);
    c.args(pretrain_args(&dir, "run", 6)).args(["--distributed", "--collective-timeout", "3"]);
    let t0 = Instant::now();
    let out = c.output().expect("mpirun starts");
    let waited = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job should fail; stderr:\n{stderr}");
    assert!(waited < Duration::from_secs(120), "the job took {waited:?} to stop");
    assert!(stderr.contains("did not complete within 3 s"), "no watchdog message in:\n{stderr}");
    let ck = dir.join("run/checkpoint-0000002");
    assert!(ck.join("trainer_state.json").is_file(), "checkpoint-2 is missing");
    assert!(ck.join("model.safetensors").is_file());
    assert!(!dir.join("run/checkpoint-0000004").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
