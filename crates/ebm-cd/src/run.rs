//! A run from start to end: a new run folder from a config (or a checkpoint to continue), training, the end-of-run
//! evaluation and its files; and opening a finished run (or a bare model file) to use its model.

use crate::config::{DataConfig, RunConfig};
use crate::error::{CdError, Context, Result};
use crate::run_dir::{Existing, RunDir};
use crate::state::TrainState;
use candle_core::{Device, Tensor};
use ebm_eval::end_of_run::{ImageEval, ToyEval};
use ebm_eval::factors::FactorEval;
use ebm_eval::pipelines::RunSettings;
use ebm_models::EnergyNet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A trained model: from a run folder (its `model.safetensors` and `config.toml`) or a bare model file.
pub struct Run {
    pub model: EnergyNet,
    /// The run's config (`None` for a bare model file).
    pub cfg: Option<RunConfig>,
    pub path: PathBuf,
}

impl Run {
    /// Reads `path` as a run folder or as a model file, with the run config the model was trained with (recorded in
    /// the model file by training; for older model files, the folder's config.toml when it describes this model).
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        Self::open_with(path, None, device)
    }

    /// [`Run::open`], with the run config taken from `config` instead when given (it must describe the same model),
    /// which it says.
    ///
    /// `path` may be a hub spec `hf://OWNER/REPO[@REVISION][/FILE]` ([`ebm_models::hub`]): the cached file is used,
    /// or downloaded unless `HF_HUB_OFFLINE` is set.
    pub fn open_with(path: &Path, config: Option<&Path>, device: &Device) -> Result<Self> {
        let resolved = ebm_models::hub::resolve_model_path(path).map_err(|e| CdError::Msg(e.to_string()))?;
        let path = resolved.as_path();
        let file = if path.is_dir() { path.join("model.safetensors") } else { path.to_path_buf() };
        let bundle = ebm_io::Bundle::load(&file, device)?;
        let model = EnergyNet::from_bundle(&bundle, &file)?;
        let origin = file.display().to_string();
        let recorded = match bundle.metadata.get(ebm_models::net::RUN_CONFIG_KEY) {
            Some(t) => Some(RunConfig::from_toml(t, &format!("{origin} (its recorded run config)"))?),
            None => None,
        };
        let folder = path.join("config.toml");
        let folder_cfg = if path.is_dir() && folder.exists() {
            Some(RunConfig::from_file(&folder).context("reading the run's config")?)
        } else {
            None
        };
        let same_model = |c: &RunConfig, from: &Path| -> Result<()> {
            if &c.model != model.config() {
                return Err(CdError::config(
                    from.display().to_string(),
                    format!(
                        "describes a `{}` model that is not the one in {} (a `{}` model{}); use the config it was \
                         trained with",
                        c.model.arch_name(),
                        origin,
                        model.config().arch_name(),
                        if c.model.arch_name() == model.config().arch_name() { " with other settings" } else { "" }
                    ),
                ));
            }
            Ok(())
        };
        let cfg = match (config, recorded, folder_cfg) {
            (Some(over), recorded, _) => {
                let c = RunConfig::from_file(over)?;
                same_model(&c, over)?;
                let instead = if recorded.is_some() { "the run config recorded in the model file" } else { "none" };
                tracing::warn!("using the run config of {} for {} (instead of {instead})", over.display(), origin);
                Some(c)
            }
            (None, Some(rec), folder_cfg) => {
                if let Some(f) = folder_cfg.filter(|f| *f != rec) {
                    tracing::warn!(
                        "{} differs from the run config recorded in {origin} (in {}); using the recorded one",
                        folder.display(),
                        crate::config::differing_keys(&rec, &f).join(", ")
                    );
                }
                Some(rec)
            }
            (None, None, Some(f)) => {
                same_model(&f, &folder)?;
                Some(f)
            }
            (None, None, None) if path.is_dir() => {
                return Err(CdError::run_folder(path, "holds no config.toml and its model records none"))
            }
            (None, None, None) => None,
        };
        Ok(Self { model, cfg, path: path.to_path_buf() })
    }

    /// Like [`Run::open`], but the run's config is needed (a run folder, or a model file that records it).
    pub fn open_folder(path: &Path, device: &Device) -> Result<(EnergyNet, RunConfig)> {
        let run = Self::open(path, device)?;
        match run.cfg {
            Some(cfg) => Ok((run.model, cfg)),
            None => Err(CdError::run_folder(path, "a run folder is needed (with model.safetensors and config.toml)")),
        }
    }

    /// What the run says about sampling its model and about its data, for the evaluation pipelines.
    pub fn settings(&self) -> Option<RunSettings> {
        self.cfg.as_ref().map(run_settings)
    }
}

