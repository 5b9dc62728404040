//! The whole experiment from one config: generate the data, train the transition energy and both predictors,
//! generate futures from held-out starts, judge and measure them against the simulator's own, and write
//! `trajectories.json`, the figure and the models into a run folder.

use crate::dagger::DaggerConfig;
use crate::feasible::{FeasibilityEnergy, WithFeasibility};
use crate::futures::{diversity, energy_futures, nearest_real, predictor_futures, real_futures, DataRange, Futures};
use crate::generate::{generate, GenConfig, Trajectories};
use crate::judge::{Judge, ViolationRates};
use crate::nets::{ContactInput, NetConfig, Normaliser, Predictor, TransitionEnergy};
use crate::scene::State;
use crate::train::{build, predictor_loss, train_predictor, EbmConfig, EnergyTrainer, PredictorConfig, TrainSet};
use crate::{Result, TrajError};
use ebm_cd::progress::Progress;
use ebm_cd::run_dir::{Existing, RunDir};
use ebm_io::Bundle;
use ebm_sampler::Energy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How the futures are measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out start states (the first states of test trajectories).
    pub starts: usize,
    /// Index of the first test trajectory whose start is used: the starts are test trajectories `first_start ..
    /// first_start + starts`. Choosing settings on starts past the reported ones keeps the reported figures
    /// from being tuned to.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub first_start: usize,
    /// Futures per start, for every source.
    pub futures: usize,
    /// Steps per future (the issue: 80).
    pub horizon: usize,
    /// Weight of the hand-written feasibility energy ([`crate::feasible`]) in a second set of EBM futures,
    /// `ebm_feasible`, sampled from the learned energy plus it; 0 skips them.
    #[serde(default)]
    pub feasibility_weight: f64,
    /// Langevin chains per generated state in the EBM's futures, the lowest-energy one kept; 1: one chain.
    #[serde(default = "one_chain")]
    pub candidates: usize,
    /// Langevin steps per generated state in the EBM's rollouts; default: the training chains' `ebm.langevin_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_steps: Option<usize>,
    /// Noise of the rollout chains; default: the training chains' `ebm.noise_std`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_noise_std: Option<f32>,
    /// Spread of the rollout chains' starting change, N(0, s^2) per normalised coordinate; default: the training
    /// chains' `ebm.init_std`. A wider start keeps more of the chains' spread after a long chain has contracted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_init_std: Option<f32>,
    /// Clip every state the energy generates (in these rollouts and in relabelling rounds) into the range of the
    /// recorded training states ([`crate::futures::DataRange`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clip_to_data_range: bool,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

fn one_chain() -> usize {
    1
}

/// A trajectory experiment's config (a preset or a TOML file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajConfig {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub data: GenConfig,
    pub model: NetConfig,
    pub ebm: EbmConfig,
    pub baselines: PredictorConfig,
    pub eval: EvalConfig,
    /// On-policy relabelling rounds for the energy ([`crate::dagger`]); absent: none.
    #[serde(default, skip_serializing_if = "DaggerConfig::is_off")]
    pub dagger: DaggerConfig,
}

impl TrajConfig {
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| TrajError::Config(format!("{origin}: {e}")))?;
        cfg.validate().map_err(|e| TrajError::Config(format!("{origin}: {e}")))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate()?;
        self.model.validate()?;
        self.ebm.validate()?;
        self.baselines.validate()?;
        self.dagger.validate()?;
        let e = &self.eval;
        if e.starts == 0 || e.first_start.saturating_add(e.starts) > self.data.test_count() {
            return Err(format!(
                "eval.first_start + eval.starts must be at most {} (the held-out trajectories) with starts >= 1, \
                 got {} + {}",
                self.data.test_count(),
                e.first_start,
                e.starts
            ));
        }
        if e.futures < 2 || e.futures > 1024 || e.horizon == 0 || e.horizon > 10_000 {
            return Err(format!("eval: futures must be in 2..=1024 and horizon in 1..=10000, got {e:?}"));
        }
        if !(e.feasibility_weight.is_finite() && e.feasibility_weight >= 0.0) {
            return Err(format!("eval.feasibility_weight must be finite and >= 0, got {}", e.feasibility_weight));
        }
        if e.candidates == 0 || e.candidates > 64 {
            return Err(format!("eval.candidates must be in 1..=64, got {}", e.candidates));
        }
        if e.rollout_steps.is_some_and(|n| n == 0 || n > 10_000) {
            return Err(format!("eval.rollout_steps must be in 1..=10000, got {:?}", e.rollout_steps));
        }
        if e.rollout_noise_std.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
            return Err(format!("eval.rollout_noise_std must be finite and >= 0, got {:?}", e.rollout_noise_std));
        }
        if e.rollout_init_std.is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= 100.0)) {
            return Err(format!("eval.rollout_init_std must be in (0, 100], got {:?}", e.rollout_init_std));
        }
        Ok(())
    }
}

