//! Project tasks: `cargo xtask <command>` (see `cargo xtask --help`).

mod bench;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Bench(a) => bench::run(a),
    }
}
