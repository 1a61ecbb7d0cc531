//! Fine-tuning ALBERT for sequence classification (transformers' AlbertForSequenceClassification:
//! pooled [CLS] -> dropout(classifier_dropout_prob) -> `classifier` Linear), on single sentences or
//! sentence pairs from TSV files; AdamW with warmup and linear decay, evaluation after each epoch
//! (accuracy, F1, MCC), the best epoch saved as a Hugging Face model directory.

pub mod bow;
pub mod data;
pub mod metrics;

use crate::checkpoint;
use crate::config::AlbertConfig;
use crate::model::{Albert, Heads, Mode};
use crate::optim::{self, AdamW, Schedule};
use crate::tokenizer::Tokenizer;
use autograd::{ParamStore, Tape};
use data::Encoded;
use engine::Rng;
use metrics::Scores;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the encoder's weights come from.
#[derive(Clone, Debug)]
pub enum Start {
    /// A model directory (config.json, model.safetensors, tokenizer.json), e.g. a pretraining run.
    Pretrained(PathBuf),
    /// The same architecture as `albert pretrain`'s default (the tiny preset with the shipped
    /// tokenizer), randomly initialised: the comparison that shows what pretraining bought.
    Random,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub start: Start,
    pub train: PathBuf,
    pub dev: PathBuf,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub seed: u64,
    /// Fraction of the steps spent warming up (then linear decay to 0).
    pub warmup: f64,
    pub weight_decay: f64,
    /// Use only the first N training examples (budgets, tests).
    pub max_train: Option<usize>,
    /// Where the best epoch's model goes (None: not saved).
    pub out: Option<PathBuf>,
    pub device: engine::Device,
    /// Progress bar (on a terminal) instead of plain lines.
    pub progress_bar: bool,
    /// No output at all (experiments, tests).
    pub quiet: bool,
}

/// One epoch's dev evaluation.
#[derive(Clone, Debug)]
pub struct EpochResult {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev: Scores,
    pub seconds: f64,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub labels: Vec<String>,
    pub epochs: Vec<EpochResult>,
    /// The epoch with the best dev accuracy (1-based) and its scores.
    pub best_epoch: usize,
    pub best: Scores,
    /// Accuracy of always predicting the training set's most frequent label, on dev.
    pub majority_accuracy: f64,
    pub train_examples: usize,
    pub seconds: f64,
}

/// The built model, its weights and its tokenizer, ready to fine-tune.
struct Prepared {
    model: Albert,
    store: ParamStore,
    tok: Tokenizer,
    config: AlbertConfig,
}

fn err(e: engine::Error) -> String {
    e.to_string()
}

/// The shipped tokenizer (the default pretraining run's vocabulary).
pub fn default_tokenizer() -> Result<Tokenizer, String> {
    let dir = std::env::temp_dir().join(format!("albert-tokenizer-{}", std::process::id()));
    let t = crate::cli_pretrain::resolve_tokenizer(None, &dir);
    let _ = std::fs::remove_dir(&dir);
    t
}

/// Builds a sequence classifier with `num_labels` outputs: the encoder and pooler from `start`
/// (missing pooler / classifier tensors keep their random initialisation; pretraining heads in
/// the checkpoint are ignored), the classifier initialised from `seed`.
fn prepare(start: &Start, num_labels: usize, seed: u64) -> Result<Prepared, String> {
    let heads = Heads::classification(num_labels);
    match start {
        Start::Random => {
            let tok = default_tokenizer()?;
            let mut config = AlbertConfig::preset("tiny")?;
            config.vocab_size = tok.vocab_size();
            let mut store = ParamStore::new();
            let model = Albert::new(&config, heads, &mut store, seed).map_err(err)?;
            Ok(Prepared { model, store, tok, config })
        }
        Start::Pretrained(dir) => {
            let (config, mut tensors) = checkpoint::load_model_dir(dir).map_err(|e| e.to_string())?;
            let tok = Tokenizer::from_dir(dir)?;
            crate::train::check_tokenizer(&tok, &config).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut store = ParamStore::new();
            let model = Albert::new(&config, heads, &mut store, seed).map_err(|e| format!("{}: {e}", dir.display()))?;
            // A head the checkpoint lacks keeps its initial values: hand them to load_into, which
            // then checks everything else (shapes, unknown tensors, missing encoder weights).
            let has =
                |name: &str| tensors.iter().any(|(n, _)| n == name || name.strip_prefix("albert.") == Some(n.as_str()));
            let mut fresh = Vec::new();
            for (_, p) in store.iter() {
                let head = p.name.starts_with("classifier.") || p.name.starts_with("albert.pooler.");
                if head && !has(&p.name) {
                    fresh.push((p.name.clone(), p.value.clone()));
                }
            }
            tensors.extend(fresh);
            checkpoint::load_into(&mut store, tensors, &dir.join(checkpoint::WEIGHTS_FILE))
                .map_err(|e| e.to_string())?;
            Ok(Prepared { model, store, tok, config })
        }
    }
}

