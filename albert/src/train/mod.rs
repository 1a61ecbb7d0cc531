//! The pretraining loop: batches from the background loader, MLM + sentence-order loss, backward,
//! global-norm clipping, LAMB or AdamW on a warmup + polynomial-decay schedule, gradient
//! accumulation, held-out evaluation, metrics, plots, and crash-safe checkpoints.
//!
//! Checkpoints: each is written completely into `out/.checkpoint-<step>.tmp/` and then renamed to
//! `out/checkpoint-<step>/` (a rename is atomic), so a crash or `kill -9` at any moment leaves the
//! last complete checkpoint intact; `trainer_state.json` is the last file written inside it. The
//! newest checkpoint's model files are also copied to `out/` itself (config.json,
//! model.safetensors, tokenizer.json), each atomically, so `out/` is an HF model directory. Two
//! checkpoints are kept. `--resume` continues bit-exactly: parameters, optimizer moments and the
//! step come from the checkpoint, the loader regenerates and skips the batches already used, and
//! per-step randomness is derived from (seed, step), so no generator state needs saving.

pub mod distributed;
pub mod metrics;
pub mod plots;

use crate::checkpoint;
use crate::config::AlbertConfig;
use crate::data::{build_eval_set, CorpusSource, Loader, LoaderConfig, Objective, PretrainBatch, SpecialIds, Vocab};
use crate::model::{Albert, Heads, Mode, OrderHead};
use crate::optim::{self, AdamW, Lamb, Optimizer, Schedule};
use crate::tokenizer::Tokenizer;
use autograd::{ParamStore, Tape};
pub use distributed::Collective;
use engine::Rng;
use metrics::Row;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Set by Ctrl-C: the loop checkpoints and stops at the end of the current step.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Lamb,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveKind {
    Sop,
    Nsp,
    None,
}

impl ObjectiveKind {
    pub fn data(self) -> Objective {
        match self {
            ObjectiveKind::Sop => Objective::Sop,
            ObjectiveKind::Nsp => Objective::Nsp,
            ObjectiveKind::None => Objective::None,
        }
    }
    fn head(self) -> Option<OrderHead> {
        match self {
            ObjectiveKind::Sop => Some(OrderHead::Sop),
            ObjectiveKind::Nsp => Some(OrderHead::Nsp),
            ObjectiveKind::None => None,
        }
    }
}

/// Everything that determines the training trajectory (saved in trainer_state.json and compared
/// on resume), plus run-only settings marked below.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub objective: ObjectiveKind,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub warmup: usize,
    pub steps: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    /// Micro-batches per optimizer step (effective batch = batch_size * accumulate).
    pub accumulate: usize,
    pub weight_decay: f64,
    pub clip_norm: f64,
    pub seed: u64,
    pub max_predictions: usize,
    pub eval_batches: usize,
    /// Description of the corpus (checked on resume).
    pub corpus: String,
}

/// How a run is driven (not part of the trajectory).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    /// Progress bar when true, plain log lines (every `log_every` steps) otherwise.
    pub progress_bar: bool,
    pub log_every: usize,
    /// Stop (with a checkpoint) after this many steps in this process (tests; time budgets).
    pub stop_after: Option<usize>,
    pub quiet: bool,
    /// Where parameters, activations and optimizer state live (checkpoints are the same files).
    pub device: engine::Device,
    /// bf16 autocast (GPU only): bf16 compute, f32 master weights and optimizer state.
    pub bf16: bool,
    /// Data parallelism (`distributed`): this process is one rank of a group that shares each
    /// global batch; rank 0 alone evaluates and writes checkpoints, metrics and plots.
    pub collective: Option<std::rc::Rc<dyn Collective>>,
}

