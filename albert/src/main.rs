//! The `albert` command-line tool: pretraining, fine-tuning, the paper's ablations, inference and
//! teaching views; with no command it reports the kernels this CPU runs and checks them live.

mod ops_report;

use albert::{
    cli_bench, cli_eval, cli_experiment, cli_explain, cli_finetune, cli_forward, cli_infer, cli_params, cli_pretrain,
    cli_tokenizer,
};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "albert", version, about = "ALBERT on a from-scratch tensor engine")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// List every op, the kernel path chosen on this CPU, and check each fast kernel against its
    /// scalar reference on random inputs.
    Ops {
        /// Seed for the random check inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Parameter counts per component for AlbertModel and AlbertForPreTraining.
    Params(cli_params::ParamsArgs),
    /// Run a Hugging Face ALBERT checkpoint on ids from a safetensors file; write its outputs.
    Forward(cli_forward::ForwardArgs),
    /// Time forward or a training step of a preset model (median, tokens/s, GFLOP/s).
    Bench(cli_bench::BenchArgs),
    /// Pretrain ALBERT (MLM + SOP). With no arguments: the tiny model on the embedded corpus, ~10 min.
    Pretrain(cli_pretrain::PretrainArgs),
    /// Held-out MLM / SOP accuracy of a model directory.
    Eval(cli_eval::EvalArgs),
    /// Top-k predictions for each [MASK] in a text.
    FillMask(cli_infer::FillMaskArgs),
    /// Pooled and mean-pooled embeddings of texts, as JSON.
    Embed(cli_infer::EmbedArgs),
    /// Fine-tune for sequence classification (default: the polarity set from runs/pretrain).
    Finetune(cli_finetune::FinetuneArgs),
    /// Label probabilities of a text (or a pair) under a fine-tuned model.
    Classify(cli_finetune::ClassifyArgs),
    /// The paper's ablations: pretrain variants with one budget, evaluate, fine-tune, tabulate.
    #[command(subcommand)]
    Experiment(cli_experiment::ExperimentCommand),
    /// One forward pass op by op (shapes, weight ids, FLOPs, bytes, time) and attention maps.
    Explain(cli_explain::ExplainArgs),
    /// Train or inspect tokenizers.
    #[command(subcommand)]
    Tokenizer(cli_tokenizer::TokenizerCommand),
}

/// Training frees and re-allocates the same activation buffers every step. glibc would hand the
/// larger ones back to the kernel (mmap / heap trimming) and fault fresh zeroed pages in again on
/// the next step; keeping them in the heap avoids that churn.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum on 64-bit
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Ops { seed: 0 }) {
        Command::Ops { seed } => ops_report::run(seed),
        Command::Params(args) => cli_params::run(&args),
        Command::Forward(args) => cli_forward::run(&args),
        Command::Bench(args) => cli_bench::run(&args),
        Command::Tokenizer(cmd) => cli_tokenizer::run(&cmd),
        Command::Pretrain(args) => cli_pretrain::run(&args),
        Command::Eval(args) => cli_eval::run(&args),
        Command::FillMask(args) => cli_infer::fill_mask(&args),
        Command::Embed(args) => cli_infer::embed(&args),
        Command::Finetune(args) => cli_finetune::run(&args),
        Command::Classify(args) => cli_finetune::classify(&args),
        Command::Experiment(cmd) => cli_experiment::run(&cmd),
        Command::Explain(args) => cli_explain::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
