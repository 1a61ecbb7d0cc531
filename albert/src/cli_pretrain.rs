//! `albert pretrain`: the main job. With no arguments it pretrains the `tiny` ALBERT on the corpus
//! embedded in the binary with the tokenizer trained on it, for about ten minutes on 2 cores, and
//! shows held-out MLM and SOP accuracy against the most-frequent-token baseline.

use crate::config::AlbertConfig;
use crate::data::CorpusSource;
use crate::tokenizer::Tokenizer;
use crate::train::{self, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// The tokenizer trained on the embedded corpus (`albert tokenizer train --corpus data/corpus.txt.gz
/// --vocab-size 8000 --out data/tokenizer`), shipped with it.
pub static DEFAULT_TOKENIZER_JSON: &[u8] = include_bytes!("../../data/tokenizer/tokenizer.json");

#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// Corpus: one sentence per line, a blank line between documents; a file or a folder (.gz ok).
    /// Default: the embedded corpus (State of the Union addresses + Moby-Dick).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Directory with tokenizer.json or spiece.model. Default: the one trained on the embedded corpus.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// base, large, xlarge, xxlarge or tiny (default tiny; vocab_size follows the tokenizer).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A config.json (vocab_size must match the tokenizer).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Micro-batches per optimizer step (effective batch = batch-size x accumulate).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Peak learning rate (default 1e-3 for AdamW, 0.00176 for LAMB).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warmup steps (default 6% of --steps).
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adamw)]
    pub optimizer: OptimizerKind,
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Sop)]
    pub objective: ObjectiveKind,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    #[arg(long, default_value = "runs/pretrain")]
    pub out: PathBuf,
    /// Continue from the newest checkpoint in this directory (a run's --out, or a checkpoint-N).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long, default_value_t = 250)]
    pub eval_every: usize,
    /// Held-out batches per evaluation.
    #[arg(long, default_value_t = 40)]
    pub eval_batches: usize,
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// bf16 autocast on the GPU: bf16 weights and activations, f32 master weights, optimizer
    /// state and reductions.
    #[arg(long)]
    pub bf16: bool,
    /// Data-parallel training under mpirun (build with `--features mpi`): every rank computes
    /// the gradient of its share of each global batch of --batch-size rows; rank 0 writes the
    /// outputs. With --device cuda, one GPU per rank (its local rank) and NCCL sums the gradients.
    #[arg(long)]
    pub distributed: bool,
    /// Seconds a collective may wait for the other ranks before the job is stopped (a dead or
    /// hung rank); covers rank 0's evaluations and checkpoints, which the others wait for.
    #[arg(long, default_value_t = 900.0)]
    pub collective_timeout: f64,
    /// Stop (with a checkpoint) after this many steps in this run; continue with --resume.
    #[arg(long)]
    pub stop_after: Option<usize>,
}

/// The process group of a `--distributed` run: kept alive for the whole run (MPI finalises when
/// it drops) and the collective the trainer sums through.
type Group = (Option<Box<dyn std::any::Any>>, Option<std::rc::Rc<dyn train::Collective>>, usize);

#[cfg(feature = "mpi")]
fn join_group(a: &PretrainArgs, device: &mut engine::Device) -> Result<Group, String> {
    if !a.distributed {
        return Ok((None, None, 0));
    }
    let timeout = std::time::Duration::from_secs_f64(a.collective_timeout.max(0.001));
    let mpi = std::rc::Rc::new(crate::dist_mpi::Mpi::init(timeout)?);
    let rank = train::Collective::rank(&*mpi);
    let collective: std::rc::Rc<dyn train::Collective> = if device.is_cuda() {
        // One GPU per rank: --device cuda picks the local rank's GPU, cuda:N forces N.
        if a.device == "cuda" {
            *device = engine::Device::Cuda(mpi.local_rank());
            device.check_available().map_err(|e| format!("rank {rank}: {e}"))?;
        }
        let engine::Device::Cuda(ordinal) = *device else { unreachable!("checked is_cuda") };
        std::rc::Rc::new(mpi.nccl(ordinal, timeout)?)
    } else {
        mpi.clone()
    };
    Ok((Some(Box::new(mpi)), Some(collective), rank))
}

#[cfg(not(feature = "mpi"))]
fn join_group(a: &PretrainArgs, _device: &mut engine::Device) -> Result<Group, String> {
    if a.distributed {
        return Err("--distributed: this albert was built without MPI; rebuild with \
                    `cargo build --release --features mpi` (needs an MPI library, e.g. Debian's libopenmpi-dev)"
            .into());
    }
    Ok((None, None, 0))
}

