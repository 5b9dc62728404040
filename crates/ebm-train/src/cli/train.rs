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
    if let Some(cfg) = trajectory_config(&a)? {
        return trajectories(a, cfg);
    }
    let outcome = ebm_cd::run::train(a.start()?, device)?;
    println!("{outcome}");
    Ok(())
}

/// The trajectory experiment's config when the preset or file is one (a `[data.scene]` table marks the file).
fn trajectory_config(a: &TrainArgs) -> anyhow::Result<Option<ebm_traj::experiment::TrajConfig>> {
    if let Some(p) = &a.preset {
        return Ok(ebm_traj::experiment::preset(p).transpose()?);
    }
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if ebm_traj::experiment::is_trajectory_config(&text) {
            return Ok(Some(ebm_traj::experiment::TrajConfig::from_toml(&text, &path.display().to_string())?));
        }
    }
    Ok(None)
}

/// The trajectory experiment in one go: data, the three models, futures and their measures.
fn trajectories(a: TrainArgs, mut cfg: ebm_traj::experiment::TrajConfig) -> anyhow::Result<()> {
    if a.resume.is_some() {
        anyhow::bail!("a trajectory experiment runs in one go (data, models, evaluation); it has no --resume");
    }
    if let Some(n) = a.iterations {
        cfg.ebm.iterations = n;
        cfg.baselines.iterations = n;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
        cfg.data.seed = s;
    }
    let existing = if a.force { Existing::MoveAside } else { Existing::Refuse };
    let out = ebm_traj::experiment::Output { runs_dir: a.runs_dir, out: a.out, existing };
    let (dir, report) = ebm_traj::experiment::run(&cfg, &out)?;
    print_trajectory_table(&dir, &report);
    Ok(())
}

/// The trajectory figures as a table on stdout, after the folder that holds them.
pub(super) fn print_trajectory_table(dir: &std::path::Path, report: &ebm_traj::experiment::Report) {
    let f = &report.figures;
    let get = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    println!("{}: trajectories.json, trajectories.png", dir.display());
    println!("{:12} {:>10} {:>10} {:>12} {:>10}", "source", "div t40", "div t80", "nearest real", "violations");
    for s in ["real", "ebm", "ebm_feasible", "gauss", "fc"] {
        if !f.contains_key(&format!("violations_{s}")) {
            continue;
        }
        println!(
            "{s:12} {:10.4} {:10.4} {:12.4} {:10.4}",
            get(&format!("diversity_{s}_t40")),
            get(&format!("diversity_{s}_t80")),
            get(&format!("nearest_real_{s}")),
            get(&format!("violations_{s}"))
        );
    }
}
