//! `train`: a preset or config file into a new run folder, or a run continued from its checkpoint.

use candle_core::Device;
use clap::Args;
use ebm_cd::run_dir::Existing;
use ebm_cd::{RunConfig, Start};
use std::path::PathBuf;

/// The default preset (what `cargo run -p ebm-train` trains).
pub const DEFAULT_PRESET: &str = "digits";

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A built-in preset (see `ebm-train presets`).
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// A TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, conflicts_with_all = ["preset", "config"])]
    resume: Option<PathBuf>,
    /// Folder under which a new run folder is made.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Exact run folder to use (instead of runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the number of iterations (with --resume: the new total).
    #[arg(long)]
    iterations: Option<u64>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Start over in an --out folder that holds a run: the old run is moved aside to `<folder>.replaced-<time>`.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Train even when the model and replay buffer alone seem to need more memory than the machine has available.
    #[arg(long)]
    ignore_memory_check: bool,
}

impl TrainArgs {
    /// What `ebm-train` with no command does: the default preset into `runs/`.
    pub fn default_run() -> Self {
        Self {
            preset: Some(DEFAULT_PRESET.into()),
            config: None,
            resume: None,
            runs_dir: "runs".into(),
            out: None,
            iterations: None,
            seed: None,
            force: false,
            ignore_memory_check: false,
        }
    }

    fn start(self) -> anyhow::Result<Start> {
        if let Some(dir) = self.resume {
            return Ok(Start::Resume { dir, iterations: self.iterations });
        }
        let mut cfg = match (&self.preset, &self.config) {
            (_, Some(path)) => RunConfig::from_file(path)?,
            (Some(p), None) => ebm_cd::presets::load(p)?,
            (None, None) => ebm_cd::presets::load(DEFAULT_PRESET)?,
        };
        if let Some(n) = self.iterations {
            cfg.train.iterations = n;
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        let existing = if self.force { Existing::MoveAside } else { Existing::Refuse };
        let ignore_memory = self.ignore_memory_check;
        Ok(Start::New { cfg: Box::new(cfg), runs_dir: self.runs_dir, out: self.out, existing, ignore_memory })
    }
}

pub fn run(a: TrainArgs, device: &Device) -> anyhow::Result<()> {
    let outcome = ebm_cd::run::train(a.start()?, device)?;
    println!("{outcome}");
    Ok(())
}