/// The config saved with the fine-tuned model: transformers' label maps and class name.
pub fn labelled_config(config: &AlbertConfig, labels: &[String]) -> AlbertConfig {
    let mut c = config.clone();
    let id2label: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
    let label2id: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
    c.extra.insert("id2label".into(), id2label.into());
    c.extra.insert("label2id".into(), label2id.into());
    c.extra.insert("num_labels".into(), labels.len().into());
    c.extra.insert("architectures".into(), serde_json::json!(["AlbertForSequenceClassification"]));
    c.extra.insert("problem_type".into(), "single_label_classification".into());
    c
}

/// Predicted class ids for every example of `enc`.
pub fn predict(
    model: &Albert,
    store: &ParamStore,
    enc: &Encoded,
    pad: u32,
    batch_size: usize,
) -> Result<Vec<usize>, String> {
    let n = model.heads.num_labels.ok_or("the model has no sequence-classification head")?;
    let mut out = Vec::with_capacity(enc.ids.len());
    let rows: Vec<usize> = (0..enc.ids.len()).collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let (inputs, _) = data::batch(enc, chunk, pad)?;
        let tape = Tape::no_grad();
        let e = model.encode(&tape, store, &inputs, &mut Mode::Eval, false).map_err(err)?;
        let pooled = e.pooled.ok_or("the model has no pooler")?;
        let logits = model.classifier_logits(&tape, store, &pooled, &mut Mode::Eval).map_err(err)?;
        out.extend(metrics::argmax_rows(&logits.value().to_vec_f32(), n));
    }
    Ok(out)
}

