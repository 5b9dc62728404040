//! The command line.

use crate::config::{DataConfig, RunConfig};
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
    /// Sample from a composition of several models' energies (AND, OR, NOT; 2D or image models) and draw the result.
    Compose(ComposeArgs),
    /// Draw fresh samples from a trained image model (a run folder or a model .safetensors file).
    Sample {
        #[arg(long)]
        model: PathBuf,
        /// Samples per class (or in all, for an unconditional model).
        #[arg(long, default_value_t = 10)]
        per_class: usize,
        /// Langevin steps from uniform noise.
        #[arg(long, default_value_t = 60)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder for samples.safetensors and samples.png.
        #[arg(long, default_value = "runs/samples")]
        out: PathBuf,
    },
    /// Energies of inputs (a safetensors file with `images`, or an IDX image file), per class if conditional.
    Score {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Write the energies to this JSON file instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Classify inputs by the lowest conditional energy; accuracy when labels are given.
    Classify {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// An IDX label file (otherwise a `labels` tensor in the input file is used, if any).
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Evaluate a trained image model: classification, OOD detection, robustness, completion, sample quality,
    /// FID/IS, likelihood (see `ebm-train eval --help`).
    Eval(crate::eval_cmd::EvalArgs),
    /// The compositionality experiment: train a size model and a position model on generated sprites (or take
    /// their run folders), sum their energies for (scale, position) pairs neither saw, and measure with the probe.
    ComposeShapes(crate::shapes_exp::ComposeShapesArgs),
}

/// The default preset (what `cargo run -p ebm-train` trains).
pub const DEFAULT_PRESET: &str = "digits";

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

pub use crate::compose::ComposeArgs;

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
        Some(Command::Sample { model, per_class, steps, seed, out }) => {
            crate::inspect::sample(&model, per_class, steps, seed, &out, &device)
        }
        Some(Command::Score { model, input, out }) => crate::inspect::score(&model, &input, out.as_ref(), &device),
        Some(Command::Classify { model, input, labels }) => {
            crate::inspect::classify(&model, &input, labels.as_ref(), &device)
        }
        Some(Command::Eval(a)) => crate::eval_cmd::run(a, &device),
        Some(Command::ComposeShapes(a)) => crate::shapes_exp::run(&a, &device),
    }
}

fn train(a: TrainArgs, device: &Device) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (cfg, run, resume) = match &a.resume {
        Some(dir) => {
            let ck = dir.join("checkpoint.safetensors");
            anyhow::ensure!(ck.exists(), "{}: no checkpoint to resume from", ck.display());
            let cfg = RunConfig::from_file(&dir.join("config.toml"))?;
            (cfg, RunDir::open(dir.clone(), true)?, Some(ck))
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
            (cfg, run, None)
        }
    };
    tracing::info!("run folder: {}", run.path.display());
    let start = RunStart { run, resume, iterations: a.iterations, started };
    match &cfg.data {
        DataConfig::Toy2d { .. } => train_toy(cfg, start, device),
        DataConfig::Images { .. } => train_images(cfg, start, device),
    }
}

/// Where a run goes and how it begins: fresh, or from a checkpoint with an optional new iteration total.
struct RunStart {
    run: RunDir,
    resume: Option<PathBuf>,
    iterations: Option<u64>,
    started: std::time::Instant,
}

/// Loads a checkpoint to resume, with the iteration total overridden when asked.
fn resume_state<E: ebm_replay::Stored>(
    ck: &Path,
    run: &RunDir,
    iterations: Option<u64>,
    device: &Device,
) -> anyhow::Result<TrainState<E>> {
    let mut st = TrainState::<E>::load(ck, device)?;
    if let Some(n) = iterations {
        st.cfg.train.iterations = n;
    }
    crate::run_dir::truncate_metrics(&run.path, st.iter)?;
    tracing::info!("resuming {} at iteration {}", run.path.display(), st.iter);
    Ok(st)
}

fn train_toy(cfg: RunConfig, start: RunStart, device: &Device) -> anyhow::Result<()> {
    let RunStart { mut run, resume, iterations, started } = start;
    let mut st = match &resume {
        Some(ck) => resume_state::<f32>(ck, &run, iterations, device)?,
        None => crate::toy::init_state(&cfg, device)?,
    };
    // 2D models are too small to split across threads: one thread is faster than two
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    pool.install(|| crate::toy::train(&mut st, &mut run, device))?;
    let (ev, samples) = pool.install(|| crate::toy::evaluate(&mut st.model, &st.cfg, st.cfg.seed, device))?;
    crate::figures::toy_figure(&st, crate::toy::density(&st.cfg)?, &run.file("density.png"), Some(&samples), device)?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    println!("{}", summary_text(&run.path, started.elapsed().as_secs_f64(), &ev));
    Ok(())
}

fn train_images(cfg: RunConfig, start: RunStart, device: &Device) -> anyhow::Result<()> {
    let RunStart { mut run, resume, iterations, started } = start;
    let data = crate::image::load_data(&cfg)?;
    let mut st = match &resume {
        Some(ck) => resume_state::<u8>(ck, &run, iterations, device)?,
        None => crate::image::init_state(&cfg, &data, device)?,
    };
    crate::image::train(&mut st, &data, &mut run, device, None)?;
    if st.cfg.model.cond_dim() > 0 && !st.cfg.model.is_class_conditional() {
        return crate::factors::report(&mut st, &data, &run, started, device);
    }
    tracing::info!("evaluating: held-out classification and {} fresh samples per class", st.cfg.eval.per_class);
    let (ev, samples) = crate::image::evaluate(&mut st.model, &st.cfg, &data, device)?;
    let per = st.cfg.eval.per_class;
    let classes = st.cfg.model.cond_dim().max(1);
    let show: Vec<u32> = (0..classes * per.min(10)).map(|i| (i / per.min(10)) as u32).collect();
    let pick: Vec<u32> = (0..classes).flat_map(|c| (0..per.min(10)).map(move |j| (c * per + j) as u32)).collect();
    let shown = samples.index_select(&candle_core::Tensor::new(pick.as_slice(), samples.device())?, 0)?;
    crate::figures::image_grid_png(&shown, Some(&show), per.min(10), &run.file("fresh_samples.png"))?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    let secs = started.elapsed().as_secs_f64();
    let pct = |v: Option<f64>| v.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "n/a (unconditional)".into());
    println!(
        "done in {secs:.0} s; outputs in {}\n  samples.png (replay buffer by class), fresh_samples.png (new chains from \
         noise, {} steps), curves.png, metrics.jsonl, checkpoint.safetensors, model.safetensors, summary.json\n  \
         held-out accuracy (argmin_y E(x, y), {} test images): {}\n  conditional-sample accuracy ({} fresh samples per \
         class, judged by a pixel MLP whose own test accuracy is {:.1}%): {}",
        run.path.display(),
        ev.sample_steps,
        ev.test_images,
        pct(ev.heldout_accuracy),
        ev.samples_per_class,
        100.0 * ev.judge_test_accuracy,
        pct(ev.conditional_sample_accuracy),
    );
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
