//! Shared by the data-parallel tests (`distributed.rs`, `cuda_distributed.rs`): a small corpus,
//! the test model (every dropout 0) and settings, and the loss comparison.
#![allow(dead_code)]

use albert::data::{CorpusSource, Split};
use albert::tokenizer::Tokenizer;
use albert::train::{metrics, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use albert::AlbertConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-dist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The first 40 documents of the embedded corpus as a corpus file.
pub fn small_corpus(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for doc in CorpusSource::Embedded.documents(Split::All).unwrap().take(40) {
        for s in doc.unwrap().sentences.iter().take(40) {
            text.push_str(s);
            text.push('\n');
        }
        text.push('\n');
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p
}

pub fn tokenizer() -> Arc<Tokenizer> {
    Arc::new(Tokenizer::from_dir(&root().join("data/tokenizer")).unwrap())
}

pub fn config(tok: &Tokenizer) -> AlbertConfig {
    AlbertConfig {
        vocab_size: tok.vocab_size(),
        embedding_size: 32,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 128,
        max_position_embeddings: 64,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        classifier_dropout_prob: 0.0,
        ..AlbertConfig::default()
    }
}

pub fn settings(corpus: &Path, steps: usize, accumulate: usize) -> TrainSettings {
    TrainSettings {
        objective: ObjectiveKind::Sop,
        optimizer: OptimizerKind::Adamw,
        lr: 2e-3,
        warmup: 2,
        steps,
        batch_size: 8,
        seq_len: 64,
        accumulate,
        weight_decay: 0.01,
        clip_norm: 1.0,
        seed: 7,
        max_predictions: 10,
        eval_batches: 2,
        corpus: corpus.display().to_string(),
    }
}

pub fn run_opts(out: &Path) -> RunOptions {
    RunOptions::silent(out, 1000)
}

pub fn assert_same_losses(one: &[metrics::Row], many: &[metrics::Row], what: &str) {
    let train = |r: &[metrics::Row]| {
        r.iter().filter(|r| r.kind == "train").map(|r| (r.step, r.loss, r.mlm_acc)).collect::<Vec<_>>()
    };
    let (a, b) = (train(one), train(many));
    assert_eq!(a.len(), b.len(), "{what}: {} vs {} steps", a.len(), b.len());
    for ((s1, l1, acc1), (s2, l2, acc2)) in a.iter().zip(&b) {
        assert_eq!(s1, s2);
        assert!((l1 - l2).abs() <= 1e-5, "{what}: step {s1} loss {l1} (one process) vs {l2}");
        assert!((acc1 - acc2).abs() <= 1e-5, "{what}: step {s1} MLM accuracy {acc1} vs {acc2}");
    }
}