/// The tokenizer for a run: `--tokenizer DIR`, or the shipped default written into `out`.
pub fn resolve_tokenizer(dir: Option<&PathBuf>, out: &std::path::Path) -> Result<Tokenizer, String> {
    match dir {
        Some(d) => Tokenizer::from_dir(d),
        None => {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            // One file per process: the ranks of a distributed run may share `out`.
            let path = out.join(format!(".default-tokenizer-{}.json", std::process::id()));
            std::fs::write(&path, DEFAULT_TOKENIZER_JSON).map_err(|e| format!("{}: {e}", path.display()))?;
            let t = Tokenizer::from_tokenizer_json(&path);
            let _ = std::fs::remove_file(&path);
            t
        }
    }
}

pub fn run(a: &PretrainArgs) -> Result<(), String> {
    let mut device = engine::Device::parse(&a.device).map_err(|e| format!("--device: {e}"))?;
    device.check_available().map_err(|e| e.to_string())?;
    let (_group, collective, rank) = join_group(a, &mut device)?;
    let world = collective.as_ref().map_or(1, |c| c.world_size());
    if a.bf16 && !device.is_cuda() {
        return Err("--bf16 needs --device cuda (bf16 is a storage format on the CPU)".into());
    }
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads: {e}"))?;
    }
    let tok = Arc::new(resolve_tokenizer(a.tokenizer.as_ref(), &a.out)?);
    let mut config = match &a.config {
        Some(p) => AlbertConfig::from_file(p)?,
        None => AlbertConfig::preset(a.preset.as_deref().unwrap_or("tiny"))?,
    };
    if a.config.is_none() {
        config.vocab_size = tok.vocab_size();
        config.max_position_embeddings = config.max_position_embeddings.max(a.seq_len);
    }
    config.validate()?;
    train::check_tokenizer(&tok, &config)?;
    let corpus = match &a.corpus {
        Some(p) => CorpusSource::path(p),
        None => CorpusSource::Embedded,
    };
    let lr = a.lr.unwrap_or(match a.optimizer {
        OptimizerKind::Adamw => 1e-3,
        OptimizerKind::Lamb => 0.00176,
    });
    let settings = TrainSettings {
        objective: a.objective,
        optimizer: a.optimizer,
        lr,
        warmup: a.warmup.unwrap_or(a.steps * 6 / 100),
        steps: a.steps,
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        accumulate: a.accumulate,
        weight_decay: a.weight_decay,
        clip_norm: 1.0,
        seed: a.seed,
        max_predictions: 20,
        eval_batches: a.eval_batches,
        corpus: corpus.describe(),
    };
    let run = RunOptions {
        out: a.out.clone(),
        resume: a.resume.clone(),
        eval_every: a.eval_every.max(1),
        checkpoint_every: a.checkpoint_every.max(1),
        progress_bar: std::io::stdout().is_terminal() && collective.is_none(),
        log_every: 50,
        stop_after: a.stop_after,
        quiet: rank != 0,
        device,
        bf16: a.bf16,
        collective,
    };
    ctrlc::set_handler(|| {
        if train::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("second Ctrl-C: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("Ctrl-C: finishing this step and writing a checkpoint (press again to quit now)");
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    if rank != 0 {
        let s = train::pretrain(&settings, &run, &config, tok, corpus)?;
        if s.stopped_early {
            eprintln!("rank {rank}: stopped at step {}", s.step);
        }
        return Ok(());
    }
    if world > 1 {
        println!("data parallel: {world} ranks share each global batch of {} rows", settings.batch_size);
    }
    println!(
        "pretraining {} (E {} H {} L {} heads {} I {} V {}, sharing {}) on {}: {} steps of {} x {} tokens, {:?} lr {lr}, {} threads",
        a.preset.as_deref().unwrap_or(if a.config.is_some() { "config" } else { "tiny" }),
        config.embedding_size,
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
        config.vocab_size,
        config.sharing,
        settings.corpus,
        settings.steps,
        settings.batch_size * settings.accumulate,
        settings.seq_len,
        settings.optimizer,
        rayon::current_num_threads()
    );
    let s = train::pretrain(&settings, &run, &config, tok, corpus)?;
    println!("\n== summary ({} steps in {:.0} s, {:.0} tokens/s)", s.step, s.seconds, s.tokens_per_s);
    if let Some(e) = &s.last_eval {
        let ratio = if e.mlm_baseline_acc > 0.0 { e.mlm_acc / e.mlm_baseline_acc } else { 0.0 };
        println!(
            "held-out MLM accuracy {:.4} vs most-frequent-token baseline {:.4} ({:?}): {ratio:.2}x; MLM loss {:.3}",
            e.mlm_acc, e.mlm_baseline_acc, s.most_frequent_token, e.mlm_loss
        );
        println!("held-out {:?} accuracy {:.4} (loss {:.3})", a.objective, e.order_acc, e.order_loss);
    }
    if s.stopped_early {
        println!("stopped early at step {}; continue with --resume {}", s.step, a.out.display());
    }
    println!("model, tokenizer, optimizer state, metrics.csv, loss.png and accuracy.png are in {}", a.out.display());
    Ok(())
}