/// Whether a config file's text describes a trajectory experiment rather than an image run: a `[data.scene]`
/// table marks it. Text that is not TOML is not one (the image run's parser then reports the error).
pub fn is_trajectory_config(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.get("data").and_then(|d| d.get("scene")).is_some())
}

/// The built-in trajectory presets, by name.
const PRESETS: [(&str, &str); 2] = [
    ("traj-push-cpu", include_str!("../presets/traj-push-cpu.toml")),
    ("traj-push", include_str!("../presets/traj-push.toml")),
];

/// Names of the trajectory presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The parsed preset `name`, or `None` if there is no trajectory preset of that name.
pub fn preset(name: &str) -> Option<Result<TrajConfig>> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(n, t)| TrajConfig::from_toml(t, &format!("preset {n}")))
}

/// The TOML text of trajectory preset `name`.
pub fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Where a run goes and what to do with a folder that already holds one.
pub struct Output {
    pub runs_dir: PathBuf,
    pub out: Option<PathBuf>,
    pub existing: Existing,
}

/// The measured figures (the keys of `trajectories.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub figures: BTreeMap<String, f64>,
    pub violations: BTreeMap<String, ViolationRates>,
    pub seconds: BTreeMap<String, f64>,
}

/// Runs the experiment into a new run folder; returns the folder and the report.
pub fn run(cfg: &TrajConfig, output: &Output) -> Result<(PathBuf, Report)> {
    cfg.validate().map_err(TrajError::Config)?;
    let mut dir = RunDir::create(&output.runs_dir, &cfg.name, output.out.as_deref(), output.existing)?;
    dir.write_text("config.toml", &toml::to_string(cfg).expect("a config serialises"))?;
    let report = run_in(cfg, &mut dir)?;
    Ok((dir.path.clone(), report))
}

fn run_in(cfg: &TrajConfig, dir: &mut RunDir) -> Result<Report> {
    let mut seconds = BTreeMap::new();
    let t0 = Instant::now();
    let data = generate(&cfg.data)?;
    data.save(&dir.file("data.safetensors"))?;
    seconds.insert("generate".to_string(), t0.elapsed().as_secs_f64());
    tracing::info!("{} trajectories of {} states in {:.1} s", data.len(), cfg.data.length, seconds["generate"]);

    let (train_range, _) = data.split();
    let (s, s1) = data.transitions(train_range);
    let norm = Normaliser::fit(&s, &s1);
    let train = TrainSet::new(&norm, &s, &s1)?;
    let contact = cfg.ebm.contact_input.then(|| ContactInput { norm: norm.clone(), scene: cfg.data.scene });
    let (energy, fc, gauss) = build(cfg.model, contact, cfg.seed)?;

    let mut logged: Vec<serde_json::Value> = Vec::new();
    train_energy_in_rounds(cfg, &data, &norm, &train, &energy, &mut logged, &mut seconds)?;
    for (p, name) in [(&fc, "fc"), (&gauss, "gauss")] {
        let t = Instant::now();
        let mut bar = Progress::new(cfg.baselines.iterations, 0, name);
        train_predictor(p, &train, &cfg.baselines, cfg.seed, &mut |it, loss| {
            if it % 100 == 0 || it == cfg.baselines.iterations {
                bar.tick(it, &format!("loss {loss:.4}"));
                logged.push(serde_json::json!({"model": name, "iteration": it, "loss": loss}));
            }
        })?;
        bar.finish(t.elapsed().as_secs_f64());
        seconds.insert(format!("train_{name}"), t.elapsed().as_secs_f64());
    }
    for v in &logged {
        dir.log(v)?;
    }
    let models = Models { norm, energy, fc, gauss };
    save_models(cfg, &models, &dir.file("models.safetensors"))?;
    let (report, figure) = evaluate(cfg, &data, &models, seconds)?;
    write_results(&dir.path, &report, &figure)?;
    Ok(report)
}