/// The sampling and data settings of a run config, as the evaluation pipelines take them.
pub fn run_settings(c: &RunConfig) -> RunSettings {
    RunSettings {
        sampler: c.sampler.langevin(c.sampler.steps),
        init_range: c.sampler.init_range,
        eval_steps: c.eval.steps,
        data: match &c.data {
            DataConfig::Images { source, dir, .. } => Some((source.name().to_string(), dir.clone())),
            DataConfig::Toy2d { .. } => None,
        },
    }
}

/// How a training run begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run of `cfg` in `out`, or in a new folder `runs_dir/<name>` (`-2`, `-3`, ... when taken); an `out`
    /// that holds a run is handled as `existing` says. Unless `ignore_memory`, a config whose model and buffer
    /// alone need more than the machine's available memory is refused before anything is allocated.
    New { cfg: Box<RunConfig>, runs_dir: PathBuf, out: Option<PathBuf>, existing: Existing, ignore_memory: bool },
    /// The run in `dir` continued from its checkpoint, with a new total of `iterations` if given.
    Resume { dir: PathBuf, iterations: Option<u64> },
}

/// What a finished run measured, by kind of model.
#[derive(Debug, Clone)]
pub enum Measured {
    Toy(ToyEval),
    Images(ImageEval),
    Factors(FactorEval),
}

/// A finished run: its folder, wall time and end-of-run measurements (also in its `summary.json`).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    pub seconds: f64,
    pub measured: Measured,
}

/// Trains a run from `start` to its last iteration, evaluates it and writes its files.
pub fn train(start: Start, device: &Device) -> Result<Outcome> {
    let started = Instant::now();
    let (cfg, run, resume) = match start {
        Start::Resume { dir, iterations } => {
            let ck = dir.join("checkpoint.safetensors");
            if !ck.exists() {
                return Err(CdError::checkpoint(&ck, "no checkpoint to resume from"));
            }
            let run = RunDir::open(dir.clone(), true)?;
            let cfg = RunConfig::from_file(&dir.join("config.toml"))?;
            (cfg, run, Some((ck, iterations)))
        }
        Start::New { cfg, runs_dir, out, existing, ignore_memory } => {
            if !ignore_memory {
                check_memory(&cfg)?;
            }
            let run = RunDir::create(&runs_dir, &cfg.name, out.as_deref(), existing)?;
            run.write_text("config.toml", &cfg.to_toml())?;
            (*cfg, run, None)
        }
    };
    tracing::info!("run folder: {}", run.path.display());
    let dir = run.path.clone();
    let measured = match &cfg.data {
        DataConfig::Toy2d { .. } => train_toy(&cfg, run, resume, device)?,
        DataConfig::Images { .. } => train_images(&cfg, run, resume, device)?,
    };
    Ok(Outcome { dir, seconds: started.elapsed().as_secs_f64(), measured })
}

/// Refuses a config whose model and buffer alone need more memory than the machine has available.
fn check_memory(cfg: &RunConfig) -> Result<()> {
    let need = cfg.estimated_bytes()?;
    let have = available_memory();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    match (need, have) {
        (None, _) => Err(CdError::config(
            format!("the config of run `{}`", cfg.name),
            format!("the `{}` model of this config is too large to count its parameters", cfg.model.arch_name()),
        )),
        (Some(n), Some(h)) if n > h => Err(CdError::config(
            format!("the config of run `{}`", cfg.name),
            format!(
                "the `{}` model and replay buffer of this config need at least {:.1} GiB, more than the {:.1} GiB \
                 this machine has available; shrink model.filters, replay.capacity or train.batch_size (or pass \
                 --ignore-memory-check)",
                cfg.model.arch_name(),
                gib(n),
                gib(h)
            ),
        )),
        _ => Ok(()),
    }
}

