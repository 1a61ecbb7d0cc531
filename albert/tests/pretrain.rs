//! The trainer end to end on a small corpus: the loss falls, a resumed run is bit-identical to an
//! uninterrupted one, a crash's half-written checkpoint is ignored, a resume with other settings
//! is refused, a diverging run stops with a clear error, and eval / fill-mask / embed run.

use albert::data::{CorpusSource, Split};
use albert::tokenizer::Tokenizer;
use albert::train::{self, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use albert::AlbertConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-pretrain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The first 60 documents of the embedded corpus as a corpus file (3 of them held out).
fn small_corpus(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for doc in CorpusSource::Embedded.documents(Split::All).unwrap().take(60) {
        let doc = doc.unwrap();
        for s in doc.sentences.iter().take(40) {
            text.push_str(s);
            text.push('\n');
        }
        text.push('\n');
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p
}

fn tokenizer() -> Arc<Tokenizer> {
    Arc::new(Tokenizer::from_dir(&root().join("data/tokenizer")).unwrap())
}

fn config(tok: &Tokenizer) -> AlbertConfig {
    AlbertConfig {
        vocab_size: tok.vocab_size(),
        embedding_size: 32,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 128,
        max_position_embeddings: 64,
        ..AlbertConfig::default()
    }
}

fn settings(corpus: &Path, steps: usize) -> TrainSettings {
    TrainSettings {
        objective: ObjectiveKind::Sop,
        optimizer: OptimizerKind::Adamw,
        lr: 2e-3,
        warmup: 2,
        steps,
        batch_size: 8,
        seq_len: 64,
        accumulate: 1,
        weight_decay: 0.01,
        clip_norm: 1.0,
        seed: 7,
        max_predictions: 10,
        eval_batches: 3,
        corpus: corpus.display().to_string(),
    }
}

fn run_opts(out: &Path) -> RunOptions {
    RunOptions::silent(out, 1000)
}

#[test]
fn loss_falls_and_resume_is_bit_exact() {
    let dir = temp("main");
    let corpus = small_corpus(&dir);
    let tok = tokenizer();
    let cfg = config(&tok);
    let src = || CorpusSource::path(&corpus);

    // uninterrupted, 2 micro-batches per step to cover accumulation
    let s = TrainSettings { accumulate: 2, ..settings(&corpus, 30) };
    let a = dir.join("a");
    let full = train::pretrain(&s, &run_opts(&a), &cfg, tok.clone(), src()).unwrap();
    assert_eq!(full.step, 30);
    let first: f64 = full.train_rows[..3].iter().map(|r| r.mlm_loss).sum::<f64>() / 3.0;
    let last: f64 = full.train_rows[27..].iter().map(|r| r.mlm_loss).sum::<f64>() / 3.0;
    assert!(last < first - 0.5, "MLM loss should fall: first {first:.3}, last {last:.3}");

    // interrupted after 13 steps, then resumed to 30
    let b = dir.join("b");
    let part =
        train::pretrain(&s, &RunOptions { stop_after: Some(13), ..run_opts(&b) }, &cfg, tok.clone(), src()).unwrap();
    assert!(part.stopped_early && part.step == 13);
    // a crash while writing a later checkpoint leaves only a temp folder: it must be ignored
    std::fs::create_dir_all(b.join(".checkpoint-0000014.tmp")).unwrap();
    std::fs::write(b.join(".checkpoint-0000014.tmp/model.safetensors"), b"partial").unwrap();
    assert!(train::latest_checkpoint(&b).unwrap().ends_with("checkpoint-0000013"));
    let resumed =
        train::pretrain(&s, &RunOptions { resume: Some(b.clone()), ..run_opts(&b) }, &cfg, tok.clone(), src()).unwrap();
    assert_eq!(resumed.step, 30);
    let tail = |rows: &[train::metrics::Row]| {
        rows.iter().filter(|r| r.step > 13).map(|r| r.loss.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(
        tail(&resumed.train_rows),
        tail(&full.train_rows),
        "the resumed losses must equal the uninterrupted run's"
    );
    let w = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(w(&a) == w(&b), "final weights differ after resume");
    // optimizer moments too (compared tensor by tensor: the file's metadata map has no fixed order)
    let state = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut t: Vec<(String, Vec<u8>)> =
            albert::checkpoint::read_tensors(&d.join("checkpoint-0000030/optimizer.safetensors"))
                .unwrap()
                .into_iter()
                .map(|(n, t)| (n, t.to_bytes()))
                .collect();
        t.sort();
        t
    };
    assert!(state(&a) == state(&b), "optimizer state differs after resume");
    for f in ["config.json", "tokenizer.json", "metrics.csv", "loss.png", "accuracy.png"] {
        assert!(b.join(f).is_file(), "{f} missing");
    }

    // resuming with other settings is refused, naming the difference
    let other = TrainSettings { lr: 1e-3, ..s.clone() };
    let err =
        train::pretrain(&other, &RunOptions { resume: Some(b.clone()), ..run_opts(&b) }, &cfg, tok.clone(), src())
            .unwrap_err();
    assert!(err.contains("different settings"), "{err}");

    // the CLI commands that read a trained model directory
    let exe = env!("CARGO_BIN_EXE_albert");
    let out = std::process::Command::new(exe)
        .args(["eval", "--json", "--seq-len", "64", "--batch-size", "4", "--batches", "2", "--model"])
        .arg(&a)
        .arg("--corpus")
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["mlm_accuracy", "mlm_baseline_accuracy", "mlm_loss", "sop_accuracy"] {
        assert!(v[k].is_number(), "{k} in {v}");
    }
    let out = std::process::Command::new(exe)
        .args(["fill-mask", "--json", "--top-k", "3", "--model"])
        .arg(&a)
        .arg("the whale swam [MASK] the ship")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["candidates"].as_array().unwrap().len(), 3);
    let out = std::process::Command::new(exe)
        .args(["embed", "--model"])
        .arg(&a)
        .args(["call me ishmael", "the union is strong"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["mean_pooled"].as_array().unwrap().len(), 64);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_stops_and_keeps_its_checkpoint() {
    let dir = temp("nan");
    let corpus = small_corpus(&dir);
    let tok = tokenizer();
    let cfg = config(&tok);
    let out = dir.join("run");
    // Warmup makes step 0's learning rate 0, so checkpoint 1 is good; then lr 5e29 blows up.
    let bad = TrainSettings { lr: 1e30, ..settings(&corpus, 6) };
    let opts = RunOptions { checkpoint_every: 1, ..run_opts(&out) };
    let err = train::pretrain(&bad, &opts, &cfg, tok, CorpusSource::path(&corpus)).unwrap_err();
    assert!(err.contains("non-finite"), "{err}");
    let ck = train::latest_checkpoint(&out).unwrap();
    let (_, store) = albert::cli_forward::load_model(&ck).unwrap();
    for (_, p) in store.iter() {
        assert!(p.value.to_vec_f32().iter().all(|x| x.is_finite()), "{} in {} is not finite", p.name, ck.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
