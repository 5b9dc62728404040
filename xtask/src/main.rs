//! Project tasks: `cargo xtask <command>` (see `cargo xtask --help`).

mod bench;
mod convert;
mod fetch;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Project tasks for the ebm workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time the Langevin step and the training iteration against PyTorch and candle's own conv.
    Bench(bench::BenchArgs),
    /// Download (or take with --from) the datasets of data/manifest.toml into data/cache/<name>, verified.
    FetchData(fetch::FetchArgs),
    /// Convert a TensorFlow checkpoint of the official code (the authors' released models) to a zoo model file.
    ConvertCheckpoint(convert::ConvertArgs),
}

fn main() -> std::process::ExitCode {
    let done = match Cli::parse().command {
        Cmd::Bench(a) => bench::run(a),
        Cmd::FetchData(a) => fetch::run(a),
        Cmd::ConvertCheckpoint(a) => convert::run(a),
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
