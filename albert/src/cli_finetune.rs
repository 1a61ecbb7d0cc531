//! `albert finetune` (sequence classification on TSV data; by default the polarity set in
//! data/polarity/ and the default pretraining run in runs/pretrain/) and `albert classify`.

use crate::cli_forward::load_model;
use crate::finetune::{self, bow, data, Settings, Start};
use crate::model::Mode;
use crate::tokenizer::Tokenizer;
use autograd::Tape;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Where `albert pretrain` writes by default (its `--out`).
pub const DEFAULT_PRETRAINED: &str = "runs/pretrain";
pub const DEFAULT_TRAIN: &str = "data/polarity/train.tsv";
pub const DEFAULT_DEV: &str = "data/polarity/dev.tsv";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Bag-of-words logistic regression (word unigrams + bigrams, AdaGrad, L2).
    Bow,
}

#[derive(clap::Args, Debug)]
pub struct FinetuneArgs {
    /// Model directory to start from (config.json, model.safetensors, tokenizer.json), or
    /// `random` for the default pretraining architecture from random initialisation.
    /// Default: runs/pretrain (what `albert pretrain` writes).
    #[arg(long)]
    pub model: Option<String>,
    /// Training TSV: `sentence<TAB>label` or `a<TAB>b<TAB>label`, header optional.
    /// Default: data/polarity/train.tsv.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Dev TSV (same layout). Default: data/polarity/dev.tsv.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Warmup as a fraction of all steps.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Use only the first N training examples.
    #[arg(long)]
    pub max_train: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the best epoch's model goes (an HF AlbertForSequenceClassification directory).
    #[arg(long, default_value = "runs/finetune")]
    pub out: PathBuf,
    /// Print the final dev metrics as one JSON object (logs go to stderr).
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Train a baseline on the same split instead of ALBERT (`--epochs` passes; `--model` unused).
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// A fine-tuned model directory (written by `albert finetune`).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// The text (and, for a sentence-pair model, the second text).
    #[arg(num_args = 1..=2, required = true)]
    pub texts: Vec<String>,
}

/// The start named by `--model` (default: the default pretraining run, which must exist).
pub fn resolve_start(model: Option<&str>) -> Result<Start, String> {
    match model {
        Some("random") => Ok(Start::Random),
        Some(dir) => Ok(Start::Pretrained(PathBuf::from(dir))),
        None => {
            let dir = PathBuf::from(DEFAULT_PRETRAINED);
            if !dir.join(crate::checkpoint::WEIGHTS_FILE).is_file() {
                return Err(format!(
                    "no pretrained model in {DEFAULT_PRETRAINED}/ (model.safetensors is missing): run `cargo run --release -- pretrain` first, or pass --model DIR (or --model random)"
                ));
            }
            Ok(Start::Pretrained(dir))
        }
    }
}

fn default_file(given: Option<&PathBuf>, default: &str) -> PathBuf {
    given.cloned().unwrap_or_else(|| PathBuf::from(default))
}

pub fn run(a: &FinetuneArgs) -> Result<(), String> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads: {e}"))?;
    }
    let train = default_file(a.train.as_ref(), DEFAULT_TRAIN);
    let dev = default_file(a.dev.as_ref(), DEFAULT_DEV);
    let json = a.json;
    let say = move |line: String| if json { eprintln!("{line}") } else { println!("{line}") };
    if let Some(Baseline::Bow) = a.baseline {
        return run_bow(&train, &dev, a, &say);
    }
    let device = engine::Device::parse(&a.device).map_err(|e| format!("--device: {e}"))?;
    device.check_available().map_err(|e| e.to_string())?;
    let start = resolve_start(a.model.as_deref())?;
    let settings = Settings {
        start: start.clone(),
        train: train.clone(),
        dev: dev.clone(),
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        seed: a.seed,
        warmup: a.warmup,
        weight_decay: a.weight_decay,
        max_train: a.max_train,
        out: Some(a.out.clone()),
        device,
        progress_bar: std::io::stdout().is_terminal() && !json,
        quiet: false,
    };
    let o = finetune::finetune(&settings, &say)?;
    let model = match &start {
        Start::Random => "random".to_string(),
        Start::Pretrained(d) => d.display().to_string(),
    };
    if json {
        let v = serde_json::json!({
            "model": model,
            "dev_accuracy": o.best.accuracy, "dev_f1": o.best.f1, "dev_mcc": o.best.mcc,
            "best_epoch": o.best_epoch, "epochs": a.epochs, "dev_examples": o.best.n,
            "train_examples": o.train_examples, "majority_accuracy": o.majority_accuracy,
            "labels": o.labels, "seconds": o.seconds, "out": a.out.display().to_string(),
        });
        println!("{v}");
    } else {
        println!(
            "best dev accuracy {:.4} (F1 {:.4}, MCC {:.4}) at epoch {} of {}; majority class {:.4}; {:.0} s",
            o.best.accuracy, o.best.f1, o.best.mcc, o.best_epoch, a.epochs, o.majority_accuracy, o.seconds
        );
        println!(
            "the best model is in {} (try: albert classify --model {} \"a gripping, funny film\")",
            a.out.display(),
            a.out.display()
        );
    }
    Ok(())
}