/// The memory the system says new work can use (`MemAvailable` of /proc/meminfo), if it says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Loads a checkpoint to resume: the run's config.toml (`edited`) may differ from the config the checkpoint was
/// trained with only in [`crate::config::RESUMABLE_KEYS`] (and `eval.*`), and in the schedule's keys where the
/// iterations done keep their learning rates; it then sets them. `iterations` overrides the total.
fn resume_state<E: ebm_replay::Stored>(
    ck: &Path,
    run: &RunDir,
    edited: &RunConfig,
    iterations: Option<u64>,
    device: &Device,
) -> Result<TrainState<E>> {
    let mut st = TrainState::<E>::load(ck, device)?;
    let keys = crate::config::differing_keys(&st.cfg, edited);
    let mut next = edited.train.clone();
    next.iterations = iterations.unwrap_or(next.iterations);
    let schedule_kept = st.cfg.train.same_schedule_until(&next, st.iter);
    let may_change =
        |k: &str| crate::config::resumable(k) || (schedule_kept && crate::config::SCHEDULE_KEYS.contains(&k));
    let fixed: Vec<&String> = keys.iter().filter(|k| !may_change(k)).collect();
    if !fixed.is_empty() {
        return Err(CdError::config(
            run.file("config.toml").display().to_string(),
            format!(
                "differs from the config its checkpoint was trained with in {}; these cannot change in the middle \
                 of a run (only {} and eval.* can, and {} where the learning rates of the {} iterations done stay \
                 the same): restore them, or start a new run with the edited config",
                fixed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                crate::config::RESUMABLE_KEYS.join(", "),
                crate::config::SCHEDULE_KEYS.join(", "),
                st.iter
            ),
        ));
    }
    if !keys.is_empty() {
        tracing::info!("taking {} from the edited config.toml", keys.join(", "));
        let t = &mut st.cfg.train;
        t.iterations = edited.train.iterations;
        t.log_every = edited.train.log_every;
        t.figure_every = edited.train.figure_every;
        t.checkpoint_every = edited.train.checkpoint_every;
        t.lr_final_fraction = edited.train.lr_final_fraction;
        t.lr_decay_from = edited.train.lr_decay_from;
        st.cfg.eval = edited.eval.clone();
        st.cfg.description = edited.description.clone();
    }
    if let Some(n) = iterations {
        st.cfg.train.iterations = n;
    }
    if st.cfg != *edited {
        run.write_text("config.toml", &st.cfg.to_toml())?;
    }
    crate::run_dir::truncate_metrics(&run.path, st.iter)?;
    tracing::info!("resuming {} at iteration {}", run.path.display(), st.iter);
    Ok(st)
}

type Resume = Option<(PathBuf, Option<u64>)>;

fn train_toy(cfg: &RunConfig, mut run: RunDir, resume: Resume, device: &Device) -> Result<Measured> {
    let mut st = match &resume {
        Some((ck, n)) => resume_state::<f32>(ck, &run, cfg, *n, device)?,
        None => crate::toy::init_state(cfg, device)?,
    };
    // 2D models are too small to split across threads: one thread is faster than two
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| CdError::Msg(format!("cannot start a thread pool: {e}")))?;
    pool.install(|| crate::toy::train(&mut st, &mut run, device))?;
    let c = &st.cfg;
    let sampler = c.sampler.langevin(c.eval.steps);
    let density = crate::toy::density(c)?;
    let (n, bw, seed, range) = (c.eval.samples, c.eval.mmd_bandwidth, c.seed, c.sampler.init_range);
    let (ev, samples) =
        pool.install(|| ebm_eval::end_of_run::toy(&mut st.model, &sampler, range, density, n, bw, seed, device))?;
    crate::figures::toy_figure(&st, density, &run.file("density.png"), Some(&samples), device)?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    Ok(Measured::Toy(ev))
}

