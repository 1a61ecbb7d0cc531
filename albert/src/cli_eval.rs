//! `albert eval`: held-out MLM and sentence-order accuracy of a model directory, with the
//! most-frequent-token baseline at the same masked positions. Deterministic for a seed.

use crate::cli_forward::load_model;
use crate::data::{build_eval_set, CorpusSource, LoaderConfig, Objective};
use crate::model::OrderHead;
use crate::tokenizer::Tokenizer;
use crate::train;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Corpus to evaluate on (its held-out documents: every 20th). Default: the embedded corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// At most this many batches.
    #[arg(long, default_value_t = 40)]
    pub batches: usize,
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &EvalArgs) -> Result<(), String> {
    let (model, store) = load_model(&a.model)?;
    let tok = Arc::new(Tokenizer::from_dir(&a.model)?);
    train::check_tokenizer(&tok, &model.config)?;
    if !model.heads.mlm {
        return Err(format!("{}: the model has no MLM head", a.model.display()));
    }
    let objective = match model.heads.order {
        Some(OrderHead::Sop) => Objective::Sop,
        Some(OrderHead::Nsp) => Objective::Nsp,
        None => Objective::None,
    };
    let corpus = a.corpus.as_ref().map_or(CorpusSource::Embedded, CorpusSource::path);
    let cfg = LoaderConfig {
        seq_len: a.seq_len,
        batch_size: a.batch_size,
        objective,
        seed: a.seed,
        ..LoaderConfig::default()
    };
    let vocab = train::vocab(tok.clone())?;
    let eval = build_eval_set(&corpus, vocab, &cfg, Some(a.batches)).map_err(|e| e.to_string())?;
    let r = train::evaluate_set(&model, &store, &eval, tok.special()?)?;
    if a.json {
        let v = serde_json::json!({
            "mlm_accuracy": r.mlm_acc, "mlm_baseline_accuracy": r.mlm_baseline_acc, "mlm_loss": r.mlm_loss,
            "sop_accuracy": if objective == Objective::Sop { Some(r.order_acc) } else { None },
            "nsp_accuracy": if objective == Objective::Nsp { Some(r.order_acc) } else { None },
            "order_loss": r.order_loss, "batches": eval.len(), "corpus": corpus.describe(),
        });
        println!("{v}");
    } else {
        println!("{} held-out batches of {} from {}", eval.len(), a.batch_size, corpus.describe());
        println!(
            "MLM accuracy {:.4} (most-frequent-token baseline {:.4}), MLM loss {:.4}",
            r.mlm_acc, r.mlm_baseline_acc, r.mlm_loss
        );
        if objective != Objective::None {
            println!("{objective:?} accuracy {:.4}, loss {:.4}", r.order_acc, r.order_loss);
        }
    }
    Ok(())
}