impl RunOptions {
    /// A run driven by code rather than a person (experiments, tests): a fresh single-process CPU
    /// run into `out` that prints nothing, evaluates and checkpoints every `every` steps and at
    /// the last one. Override fields with struct-update syntax.
    pub fn silent(out: &Path, every: usize) -> RunOptions {
        RunOptions {
            out: out.to_path_buf(),
            resume: None,
            eval_every: every,
            checkpoint_every: every,
            progress_bar: false,
            log_every: every,
            stop_after: None,
            quiet: true,
            device: engine::Device::Cpu,
            bf16: false,
            collective: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    settings: TrainSettings,
    config: serde_json::Value,
    optimizer: String,
}

/// What a finished (or stopped) run reached.
#[derive(Clone, Debug)]
pub struct Summary {
    pub step: usize,
    pub stopped_early: bool,
    pub last_eval: Option<Row>,
    pub train_rows: Vec<Row>,
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub most_frequent_token: String,
}

/// A tokenizer whose special ids were checked once, as the data pipeline's vocabulary.
struct TokVocab {
    tok: Arc<Tokenizer>,
    special: SpecialIds,
}

impl Vocab for TokVocab {
    fn encode(&self, text: &str) -> Vec<u32> {
        self.tok.encode(text)
    }
    fn is_word_start(&self, id: u32) -> bool {
        self.tok.is_word_start(id)
    }
    fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }
    fn special(&self) -> SpecialIds {
        self.special
    }
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Per-step generator for dropout: independent of how many steps ran in this process.
fn step_rng(seed: u64, step: usize) -> Rng {
    Rng::new(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn make_optimizer(s: &TrainSettings) -> Box<dyn Optimizer> {
    let exclude = optim::default_exclude();
    match s.optimizer {
        OptimizerKind::Lamb => Box::new(Lamb::new(s.lr, 0.9, 0.999, 1e-6, s.weight_decay).with_exclusions(&exclude)),
        OptimizerKind::Adamw => Box::new(AdamW::new(s.lr, 0.9, 0.999, 1e-6, s.weight_decay).with_exclusions(&exclude)),
    }
}

/// The newest complete checkpoint under `dir` (or `dir` itself if it is one).
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    if dir.join("trainer_state.json").is_file() {
        return Some(dir.to_path_buf());
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name.strip_prefix("checkpoint-").and_then(|s| s.parse::<usize>().ok()) {
            if e.path().join("trainer_state.json").is_file() && best.as_ref().is_none_or(|b| n > b.0) {
                best = Some((n, e.path()));
            }
        }
    }
    best.map(|b| b.1)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    std::fs::write(&tmp, bytes).map_err(io(tmp.display()))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(io(path.display()))
}

struct Run<'a> {
    settings: &'a TrainSettings,
    run: &'a RunOptions,
    config: &'a AlbertConfig,
    tok: &'a Arc<Tokenizer>,
}

impl Run<'_> {
    fn save_checkpoint(&self, step: usize, store: &ParamStore, opt: &dyn Optimizer) -> Result<(), String> {
        let out = &self.run.out;
        let tmp = out.join(format!(".checkpoint-{step:07}.tmp"));
        let fin = out.join(format!("checkpoint-{step:07}"));
        let _ = std::fs::remove_dir_all(&tmp);
        checkpoint::save_model_dir(&tmp, self.config, store).map_err(|e| e.to_string())?;
        self.tok.save(&tmp)?;
        optim::save_state_file(opt, store, &tmp.join("optimizer.safetensors"))?;
        let state = TrainerState {
            step,
            settings: self.settings.clone(),
            config: serde_json::from_str(&self.config.to_json()).map_err(io("config"))?,
            optimizer: opt.name().to_string(),
        };
        let json = serde_json::to_string_pretty(&state).map_err(io("trainer_state.json"))?;
        write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())?;
        let _ = std::fs::remove_dir_all(&fin);
        std::fs::rename(&tmp, &fin).map_err(io(fin.display()))?;
        // The top-level HF model directory: each file replaced atomically.
        for f in [checkpoint::CONFIG_FILE, checkpoint::WEIGHTS_FILE, "tokenizer.json"] {
            let bytes = std::fs::read(fin.join(f)).map_err(io(fin.join(f).display()))?;
            write_atomic(&out.join(f), &bytes)?;
        }
        // Keep the two newest checkpoints.
        let mut all: Vec<(usize, PathBuf)> = std::fs::read_dir(out)
            .map_err(io(out.display()))?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().strip_prefix("checkpoint-")?.parse::<usize>().ok()?;
                Some((n, e.path()))
            })
            .collect();
        all.sort();
        for (_, p) in all.iter().rev().skip(2) {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(())
    }
}

