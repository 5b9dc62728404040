//! The command line.

use crate::config::RunConfig;
use crate::run_dir::RunDir;
use crate::state::TrainState;
use anyhow::Context;
use candle_core::Device;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

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
    Train(TrainArgs),
    /// List the presets, or print one (to copy and edit) with --show.
    Presets {
        #[arg(long)]
        show: Option<String>,
    },
    /// Sample from the sum of several models' energies (product of experts) and draw the result.
    Compose(ComposeArgs),
}

/// The default preset (what `cargo run -p ebm-train` trains).
pub const DEFAULT_PRESET: &str = "toy-8gaussians";

#[derive(Debug, Args, Default)]
pub struct TrainArgs {
    /// A built-in preset (see `ebm-train presets`).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, conflicts_with_all = ["preset", "config"])]
    pub resume: Option<PathBuf>,
    /// Folder under which a new run folder is made.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Exact run folder to use (instead of runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the number of iterations (with --resume: the new total).
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Run folders (or model .safetensors files) to compose, each optionally followed by `:weight`.
    #[arg(long = "model", required = true, num_args = 1)]
    pub models: Vec<String>,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Langevin steps from uniform noise.
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder for compose.png and compose.json.
    #[arg(long, default_value = "runs/compose")]
    pub out: PathBuf,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let device = Device::Cpu;
    match cli.command {
        None => train(
            TrainArgs { preset: Some(DEFAULT_PRESET.into()), runs_dir: "runs".into(), ..Default::default() },
            &device,
        ),
        Some(Command::Train(a)) => train(a, &device),
        Some(Command::Presets { show: Some(name) }) => {
            print!("{}", crate::presets::text(&name)?);
            Ok(())
        }
        Some(Command::Presets { show: None }) => {
            for n in crate::presets::names() {
                let c = crate::presets::load(&n)?;
                println!("{n:20} {}", c.description);
            }
            Ok(())
        }
        Some(Command::Compose(a)) => crate::compose::compose(&a, &device),
    }
}

fn train(a: TrainArgs, device: &Device) -> anyhow::Result<()> {
    let (mut st, mut run) = match &a.resume {
        Some(dir) => {
            let ck = dir.join("checkpoint.safetensors");
            anyhow::ensure!(ck.exists(), "{}: no checkpoint to resume from", ck.display());
            let mut st = TrainState::<f32>::load(&ck, device)?;
            if let Some(n) = a.iterations {
                st.cfg.train.iterations = n;
            }
            crate::run_dir::truncate_metrics(dir, st.iter)?;
            tracing::info!("resuming {} at iteration {}", dir.display(), st.iter);
            (st, RunDir::open(dir.clone(), true)?)
        }
        None => {
            let mut cfg = match (&a.preset, &a.config) {
                (_, Some(path)) => RunConfig::from_file(path)?,
                (Some(p), None) => crate::presets::load(p)?,
                (None, None) => crate::presets::load(DEFAULT_PRESET)?,
            };
            if let Some(n) = a.iterations {
                cfg.train.iterations = n;
            }
            if let Some(s) = a.seed {
                cfg.seed = s;
            }
            let run = RunDir::create(&a.runs_dir, &cfg.name, a.out.as_deref())?;
            run.write_text("config.toml", &cfg.to_toml())?;
            (crate::toy::init_state(&cfg, device)?, run)
        }
    };
    tracing::info!("run folder: {}", run.path.display());
    let started = std::time::Instant::now();
    crate::toy::train(&mut st, &mut run, device)?;
    let (ev, samples) = crate::toy::evaluate(&mut st.model, &st.cfg, st.cfg.seed, device)?;
    crate::figures::toy_figure(&st, crate::toy::density(&st.cfg)?, &run.file("density.png"), Some(&samples), device)?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    println!("{}", summary_text(&run.path, started.elapsed().as_secs_f64(), &ev));
    Ok(())
}

fn summary_text(dir: &Path, secs: f64, ev: &crate::toy::ToyEval) -> String {
    format!(
        "done in {secs:.0} s; outputs in {}\n  density.png (data | model density exp(-E) | fresh samples), metrics.jsonl, \
         checkpoint.safetensors, model.safetensors\n  MMD^2 (bandwidth {}, {} fresh samples after {} steps): model {:.5}, \
         data-vs-data floor {:.5} (ratio {:.2}), initial noise {:.5}",
        dir.display(),
        ev.bandwidth,
        ev.samples,
        ev.steps,
        ev.mmd2_model,
        ev.mmd2_data_floor,
        ev.mmd2_model / ev.mmd2_data_floor,
        ev.mmd2_init_noise
    )
}

/// Reads `path` as a run folder (its model.safetensors and config.toml) or as a bare model file.
pub fn open_model(path: &Path, device: &Device) -> anyhow::Result<(ebm_models::EnergyNet, Option<RunConfig>)> {
    if path.is_dir() {
        let model = ebm_models::EnergyNet::load(&path.join("model.safetensors"), device)?;
        let cfg = RunConfig::from_file(&path.join("config.toml")).context("reading the run's config")?;
        Ok((model, Some(cfg)))
    } else {
        Ok((ebm_models::EnergyNet::load(path, device)?, None))
    }
}
