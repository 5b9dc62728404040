//! The command line: flags in, the libraries' typed settings out, results printed. Nothing here trains, samples
//! or measures; `ebm-cd`, `ebm-eval` and `ebm-compose` do.

mod compose;
mod eval;
mod inspect;
mod shapes;
mod train;

use candle_core::Device;
use clap::{Parser, Subcommand};

/// Train, sample from, evaluate and compose energy-based models.
///
/// With no command, trains the default preset.
#[derive(Debug, Parser)]
#[command(name = "ebm-train", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model from a preset or a config file (or continue a run with --resume).
    Train(train::TrainArgs),
    /// List the presets, or print one (to copy and edit) with --show.
    Presets {
        #[arg(long)]
        show: Option<String>,
    },
    /// Sample from a composition of several models' energies (AND, OR, NOT; 2D or image models) and draw the result.
    Compose(compose::ComposeArgs),
    /// Draw fresh samples from a trained image model (a run folder or a model .safetensors file).
    Sample(inspect::SampleArgs),
    /// Energies of inputs (a safetensors file with `images`, or an IDX image file), per class if conditional.
    Score(inspect::ScoreArgs),
    /// Classify inputs by the lowest conditional energy; accuracy when labels are given.
    Classify(inspect::ClassifyArgs),
    /// Evaluate a trained image model: classification, OOD detection, robustness, completion, sample quality,
    /// FID/IS, likelihood (see `ebm-train eval --help`).
    Eval(eval::EvalArgs),
    /// The compositionality experiment: train a size model and a position model on generated sprites (or take
    /// their run folders), sum their energies for (scale, position) pairs neither saw, and measure with the probe.
    ComposeShapes(shapes::ComposeShapesArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let device = Device::Cpu;
    match cli.command {
        None => train::run(train::TrainArgs::default_run(), &device),
        Some(Command::Train(a)) => train::run(a, &device),
        Some(Command::Presets { show: Some(name) }) if ebm_traj::experiment::preset(&name).is_some() => {
            print!("{}", ebm_traj::experiment::preset_text(&name).unwrap_or_default());
            Ok(())
        }
        Some(Command::Presets { show: Some(name) }) => {
            print!("{}", ebm_cd::presets::text(&name)?);
            Ok(())
        }
        Some(Command::Presets { show: None }) => {
            for n in ebm_cd::presets::names() {
                let c = ebm_cd::presets::load(&n)?;
                println!("{n:20} {}", c.description);
            }
            for n in ebm_traj::experiment::preset_names() {
                let c = ebm_traj::experiment::preset(n).expect("a listed preset")?;
                println!("{n:20} {}", c.description);
            }
            Ok(())
        }
        Some(Command::Compose(a)) => compose::run(a, &device),
        Some(Command::Sample(a)) => inspect::sample(a, &device),
        Some(Command::Score(a)) => inspect::score(a, &device),
        Some(Command::Classify(a)) => inspect::classify(a, &device),
        Some(Command::Eval(a)) => eval::run(a, &device),
        Some(Command::ComposeShapes(a)) => shapes::run(a, &device),
    }
}