/// Evaluates the eval set into an "eval" metrics row for `step` (logged with learning rate `lr`).
fn evaluate(
    model: &Albert,
    store: &ParamStore,
    eval: &[PretrainBatch],
    most_frequent: i64,
    step: usize,
    lr: f64,
) -> Result<Row, String> {
    let e = |e: engine::Error| e.to_string();
    let (mut mlm_loss, mut hits, mut base_hits, mut n) = (0.0, 0.0, 0.0, 0usize);
    let (mut order_loss, mut order_hits, mut rows) = (0.0, 0.0, 0usize);
    for b in eval {
        let tape = Tape::no_grad();
        let l = model
            .pretraining_losses(&tape, store, &b.inputs, &b.mlm_labels, &b.order_labels, &mut Mode::Eval)
            .map_err(e)?;
        let targets = l.mlm_targets.ids("eval").map_err(e)?;
        let p = targets.len();
        mlm_loss += l.mlm.value().item().map_err(e)? * p as f64;
        hits += metrics::accuracy(&l.mlm_logits.value().f32_values(), model.config.vocab_size, &targets) * p as f64;
        base_hits += targets.iter().filter(|&&t| t == most_frequent).count() as f64;
        n += p;
        if let (Some(o), Some(ol)) = (&l.order, &l.order_logits) {
            let labels = b.order_labels.ids("eval").map_err(e)?;
            order_loss += o.value().item().map_err(e)? * labels.len() as f64;
            order_hits += metrics::accuracy(&ol.value().f32_values(), 2, &labels) * labels.len() as f64;
            rows += labels.len();
        }
    }
    let d = |x: f64, k: usize| if k == 0 { 0.0 } else { x / k as f64 };
    let (ml, ol) = (d(mlm_loss, n), d(order_loss, rows));
    Ok(Row {
        step,
        kind: "eval",
        loss: ml + ol,
        mlm_loss: ml,
        order_loss: ol,
        mlm_acc: d(hits, n),
        order_acc: d(order_hits, rows),
        mlm_baseline_acc: d(base_hits, n),
        lr,
        grad_norm: 0.0,
        tokens_per_s: 0.0,
    })
}

/// The most frequent non-special token id among the eval set's inputs: the MLM baseline predicts
/// it at every masked position.
fn most_frequent_token(eval: &[PretrainBatch], vocab: usize, special: SpecialIds) -> Result<i64, String> {
    let mut counts = vec![0usize; vocab];
    for b in eval {
        for id in b.inputs.input_ids.ids("eval").map_err(|e| e.to_string())? {
            let id = id as u32;
            if ![special.pad, special.cls, special.sep, special.mask, special.unk].contains(&id)
                && (id as usize) < vocab
            {
                counts[id as usize] += 1;
            }
        }
    }
    Ok(counts.iter().enumerate().max_by_key(|(_, &c)| c).map_or(0, |(i, _)| i as i64))
}