/// Trains the energy, with the `[dagger]` table's relabelling rounds between equal pieces of its iterations;
/// every 50th iteration's figures and each round's counts go to `logged`, the times to `seconds`.
fn train_energy_in_rounds(
    cfg: &TrajConfig,
    data: &Trajectories,
    norm: &Normaliser,
    train: &TrainSet,
    energy: &TransitionEnergy,
    logged: &mut Vec<serde_json::Value>,
    seconds: &mut BTreeMap<String, f64>,
) -> Result<()> {
    let t = Instant::now();
    let mut bar = Progress::new(cfg.ebm.iterations, 0, "ebm");
    let mut trainer = EnergyTrainer::new(energy, &cfg.ebm, cfg.seed)?;
    let range = cfg.eval.clip_to_data_range.then(|| training_range(data));
    let dg = &cfg.dagger;
    // every round's answers so far, normalised once as each round arrives
    let mut extra: Option<TrainSet> = None;
    let mut dagger_seconds = 0.0;
    for piece in 0..=dg.rounds as u64 {
        let until = cfg.ebm.iterations * (piece + 1) / (dg.rounds as u64 + 1);
        trainer.train_until(train, extra.as_ref().map(|x| (x, dg.share)), until, &mut |st| {
            if st.iteration % 50 == 0 || st.iteration == cfg.ebm.iterations {
                bar.tick(st.iteration, &format!("E+ {:.3} E- {:.3}", st.e_pos, st.e_neg));
                logged.push(serde_json::json!({"model": "ebm", "iteration": st.iteration, "e_pos": st.e_pos,
                    "e_neg": st.e_neg, "loss": st.loss}));
            }
        })?;
        if piece == dg.rounds as u64 {
            break;
        }
        let td = Instant::now();
        let round_seed = cfg.seed ^ 0xda66e5 ^ ((piece + 1) << 24);
        let sampler = cfg.ebm.sampler();
        let r = crate::dagger::round(energy, norm, &sampler, cfg.ebm.init_std, range.as_ref(), data, dg, round_seed)?;
        let secs = td.elapsed().as_secs_f64();
        dagger_seconds += secs;
        let infeasible = r.infeasible as f64 / r.visited.max(1) as f64;
        tracing::info!(
            "dagger round {}: {} states visited, {:.1}% infeasible, {} transitions kept ({:.1} s)",
            piece + 1,
            r.visited,
            100.0 * infeasible,
            r.len(),
            secs
        );
        logged.push(serde_json::json!({"model": "dagger", "round": piece + 1, "iteration": until,
            "visited": r.visited, "infeasible_visited": infeasible, "kept": r.len(), "seconds": secs}));
        let answers = TrainSet::new(norm, &r.s, &r.s1)?;
        extra = Some(match extra {
            Some(so_far) => so_far.appended(&answers)?,
            None => answers,
        });
    }
    bar.finish(t.elapsed().as_secs_f64());
    seconds.insert("train_ebm".into(), t.elapsed().as_secs_f64());
    if dg.rounds > 0 {
        seconds.insert("dagger".into(), dagger_seconds);
    }
    Ok(())
}

/// The trained networks of a run and the normalisation they share.
pub struct Models {
    pub norm: Normaliser,
    pub energy: TransitionEnergy,
    pub fc: Predictor,
    pub gauss: Predictor,
}

impl Models {
    /// Reads `models.safetensors` as [`run`] writes it, for networks of `cfg`'s shape.
    pub fn load(cfg: &TrajConfig, path: &Path) -> Result<Self> {
        let b = Bundle::load(path, &candle_core::Device::Cpu)?;
        let norm: Normaliser = serde_json::from_str(b.meta(path, "ebm.traj_normaliser")?).map_err(|e| {
            TrajError::File { path: path.display().to_string(), reason: format!("metadata `ebm.traj_normaliser`: {e}") }
        })?;
        norm.validate().map_err(|reason| TrajError::File { path: path.display().to_string(), reason })?;
        let contact = cfg.ebm.contact_input.then(|| ContactInput { norm: norm.clone(), scene: cfg.data.scene });
        let (energy, fc, gauss) = build(cfg.model, contact, cfg.seed)?;
        energy.net.load_bundle(&b, "energy/", path)?;
        fc.net.load_bundle(&b, "fc/", path)?;
        gauss.net.load_bundle(&b, "gauss/", path)?;
        Ok(Self { norm, energy, fc, gauss })
    }
}