fn train_images(cfg: &RunConfig, mut run: RunDir, resume: Resume, device: &Device) -> Result<Measured> {
    let data = crate::image::load_data(cfg)?;
    let mut st = match &resume {
        Some((ck, n)) => resume_state::<u8>(ck, &run, cfg, *n, device)?,
        None => crate::image::init_state(cfg, &data, device)?,
    };
    crate::image::train(&mut st, &data, &mut run, device, None)?;
    let c = st.cfg.clone();
    let sampler = c.sampler.langevin(c.eval.steps);
    if c.model.cond_dim() > 0 && !c.model.is_class_conditional() {
        tracing::info!("evaluating: {} fresh samples judged by the factor probe", c.eval.samples);
        let DataConfig::Images { source, .. } = &c.data else { unreachable!("an image run") };
        let Some(factor) = source.factor() else { crate::bail!("`{}` has no factors", source.name()) };
        let (ev, samples, conds) =
            ebm_eval::factors::evaluate(&mut st.model, &sampler, factor, &data, c.eval.samples, c.seed, device)?;
        let k = samples.dims()[0].min(100);
        let cv = conds.to_vec2::<f32>()?;
        let mut order: Vec<u32> = (0..k as u32).collect();
        order.sort_by(|&a, &b| cv[a as usize][0].total_cmp(&cv[b as usize][0]));
        let shown = samples.index_select(&Tensor::new(order.as_slice(), samples.device())?, 0)?;
        ebm_eval::figures::image_grid_png(&shown, None, 10, &run.file("fresh_samples.png"))?;
        run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
        return Ok(Measured::Factors(ev));
    }
    tracing::info!("evaluating: held-out classification and {} fresh samples per class", c.eval.per_class);
    let per = c.eval.per_class;
    let (ev, samples) = ebm_eval::end_of_run::images(&mut st.model, &sampler, &data, per, c.seed, device)?;
    let classes = c.model.cond_dim().max(1);
    let show: Vec<u32> = (0..classes * per.min(10)).map(|i| (i / per.min(10)) as u32).collect();
    let pick: Vec<u32> = (0..classes).flat_map(|k| (0..per.min(10)).map(move |j| (k * per + j) as u32)).collect();
    let shown = samples.index_select(&Tensor::new(pick.as_slice(), samples.device())?, 0)?;
    ebm_eval::figures::image_grid_png(&shown, Some(&show), per.min(10), &run.file("fresh_samples.png"))?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    Ok(Measured::Images(ev))
}

impl std::fmt::Display for Outcome {
    /// The summary a user reads at the end of a run: where the files are and what was measured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (secs, dir) = (self.seconds, self.dir.display());
        match &self.measured {
            Measured::Toy(ev) => write!(
                f,
                "done in {secs:.0} s; outputs in {dir}\n  density.png (data | model density exp(-E) | fresh samples), \
                 metrics.jsonl, checkpoint.safetensors, model.safetensors\n  MMD^2 (bandwidth {}, {} fresh samples \
                 after {} steps): model {:.5}, data-vs-data floor {:.5} (ratio {:.2}), initial noise {:.5}",
                ev.bandwidth,
                ev.samples,
                ev.steps,
                ev.mmd2_model,
                ev.mmd2_data_floor,
                ev.mmd2_model / ev.mmd2_data_floor,
                ev.mmd2_init_noise
            ),
            Measured::Images(ev) => {
                let pct = |v: Option<f64>| {
                    v.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "n/a (unconditional)".into())
                };
                write!(
                    f,
                    "done in {secs:.0} s; outputs in {dir}\n  samples.png (replay buffer by class), fresh_samples.png \
                     (new chains from noise, {} steps), curves.png, metrics.jsonl, checkpoint.safetensors, \
                     model.safetensors, summary.json\n  held-out accuracy (argmin_y E(x, y), {} test images): {}\n  \
                     conditional-sample accuracy ({} fresh samples per class, judged by a pixel MLP whose own test \
                     accuracy is {:.1}%): {}",
                    ev.sample_steps,
                    ev.test_images,
                    pct(ev.heldout_accuracy),
                    ev.samples_per_class,
                    100.0 * ev.judge_test_accuracy,
                    pct(ev.conditional_sample_accuracy),
                )
            }
            Measured::Factors(ev) => write!(
                f,
                "done in {secs:.0} s; outputs in {dir}\n  samples.png (replay buffer), fresh_samples.png (new chains \
                 from noise, {} steps, ordered by condition), curves.png, metrics.jsonl, checkpoint.safetensors, \
                 model.safetensors, summary.json\n  {} of {} fresh samples within {:.3} of their requested {} \
                 (probe): {:.1}% (test images themselves: {:.1}%; against another sample's condition: {:.1}%), \
                 median error {:.3}",
                ev.sample_steps,
                (ev.fraction_within * ev.samples as f64).round(),
                ev.samples,
                ev.tolerance,
                ev.factor,
                100.0 * ev.fraction_within,
                100.0 * ev.data_fraction_within,
                100.0 * ev.shuffled_fraction_within,
                ev.median_error,
            ),
        }
    }
}
