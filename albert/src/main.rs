//! The `albert` command-line tool. The model, pretraining and fine-tuning commands arrive with
//! their issues; today it reports the kernels this CPU runs and checks them live.

mod ops_report;

use albert::{cli_bench, cli_forward, cli_params};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Ops { seed: 0 }) {
        Command::Ops { seed } => ops_report::run(seed),
        Command::Params(args) => cli_params::run(&args),
        Command::Forward(args) => cli_forward::run(&args),
        Command::Bench(args) => cli_bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