fn run_bow(train: &Path, dev: &Path, a: &FinetuneArgs, say: &dyn Fn(String)) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let r = bow::train_on_split(train, dev, a.max_train, a.epochs, a.seed)?;
    let seconds = t0.elapsed().as_secs_f64();
    say(format!(
        "bag-of-words logistic regression on {} ({} examples), {} epochs",
        train.display(),
        r.train_examples,
        a.epochs
    ));
    let s = &r.dev;
    if a.json {
        let v = serde_json::json!({"model": "bow", "dev_accuracy": s.accuracy, "dev_f1": s.f1, "dev_mcc": s.mcc,
            "dev_examples": s.n, "train_examples": r.train_examples, "epochs": a.epochs, "labels": r.labels, "seconds": seconds});
        println!("{v}");
    } else {
        println!("dev accuracy {:.4} (F1 {:.4}, MCC {:.4}); {:.1} s", s.accuracy, s.f1, s.mcc, seconds);
    }
    Ok(())
}

/// Label probabilities of one text (or pair) under a fine-tuned model directory.
pub fn classify_probabilities(dir: &Path, a: &str, b: Option<&str>) -> Result<Vec<(String, f64)>, String> {
    let (model, store) = load_model(dir)?;
    let n = model.heads.num_labels.ok_or_else(|| {
        format!(
            "{}: the model has no sequence-classification head (classifier.* with a pooler); fine-tune it first",
            dir.display()
        )
    })?;
    let tok = Tokenizer::from_dir(dir)?;
    crate::train::check_tokenizer(&tok, &model.config).map_err(|e| format!("{}: {e}", dir.display()))?;
    let special = tok.special()?;
    let (ids, types) = data::encode_example(&tok, special, a, b, model.config.max_position_embeddings);
    let s = ids.len();
    let e = |e: engine::Error| e.to_string();
    let inputs = crate::model::Inputs {
        input_ids: engine::Tensor::from_i64(ids.iter().map(|&i| i as i64).collect(), &[1, s]).map_err(e)?,
        attention_mask: None,
        token_type_ids: Some(engine::Tensor::from_i64(types.iter().map(|&i| i as i64).collect(), &[1, s]).map_err(e)?),
    };
    let tape = Tape::no_grad();
    let enc = model.encode(&tape, &store, &inputs, &mut Mode::Eval, false).map_err(e)?;
    let pooled = enc.pooled.ok_or("the model has no pooler")?;
    let logits = model.classifier_logits(&tape, &store, &pooled, &mut Mode::Eval).map_err(e)?.value().to_vec_f32();
    let max = logits.iter().fold(f32::MIN, |m, &x| m.max(x));
    let z: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let id2label = model.config.extra.get("id2label").and_then(|m| m.as_object());
    Ok((0..n)
        .map(|i| {
            let name = id2label
                .and_then(|m| m.get(&i.to_string()))
                .and_then(|v| v.as_str())
                .map_or_else(|| format!("LABEL_{i}"), str::to_string);
            (name, ((logits[i] - max) as f64).exp() / z)
        })
        .collect())
}

pub fn classify(a: &ClassifyArgs) -> Result<(), String> {
    let probs = classify_probabilities(&a.model, &a.texts[0], a.texts.get(1).map(String::as_str))?;
    if a.json {
        let m: serde_json::Map<String, serde_json::Value> =
            probs.iter().map(|(l, p)| (l.clone(), (*p).into())).collect();
        let best = probs.iter().max_by(|x, y| x.1.total_cmp(&y.1)).map(|x| x.0.clone());
        println!("{}", serde_json::json!({"label": best, "probabilities": m}));
    } else {
        for (l, p) in &probs {
            println!("{l:<12} {p:.4}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_model_says_how_to_make_one() {
        if Path::new(DEFAULT_PRETRAINED).join(crate::checkpoint::WEIGHTS_FILE).is_file() {
            return; // run from a checkout that has pretrained: nothing to check here
        }
        let err = resolve_start(None).unwrap_err();
        assert!(err.contains("cargo run --release -- pretrain"), "{err}");
        assert!(matches!(resolve_start(Some("random")), Ok(Start::Random)));
    }
}
