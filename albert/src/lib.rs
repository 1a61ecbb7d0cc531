//! ALBERT on our engine: configuration, the model (shared layers, fused factorised embedding,
//! heads), Hugging Face-compatible checkpoints.

pub mod checkpoint;
pub mod cli_bench;
pub mod cli_bench_cuda;
pub mod cli_eval;
pub mod cli_experiment;
pub mod cli_experiment_budget;
pub mod cli_explain;
pub mod cli_finetune;
pub mod cli_forward;
pub mod cli_infer;
pub mod cli_params;
pub mod cli_pretrain;
pub mod cli_tokenizer;
pub mod config;
pub mod data;
#[cfg(feature = "mpi")]
pub mod dist_mpi;
pub mod finetune;

pub use config::{Activation, AlbertConfig, Sharing};
pub mod model;
pub mod optim;
pub mod tokenizer;
pub mod train;

pub use model::{Albert, Heads, Inputs, Mode, OrderHead};