/// Fine-tunes and evaluates; saves the best epoch to `settings.out`.
pub fn finetune(s: &Settings, say: &dyn Fn(String)) -> Result<Outcome, String> {
    if s.epochs == 0 || s.batch_size == 0 {
        return Err("--epochs and --batch-size must be positive".into());
    }
    if s.max_seq_len < 3 {
        return Err(format!("--max-seq-len {} is too short (at least 3: [CLS] x [SEP])", s.max_seq_len));
    }
    let mut train_set = data::read_tsv(&s.train)?;
    if let Some(n) = s.max_train {
        train_set.examples.truncate(n);
    }
    let dev_set = data::read_tsv(&s.dev)?;
    if train_set.pairs != dev_set.pairs {
        return Err(format!(
            "{} has {} but {} has {}",
            s.train.display(),
            if train_set.pairs { "sentence pairs" } else { "single sentences" },
            s.dev.display(),
            if dev_set.pairs { "sentence pairs" } else { "single sentences" }
        ));
    }
    let labels = data::label_names(&train_set);
    if labels.len() < 2 {
        return Err(format!("{}: only one label ({:?}); classification needs two or more", s.train.display(), labels));
    }
    let train_y = data::label_ids(&train_set, &labels, &s.train)?;
    let dev_y = data::label_ids(&dev_set, &labels, &s.dev)?;
    let Prepared { model, mut store, tok, config } = prepare(&s.start, labels.len(), s.seed)?;
    if s.max_seq_len > config.max_position_embeddings {
        return Err(format!(
            "--max-seq-len {} exceeds the model's max_position_embeddings {}",
            s.max_seq_len, config.max_position_embeddings
        ));
    }
    let special = tok.special()?;
    let train_enc = data::encode(&tok, special, &train_set, train_y, s.max_seq_len);
    let dev_enc = data::encode(&tok, special, &dev_set, dev_y.clone(), s.max_seq_len);
    store.to_device(s.device).map_err(err)?;

    let majority_accuracy = metrics::majority_accuracy(&train_enc.labels, &dev_y, labels.len());

    let steps_per_epoch = train_enc.ids.len().div_ceil(s.batch_size);
    let total = (steps_per_epoch * s.epochs) as u64;
    let schedule = Schedule::new(s.lr, (s.warmup * total as f64).round() as u64, total);
    let mut opt = AdamW::new(s.lr, 0.9, 0.999, 1e-6, s.weight_decay).with_exclusions(&optim::default_exclude());
    let pad = special.pad;
    if !s.quiet {
        say(format!(
            "fine-tuning {} on {} ({} examples{}, labels {:?}), dev {} ({} examples; majority-class accuracy {:.4}): {} epochs x {} steps of {}, AdamW lr {} ({:.0}% warmup, linear decay), classifier dropout {}",
            match &s.start { Start::Random => "a randomly initialised tiny ALBERT".to_string(), Start::Pretrained(d) => d.display().to_string() },
            s.train.display(),
            train_enc.ids.len(),
            if train_set.pairs { ", sentence pairs" } else { "" },
            labels,
            s.dev.display(),
            dev_enc.ids.len(),
            majority_accuracy,
            s.epochs,
            steps_per_epoch,
            s.batch_size,
            s.lr,
            s.warmup * 100.0,
            config.classifier_dropout_prob,
        ));
    }
    let bar = (s.progress_bar && !s.quiet).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let log = |line: String| match &bar {
        Some(b) => b.println(line),
        None if !s.quiet => say(line),
        None => {}
    };
    let t_run = Instant::now();
    let mut shuffle = Rng::new(s.seed ^ 0x5EED_F1E7);
    let mut order: Vec<usize> = (0..train_enc.ids.len()).collect();
    let mut step = 0u64;
    let mut epochs = Vec::new();
    let mut best: Option<(usize, Scores)> = None;
    for epoch in 1..=s.epochs {
        let t0 = Instant::now();
        for i in (1..order.len()).rev() {
            order.swap(i, shuffle.below(i as u64 + 1) as usize);
        }
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in order.chunks(s.batch_size) {
            let (inputs, y) = data::batch(&train_enc, chunk, pad)?;
            let tape = Tape::new();
            let mut rng = Rng::new(s.seed ^ (step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut mode = Mode::Train(&mut rng);
            let enc = model.encode(&tape, &store, &inputs, &mut mode, false).map_err(err)?;
            let pooled = enc.pooled.ok_or("the model has no pooler")?;
            let logits = model.classifier_logits(&tape, &store, &pooled, &mut mode).map_err(err)?;
            let loss = logits.cross_entropy(&y, -100).map_err(err)?;
            let lv = loss.value().item().map_err(err)?;
            if !lv.is_finite() {
                return Err(format!("non-finite loss ({lv}) at step {step} of fine-tuning"));
            }
            tape.backward(&loss, &mut store).map_err(err)?;
            optim::clip_grad_norm(&mut store, 1.0);
            opt.step_with_lr(&mut store, schedule.lr_at(step)).map_err(err)?;
            store.zero_grad();
            step += 1;
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            let msg = format!("epoch {epoch} loss {:.4}", loss_sum / seen as f64);
            match &bar {
                Some(b) => {
                    b.set_position(step);
                    b.set_message(msg);
                }
                None if !s.quiet && step.is_multiple_of(100) => say(format!("step {step}/{total} {msg}")),
                None => {}
            }
        }
        let pred = predict(&model, &store, &dev_enc, pad, 64)?;
        let dev = metrics::scores(&dev_y, &pred, labels.len());
        let r = EpochResult { epoch, train_loss: loss_sum / seen as f64, dev, seconds: t0.elapsed().as_secs_f64() };
        let improved = best.is_none_or(|(_, b)| dev.accuracy > b.accuracy);
        log(format!(
            "epoch {epoch}: train loss {:.4} | dev accuracy {:.4} F1 {:.4} MCC {:.4} | {:.0} s{}",
            r.train_loss,
            dev.accuracy,
            dev.f1,
            dev.mcc,
            r.seconds,
            if improved && s.out.is_some() { " (best so far: saved)" } else { "" }
        ));
        if improved {
            best = Some((epoch, dev));
            if let Some(out) = &s.out {
                save(out, &labelled_config(&config, &labels), &store, &tok)?;
            }
        }
        epochs.push(r);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (best_epoch, best) = best.expect("at least one epoch ran");
    let outcome = Outcome {
        labels,
        epochs,
        best_epoch,
        best,
        majority_accuracy,
        train_examples: train_enc.ids.len(),
        seconds: t_run.elapsed().as_secs_f64(),
    };
    if let Some(out) = &s.out {
        write_epochs_csv(&out.join("finetune_metrics.csv"), &outcome)?;
    }
    Ok(outcome)
}

fn save(out: &Path, config: &AlbertConfig, store: &ParamStore, tok: &Tokenizer) -> Result<(), String> {
    checkpoint::save_model_dir(out, config, store).map_err(|e| e.to_string())?;
    tok.save(out)
}

fn write_epochs_csv(path: &Path, o: &Outcome) -> Result<(), String> {
    let mut text = String::from("epoch,train_loss,dev_accuracy,dev_f1,dev_mcc,seconds\n");
    for e in &o.epochs {
        text += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.1}\n",
            e.epoch, e.train_loss, e.dev.accuracy, e.dev.f1, e.dev.mcc, e.seconds
        );
    }
    checkpoint::write_text_atomically(path, &text).map_err(|e| e.to_string())
}
