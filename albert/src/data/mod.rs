//! Pretraining data: corpus streaming, instance creation (SOP/NSP, n-gram masking), batching.
//!
//! The pipeline, each stage in its own file:
//! - [`corpus`]: the standard corpus format (one sentence per line, a blank line between documents;
//!   a file or a folder of files, `.gz` decompressed on the fly), read one document at a time; the
//!   default corpus embedded in the binary; the fixed held-out split (document index % 20 == 0).
//! - [`instances`]: `create_instances_from_document` and `create_masked_lm_predictions` as in the
//!   official ALBERT `create_pretraining_data.py` (reference: docs `albert.md` §1.8), with every random
//!   draw taken from our seeded [`engine::Rng`] so a seed reproduces everything.
//! - [`loader`]: tokenises documents as they stream in, builds instances in bounded pools and hands
//!   padded [`loader::PretrainBatch`]es to the trainer from a background thread; the held-out
//!   evaluation set.
//!
//! The tokenizer reaches this module only through the [`Vocab`] trait, so tests can use a fake one.

pub mod corpus;
pub mod instances;
pub mod loader;

use std::fmt;

pub use corpus::{CorpusCounts, CorpusSource, Document, Documents, Split, HELD_OUT_EVERY};
pub use instances::{
    create_instances_from_document, create_masked_lm_predictions, Instance, InstanceConfig, Objective,
};
pub use loader::{build_eval_set, Loader, LoaderConfig, PretrainBatch, IGNORE_LABEL};

/// The ids of the special pieces (`[CLS]`, `[SEP]`, `[MASK]`, padding, unknown), as the tokenizer reports them.
pub use crate::tokenizer::SpecialIds;

/// What the data pipeline needs from a tokenizer.
///
/// `Send + Sync` because documents are tokenised on a background thread (and in parallel there).
pub trait Vocab: Send + Sync {
    /// The ids of one sentence (no special tokens added).
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Whether the piece begins a word (SentencePiece: starts with `▁`, or is punctuation, ...: the
    /// official `_is_start_piece_sp`). Whole-word masking groups a word start with the non-start
    /// pieces that follow it.
    fn is_word_start(&self, id: u32) -> bool;
    /// Number of ids; the 10% "random token" replacement draws uniformly from `0..vocab_size`.
    fn vocab_size(&self) -> usize;
    /// The special ids (`[CLS]`, `[SEP]`, `[MASK]`, padding, unknown).
    fn special(&self) -> SpecialIds;
}

/// Every error of the data pipeline. Messages name the file (and line) or the setting at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataError {
    /// A file or folder could not be found, listed, opened or read.
    Io(String),
    /// Unusable corpus content: bytes that are not UTF-8, no documents, no training or held-out documents.
    Corpus(String),
    /// An invalid setting or vocabulary (e.g. seq_len too small, a special id out of range).
    Config(String),
    /// The background loader thread stopped without saying why (it panicked).
    Loader(String),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io(m) | DataError::Corpus(m) | DataError::Config(m) | DataError::Loader(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DataError {}

impl From<DataError> for engine::Error {
    fn from(e: DataError) -> engine::Error {
        engine::Error::Invalid(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