/// Measures a finished run's models again under its `[eval]` table as `edit` changes it (more candidates, other
/// rollout chains, another feasibility weight, more starts) without training anything; writes `config.toml` (the
/// run's, with the changed table), `trajectories.json` and `trajectories.png` into `out`, which must not hold
/// results already.
pub fn reevaluate(run: &Path, edit: impl FnOnce(&mut EvalConfig), out: &Path) -> Result<Report> {
    let config_path = run.join("config.toml");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| TrajError::File { path: config_path.display().to_string(), reason: e.to_string() })?;
    let mut cfg = TrajConfig::from_toml(&text, &config_path.display().to_string())?;
    edit(&mut cfg.eval);
    cfg.validate().map_err(TrajError::Config)?;
    let data_path = run.join("data.safetensors");
    let data = Trajectories::load(&data_path)?;
    if data.cfg != cfg.data {
        return Err(TrajError::File {
            path: data_path.display().to_string(),
            reason: format!("generated with other settings than {}'s [data]", config_path.display()),
        });
    }
    let models = Models::load(&cfg, &run.join("models.safetensors"))?;
    if out.join("trajectories.json").exists() {
        return Err(TrajError::File {
            path: out.display().to_string(),
            reason: "holds trajectories.json already; choose another folder (nothing is overwritten)".into(),
        });
    }
    std::fs::create_dir_all(out)
        .map_err(|e| TrajError::File { path: out.display().to_string(), reason: e.to_string() })?;
    let (report, figure) = evaluate(&cfg, &data, &models, BTreeMap::new())?;
    ebm_io::write_atomic(&out.join("config.toml"), toml::to_string(&cfg).expect("a config serialises").as_bytes())?;
    write_results(out, &report, &figure)?;
    Ok(report)
}

fn write_results(dir: &Path, report: &Report, figure: &ebm_plot::Canvas) -> Result<()> {
    let json = serde_json::to_string_pretty(&report_json(report)).expect("figures serialise");
    ebm_io::write_atomic(&dir.join("trajectories.json"), format!("{json}\n").as_bytes())?;
    let png = dir.join("trajectories.png");
    figure.save_png(&png).map_err(|e| TrajError::File { path: png.display().to_string(), reason: e.to_string() })
}

/// The range of the training trajectories' states.
fn training_range(data: &Trajectories) -> DataRange {
    let (train, _) = data.split();
    let d = crate::scene::STATE_DIM * data.cfg.length;
    DataRange::of(&data.states[train.start * d..train.end * d])
}

/// Futures of every model and the simulator from the held-out starts, their measures and the figure.
fn evaluate(
    cfg: &TrajConfig,
    data: &Trajectories,
    m: &Models,
    mut seconds: BTreeMap<String, f64>,
) -> Result<(Report, ebm_plot::Canvas)> {
    let (_, test_range) = data.split();
    let (ts, ts1) = data.transitions(test_range.clone());
    let test = TrainSet::new(&m.norm, &ts, &ts1)?;
    let t = Instant::now();
    let e = &cfg.eval;
    let starts: Vec<State> =
        test_range.skip(e.first_start).take(e.starts).map(|i| State::from_slice(data.state(i, 0))).collect();
    let real = real_futures(&cfg.data, &starts, e.futures, e.horizon, cfg.seed ^ 0x5eed);
    // the learned energy's futures, and below the same rollouts of the learned energy plus the feasibility energy
    let mut sampler = cfg.ebm.sampler();
    if let Some(n) = e.rollout_steps {
        sampler.steps = n;
    }
    if let Some(s) = e.rollout_noise_std {
        sampler.noise_std = s;
    }
    let norm = &m.norm;
    let init_std = e.rollout_init_std.unwrap_or(cfg.ebm.init_std);
    let range = e.clip_to_data_range.then(|| training_range(data));
    let ebm_futures = |energy: &dyn Energy| {
        let r = range.as_ref();
        energy_futures(energy, norm, &sampler, init_std, r, &starts, e.futures, e.horizon, e.candidates, cfg.seed)
    };
    let ebm = ebm_futures(&m.energy)?;
    let fcf = predictor_futures(&m.fc, norm, &starts, e.futures, e.horizon, cfg.seed)?;
    let gsf = predictor_futures(&m.gauss, norm, &starts, e.futures, e.horizon, cfg.seed)?;
    seconds.insert("futures".into(), t.elapsed().as_secs_f64());
    let feasible = if e.feasibility_weight > 0.0 {
        let t = Instant::now();
        let feas = FeasibilityEnergy::new(norm.clone(), cfg.data.scene, e.feasibility_weight);
        let f = ebm_futures(&WithFeasibility { learned: &m.energy, feasibility: &feas })?;
        seconds.insert("futures_feasible".into(), t.elapsed().as_secs_f64());
        Some(f)
    } else {
        None
    };
    let mut sources = vec![("ebm", &ebm), ("fc", &fcf), ("gauss", &gsf), ("real", &real)];
    if let Some(f) = &feasible {
        sources.insert(1, ("ebm_feasible", f));
    }

    let report = measure(cfg, data, &sources, seconds, {
        let mut f = BTreeMap::new();
        f.insert("test_mse_fc".to_string(), predictor_loss(&m.fc, &test)? as f64);
        f.insert("test_nll_gauss".to_string(), predictor_loss(&m.gauss, &test)? as f64);
        f
    })?;
    let mut rows = vec![("simulator", &real), ("EBM", &ebm), ("Gaussian", &gsf), ("FC", &fcf)];
    if let Some(f) = &feasible {
        rows.insert(2, ("EBM + feas", f));
    }
    let fig = crate::figure::futures_figure(&cfg.data.scene, &rows, 0, e.futures.min(5));
    Ok((report, fig))
}