/// Runs (or resumes) pretraining. The tokenizer defines the vocabulary: `config.vocab_size` must
/// equal its size.
pub fn pretrain(
    settings: &TrainSettings,
    run: &RunOptions,
    config: &AlbertConfig,
    tok: Arc<Tokenizer>,
    corpus: CorpusSource,
) -> Result<Summary, String> {
    let special = tok.special().map_err(|e| format!("tokenizer: {e}"))?;
    if tok.vocab_size() != config.vocab_size {
        return Err(format!(
            "the tokenizer has {} pieces but the model's vocab_size is {}",
            tok.vocab_size(),
            config.vocab_size
        ));
    }
    if settings.seq_len > config.max_position_embeddings {
        return Err(format!(
            "seq_len {} exceeds max_position_embeddings {}",
            settings.seq_len, config.max_position_embeddings
        ));
    }
    if settings.steps == 0 || settings.accumulate == 0 || settings.batch_size == 0 {
        return Err("steps, accumulate and batch_size must be positive".into());
    }
    let dist = run.collective.as_deref();
    let (rank, world) = dist.map_or((0, 1), |c| (c.rank(), c.world_size()));
    let lead = rank == 0;
    if settings.batch_size < world {
        return Err(format!("batch size {} is smaller than the {world} ranks sharing it", settings.batch_size));
    }
    std::fs::create_dir_all(&run.out).map_err(io(run.out.display()))?;
    let mut store = ParamStore::new();
    let heads = Heads { order: settings.objective.head(), ..Heads::pretraining() };
    let mut model = Albert::new(config, heads, &mut store, settings.seed).map_err(|e| e.to_string())?;
    let mut opt = make_optimizer(settings);

    // resume
    let mut start = 0;
    if let Some(dir) = &run.resume {
        let ck = latest_checkpoint(dir)
            .ok_or_else(|| format!("--resume {}: no complete checkpoint found there", dir.display()))?;
        let text = std::fs::read_to_string(ck.join("trainer_state.json"))
            .map_err(io(ck.join("trainer_state.json").display()))?;
        let state: TrainerState = serde_json::from_str(&text).map_err(io(ck.join("trainer_state.json").display()))?;
        if state.settings != *settings {
            return Err(format!(
                "--resume {}: the checkpoint was trained with different settings:\n  checkpoint: {:?}\n  this run:   {:?}",
                ck.display(),
                state.settings,
                settings
            ));
        }
        let mine: serde_json::Value = serde_json::from_str(&config.to_json()).map_err(io("config"))?;
        if state.config != mine {
            return Err(format!("--resume {}: the checkpoint's model config differs from this run's", ck.display()));
        }
        let (_, tensors) = checkpoint::load_model_dir(&ck).map_err(|e| e.to_string())?;
        checkpoint::load_into(&mut store, tensors, &ck.join(checkpoint::WEIGHTS_FILE)).map_err(|e| e.to_string())?;
        optim::load_state_file(opt.as_mut(), &store, &ck.join("optimizer.safetensors"))?;
        start = state.step;
        if !run.quiet {
            println!("resuming from {} at step {start}", ck.display());
        }
    }
    // Initialised (or restored) on the host, then moved: the same seed gives the same start on any device.
    store.to_device(run.device).map_err(|e| e.to_string())?;
    if run.bf16 {
        if !run.device.is_cuda() {
            return Err("bf16 autocast needs a CUDA device".into());
        }
        model.compute_dtype = engine::DType::BF16;
    }
    // On the parameters' device: NCCL sums device buffers.
    if let Some(c) = dist {
        distributed::check_same_start(c, &store, start)?;
        if !run.quiet {
            let n = distributed::flat_len(&store, distributed::STEP_STATS);
            println!(
                "data parallel: {world} ranks; one all-reduce per step of {n} f32 ({:.3} MB: {} gradients of {} tensors, \
                 their flags and {} stats)",
                (n * 4) as f64 / 1e6,
                store.numel(),
                store.len(),
                distributed::STEP_STATS
            );
        }
    }
    let vocab: Arc<dyn Vocab> = Arc::new(TokVocab { tok: tok.clone(), special });
    let lcfg = LoaderConfig {
        seq_len: settings.seq_len,
        batch_size: settings.batch_size,
        max_predictions_per_seq: settings.max_predictions,
        objective: settings.objective.data(),
        seed: settings.seed,
        start_at_batch: start * settings.accumulate,
        ..LoaderConfig::default()
    };
    let eval = if lead {
        build_eval_set(&corpus, vocab.clone(), &lcfg, Some(settings.eval_batches)).map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let most_frequent = most_frequent_token(&eval, config.vocab_size, special)?;
    let mut loader = Loader::new(corpus, vocab, lcfg).map_err(|e| e.to_string())?;
    let schedule = Schedule::new(settings.lr, settings.warmup as u64, settings.steps as u64);
    let ctx = Run { settings, run, config, tok: &tok };
    let metrics_path = run.out.join("metrics.csv");
    let mut rows = if start > 0 && lead { metrics::read(&metrics_path, start) } else { Vec::new() };

    let bar = if run.progress_bar && !run.quiet {
        let b = indicatif::ProgressBar::new(settings.steps as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_position(start as u64);
        Some(b)
    } else {
        None
    };
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None if !run.quiet => println!("{line}"),
        None => {}
    };
    let e = |e: engine::Error| e.to_string();
    let t_run = Instant::now();
    let (mut tokens_run, mut step) = (0usize, start);
    let mut stopped_early = false;
    let mut last_eval = None;
    while step < settings.steps {
        let t0 = Instant::now();
        let lr = schedule.lr_at(step as u64);
        let (mut loss, mut mlm_l, mut ord_l, mut mlm_acc, mut ord_acc, mut tokens) = (0.0, 0.0, 0.0, 0.0, 0.0, 0);
        let mut rng = step_rng(distributed::rank_seed(settings.seed, rank), step);
        for _ in 0..settings.accumulate {
            let batch = match loader.next_batch() {
                Some(b) => b.map_err(|e| e.to_string())?,
                None => return Err("the data loader ended unexpectedly".into()),
            };
            // Data parallel: this rank's rows, and the weights that make the ranks' losses sum
            // to the global batch's means.
            let (batch, share) = match dist {
                Some(_) => {
                    let sh = distributed::shard(&batch, rank, world)?;
                    (sh.batch, Some((sh.mlm_weight, sh.order_weight)))
                }
                None => (batch, None),
            };
            let tape = Tape::new();
            let l = model
                .pretraining_losses(
                    &tape,
                    &store,
                    &batch.inputs,
                    &batch.mlm_labels,
                    &batch.order_labels,
                    &mut Mode::Train(&mut rng),
                )
                .map_err(e)?;
            let k = settings.accumulate as f64;
            if let Some((wm, wo)) = share {
                // Stats and loss as this rank's part of the global means; the non-finite check
                // happens after the all-reduce, so every rank stops at the same step.
                let mut part = l.mlm.scale(wm / k).map_err(e)?;
                mlm_l += l.mlm.value().item().map_err(e)? * wm / k;
                let targets = l.mlm_targets.ids("train").map_err(e)?;
                mlm_acc += metrics::accuracy(&l.mlm_logits.value().f32_values(), config.vocab_size, &targets) * wm / k;
                if let (Some(o), Some(ol)) = (&l.order, &l.order_logits) {
                    part = part.add(&o.scale(wo / k).map_err(e)?).map_err(e)?;
                    ord_l += o.value().item().map_err(e)? * wo / k;
                    let labels = batch.order_labels.ids("train").map_err(e)?;
                    ord_acc += metrics::accuracy(&ol.value().f32_values(), 2, &labels) * wo / k;
                }
                loss += part.value().item().map_err(e)?;
                tokens += batch.tokens;
                tape.backward(&part, &mut store).map_err(e)?;
                continue;
            }
            let lv = l.total.value().item().map_err(e)?;
            if !lv.is_finite() {
                say(format!(
                    "step {step}: the loss is {lv}; stopping. The last good checkpoint in {} is kept.",
                    run.out.display()
                ));
                return Err(format!("non-finite loss ({lv}) at step {step}"));
            }
            loss += lv / k;
            mlm_l += l.mlm.value().item().map_err(e)? / k;
            let targets = l.mlm_targets.ids("train").map_err(e)?;
            mlm_acc += metrics::accuracy(&l.mlm_logits.value().f32_values(), config.vocab_size, &targets) / k;
            if let (Some(o), Some(ol)) = (&l.order, &l.order_logits) {
                ord_l += o.value().item().map_err(e)? / k;
                ord_acc +=
                    metrics::accuracy(&ol.value().f32_values(), 2, &batch.order_labels.ids("train").map_err(e)?) / k;
            }
            tokens += batch.tokens;
            // mean over micro-batches: scale the loss before backward
            let total = if settings.accumulate > 1 { l.total.scale(1.0 / k).map_err(e)? } else { l.total.clone() };
            tape.backward(&total, &mut store).map_err(e)?;
        }
        let mut interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if let Some(c) = dist {
            // The step's one collective: gradients, stats and the Ctrl-C flag of every rank.
            let stats: [f64; distributed::STEP_STATS] =
                [loss, mlm_l, ord_l, mlm_acc, ord_acc, tokens as f64, f64::from(u8::from(interrupted))];
            let sum = distributed::all_reduce_step(c, &mut store, &stats)?;
            (loss, mlm_l, ord_l, mlm_acc, ord_acc) = (sum[0], sum[1], sum[2], sum[3], sum[4]);
            tokens = sum[5].round() as usize;
            interrupted = sum[6] > 0.0;
            if !loss.is_finite() {
                say(format!("step {step}: the loss is {loss}; stopping. The last good checkpoint is kept."));
                return Err(format!("non-finite loss ({loss}) at step {step}"));
            }
        }
        let norm = optim::clip_grad_norm(&mut store, settings.clip_norm);
        if !norm.is_finite() {
            say(format!("step {step}: gradient norm is {norm}; stopping. The last good checkpoint is kept."));
            return Err(format!("non-finite gradient norm ({norm}) at step {step}"));
        }
        opt.step(&mut store, lr).map_err(e)?;
        store.zero_grad();
        step += 1;
        tokens_run += tokens;
        let dt = t0.elapsed().as_secs_f64();
        let row = Row {
            step,
            kind: "train",
            loss,
            mlm_loss: mlm_l,
            order_loss: ord_l,
            mlm_acc,
            order_acc: ord_acc,
            mlm_baseline_acc: 0.0,
            lr,
            grad_norm: norm,
            tokens_per_s: tokens as f64 / dt,
        };
        let msg = format!(
            "step {step} loss {loss:.4} mlm {mlm_l:.3} acc {mlm_acc:.3} | sop {ord_l:.3} acc {ord_acc:.3} | {:.0} tok/s",
            tokens_run as f64 / t_run.elapsed().as_secs_f64()
        );
        match &bar {
            Some(b) => {
                b.set_position(step as u64);
                b.set_message(msg);
            }
            None if !run.quiet && (step % run.log_every == 0 || step == settings.steps) => println!("{msg}"),
            None => {}
        }
        rows.push(row);
        let stop_here = run.stop_after.is_some_and(|n| step - start >= n);
        if lead && (step % run.eval_every == 0 || step == settings.steps) {
            let r = evaluate(&model, &store, &eval, most_frequent, step, lr)?;
            let (ma, ba, ml, oa) = (r.mlm_acc, r.mlm_baseline_acc, r.mlm_loss, r.order_acc);
            say(format!(
                "eval @ {step}: MLM acc {ma:.4} (most-frequent-token baseline {ba:.4}, {:.2}x), MLM loss {ml:.3}, SOP acc {oa:.4}",
                if ba > 0.0 { ma / ba } else { 0.0 }
            ));
            rows.push(r.clone());
            last_eval = Some(r);
        }
        let checkpoint_now = step % run.checkpoint_every == 0 || step == settings.steps || interrupted || stop_here;
        if checkpoint_now && lead {
            ctx.save_checkpoint(step, &store, opt.as_ref())?;
            metrics::write(&metrics_path, &rows).map_err(io(metrics_path.display()))?;
            if let Err(err) = plots::write(&run.out, &rows) {
                say(format!("warning: plots not written: {err}"));
            }
        }
        if interrupted || stop_here {
            if interrupted {
                say(format!("interrupted: checkpoint at step {step} saved in {}", run.out.display()));
            }
            stopped_early = step < settings.steps;
            break;
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    let seconds = t_run.elapsed().as_secs_f64();
    Ok(Summary {
        step,
        stopped_early,
        last_eval,
        train_rows: rows.into_iter().filter(|r| r.kind == "train").collect(),
        seconds,
        tokens_per_s: tokens_run as f64 / seconds.max(1e-9),
        most_frequent_token: tok.id_to_piece(most_frequent as u32).unwrap_or("?").to_string(),
    })
}

/// The data pipeline's view of a tokenizer (special ids checked once).
pub fn vocab(tok: Arc<Tokenizer>) -> Result<Arc<dyn Vocab>, String> {
    let special = tok.special()?;
    Ok(Arc::new(TokVocab { tok, special }))
}

/// Evaluates a model on a fixed set of batches; the baseline token is the set's most frequent one.
pub fn evaluate_set(
    model: &Albert,
    store: &ParamStore,
    eval: &[PretrainBatch],
    special: SpecialIds,
) -> Result<Row, String> {
    let most_frequent = most_frequent_token(eval, model.config.vocab_size, special)?;
    evaluate(model, store, eval, most_frequent, 0, 0.0)
}

/// Loads the tokenizer from `dir` and checks it against `config`.
pub fn check_tokenizer(tok: &Tokenizer, config: &AlbertConfig) -> Result<(), String> {
    tok.special()?;
    if tok.vocab_size() != config.vocab_size {
        return Err(format!("tokenizer has {} pieces, model vocab_size is {}", tok.vocab_size(), config.vocab_size));
    }
    Ok(())
}