/// The figures of `trajectories.json` from the four sources' futures.
fn measure(
    cfg: &TrajConfig,
    data: &Trajectories,
    sources: &[(&str, &Futures)],
    seconds: BTreeMap<String, f64>,
    mut figures: BTreeMap<String, f64>,
) -> Result<Report> {
    let judge = Judge::new(cfg.data.scene);
    let real = sources.iter().find(|(n, _)| *n == "real").expect("the real futures").1;
    let mut violations = BTreeMap::new();
    let h = cfg.eval.horizon;
    let mut marks: Vec<usize> = [20, 40, 60, 80].into_iter().filter(|&t| t <= h).chain([h]).collect();
    marks.dedup();
    for (name, f) in sources {
        for &t in &marks {
            figures.insert(format!("diversity_{name}_t{t}"), diversity(f, t));
        }
        let r = judge.rates(&f.generated());
        figures.insert(format!("violations_{name}"), r.any);
        // the same over windows of steps (t - 19 ..= t): flat if a model errs anywhere, rising if errors compound
        for &t in marks.iter().filter(|&&t| t >= 20) {
            let w = judge.rates(&f.generated_between(t - 19, t));
            figures.insert(format!("violations_{name}_steps{}to{t}", t - 19), w.any);
        }
        violations.insert(name.to_string(), r);
        figures.insert(format!("nearest_real_{name}"), nearest_real(f, real, *name == "real"));
    }
    let all = judge.rates(&data.states);
    figures.insert("violations_data".into(), all.any);
    violations.insert("data".into(), all);
    Ok(Report { figures, violations, seconds })
}

fn report_json(r: &Report) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in &r.figures {
        m.insert(k.clone(), serde_json::json!(v));
    }
    m.insert("violations_detail".into(), serde_json::to_value(&r.violations).expect("serialises"));
    m.insert("seconds".into(), serde_json::to_value(&r.seconds).expect("serialises"));
    serde_json::Value::Object(m)
}

fn save_models(cfg: &TrajConfig, m: &Models, path: &Path) -> Result<()> {
    let mut b = Bundle::new();
    m.energy.net.to_bundle(&mut b, "energy/");
    m.fc.net.to_bundle(&mut b, "fc/");
    m.gauss.net.to_bundle(&mut b, "gauss/");
    for (p, t) in &b.tensors {
        if !t.flatten_all()?.to_vec1::<f32>()?.iter().all(|x| x.is_finite()) {
            return Err(TrajError::Config(format!("not writing {}: `{p}` is not finite", path.display())));
        }
    }
    b.set_meta("ebm.traj_config", toml::to_string(cfg).expect("serialises"));
    b.set_meta("ebm.traj_normaliser", serde_json::to_string(&m.norm).expect("serialises"));
    b.save(path)?;
    Ok(())
}
