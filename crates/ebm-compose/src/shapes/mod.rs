//! `ebm-train compose-shapes`: the compositionality experiment of issue 7 in one command.
//!
//! A size model (squares whose scale varies at the centre, preset `shapes-size-cpu`) and a position model (squares
//! of scale 0.75 anywhere, `shapes-position-cpu`) are trained separately (or taken from existing run folders), then
//! sampled for a grid of requested (scale, position) pairs three ways with the same Langevin sampler and noise:
//! the sum of both energies, each under its own condition (`ebm_sampler::Sum` of `Term::with_cond`), and each model
//! alone under its own condition. Options replace the sum by the size model as a classifier
//! ([`Composition::Bayes`]), let the size model look at the image recentred on the requested position
//! ([`SizeFrame::Requested`]) and start the composed chains from the position model's samples (`--init-steps`);
//! `--joint-iterations` first fine-tunes the two models together ([`crate::joint`]).
//! The factor probe measures every sample; a sample is right when its scale and
//! both coordinates of its position are within 0.1 of the request ([`ebm_eval::factors::tolerance`]).
//!
//! A pair is *held out* when neither training set holds it: scale not 0.75 (the position model's) and position not
//! the centre (the size model's). The bar (issue 7): on held-out pairs the composition is right for at least 60%
//! of its samples and at least twice as often as either model alone.
//!
//! Outputs in `--out`: `size/` and `position/` (the runs, when trained here), `composed.png`, `size_only.png`,
//! `position_only.png`, `composed_from_truth.png` (one sample per pair: a row per scale, a column per position) and
//! `compose_shapes.json`.

pub mod all_factors;
pub mod recentre;

pub use recentre::{bayes_composite, recentring_shift, size_classifier, translate, Recentred};

use candle_core::{Device, Tensor};
use ebm_cd::config::{DataConfig, RunConfig};
use ebm_cd::{ensure, CdError, Result, Run};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::Shape;
use ebm_eval::factors::{factor_error, tolerance};
use ebm_eval::probe;
use ebm_kernels::Rng;
use ebm_models::{EnergyNet, ModelConfig};
use ebm_sampler::starts::{chunked, Stage};
use ebm_sampler::{Energy, Sum, Term};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `compose-shapes` does: train (or reuse) the size and position models, compose them, and measure the
/// held-out pairs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A trained size model (run folder); trained into OUT/size when absent (or reused if OUT/size has one).
    pub size_model: Option<PathBuf>,
    /// A trained position model (run folder); trained into OUT/position when absent (or reused).
    pub position_model: Option<PathBuf>,
    /// Paper scale: 64x64 sprites and a 64-filter DspritesNet, batch 128, 10000 iterations (GPU-sized); the
    /// default is the 32x32 CPU pair.
    pub paper_scale: bool,
    /// Override the training iterations of both models.
    pub iterations: Option<u64>,
    /// Samples per (scale, position) pair and way of sampling.
    pub samples_per_pair: usize,
    /// Langevin steps from uniform noise (the runs' sampler settings otherwise).
    pub steps: usize,
    /// Weight of the size model's energy in the sum (the position model's is 1); in `bayes` composition, the
    /// weight (guidance scale) of the classifier term `-log p_size(s | x)`.
    pub size_weight: f64,
    /// How the two models are combined (see [`Composition`]).
    pub composition: Composition,
    /// Points of the scale grid `s_k` of the `bayes` classifier, evenly spaced over the size model's training
    /// range of scales (end points included).
    pub scale_grid: usize,
    /// Where the size model looks (see [`SizeFrame`]).
    pub size_frame: SizeFrame,
    /// Langevin steps of the position model alone before the composed chain (0: the composed chain starts from
    /// uniform noise). The single models are then sampled for `init_steps + steps` steps.
    pub init_steps: usize,
    /// Fine-tune the two models jointly for this many iterations before composing them (CD on the sum of their
    /// energies over the union of their training slices, as the official `gentest`; see [`crate::joint`]),
    /// into OUT/joint (reused or continued if there). 0: compose the separately trained models as they are.
    pub joint_iterations: u64,
    pub seed: u64,
    /// The experiment's folder (the command line's default: `runs/compose-shapes`).
    pub out: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            size_model: None,
            position_model: None,
            paper_scale: false,
            iterations: None,
            samples_per_pair: 20,
            steps: 60,
            size_weight: 1.0,
            composition: Composition::Sum,
            scale_grid: 11,
            size_frame: SizeFrame::Image,
            init_steps: 0,
            joint_iterations: 0,
            seed: 0,
            out: PathBuf::from("runs/compose-shapes"),
        }
    }
}

/// How `compose-shapes` combines the size model `E_s(x | s)` and the position model `E_p(x | pos)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Composition {
    /// The product of experts `E_p(x | pos) + w E_s(x | s)` (the paper's energy sum).
    Sum,
    /// The size model as an implicit classifier (Bayes' rule): `p(x | pos, s) ∝ p_p(x | pos) p_s(s | x)^w` with
    /// `-log p_s(s | x) = E_s(x | s) + log sum_k exp(-E_s(x | s_k))` over a grid of scales `s_k` (see
    /// [`bayes_composite`]). What the size model's energy holds whatever the scale (a sprite at the centre, a
    /// black background) cancels between the two parts; only what tells the scales apart remains.
    Bayes,
}

/// Where the size model looks at a composed chain's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeFrame {
    /// At the image as it is.
    Image,
    /// At the image translated (by whole pixels, zero filled) so that the requested position lands on the
    /// centre, where the size model saw its sprites ([`Recentred`]). This builds in that scale does not depend on
    /// position: knowledge neither model learnt.
    Requested,
}

impl std::str::FromStr for Composition {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sum" => Ok(Composition::Sum),
            "bayes" => Ok(Composition::Bayes),
            _ => Err(format!("unknown composition `{s}` (use sum or bayes)")),
        }
    }
}

impl std::str::FromStr for SizeFrame {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "image" => Ok(SizeFrame::Image),
            "requested" => Ok(SizeFrame::Requested),
            _ => Err(format!("unknown size frame `{s}` (use image or requested)")),
        }
    }
}

/// The stream of every chain of the experiment (each way of sampling draws the same starts and seeds).
pub const CHAIN_STREAM: u64 = 0xc5;

/// The requested scales (rows of the figures).
pub const SCALES: [f32; 5] = [0.5, 0.6, 0.75, 0.9, 1.0];
/// The requested positions (columns of the figures).
pub const POSITIONS: [[f32; 2]; 5] = [[0.5, 0.5], [0.2, 0.2], [0.8, 0.2], [0.2, 0.8], [0.8, 0.8]];

/// One way of sampling a pair, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    /// Fraction of samples whose scale and position are both within tolerance.
    pub both_within: f64,
    pub size_within: f64,
    pub position_within: f64,
    pub mean_size_error: f64,
    pub mean_position_error: f64,
}

/// One requested pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub scale: f32,
    pub position: [f32; 2],
    /// In neither training set.
    pub held_out: bool,
    pub composed: Score,
    /// The composed chains started at the generator's image of the pair: does the composed energy keep the right
    /// image once it is there?
    pub composed_from_truth: Score,
    pub size_only: Score,
    pub position_only: Score,
}

/// The JSON the command writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub size_model: String,
    pub position_model: String,
    pub tolerance: f64,
    pub samples_per_pair: usize,
    pub steps: usize,
    pub size_weight: f64,
    pub composition: Composition,
    /// The classifier's scale grid (`bayes` composition only; empty otherwise).
    pub scale_grid: Vec<f32>,
    pub size_frame: SizeFrame,
    pub init_steps: usize,
    /// The separately trained models (size, position) the composed ones start from.
    pub separate_models: [String; 2],
    /// Iterations of joint fine-tuning of the two before composing (0: none).
    pub joint_iterations: u64,
    /// Over the held-out pairs: fraction of samples with both factors within tolerance.
    pub held_out_composed: f64,
    pub held_out_size_only: f64,
    pub held_out_position_only: f64,
    /// The size model's own samples translated (by whole pixels) to the requested position: what the knowledge
    /// that [`SizeFrame::Requested`] builds in gives without the position model.
    pub held_out_size_only_translated: f64,
    /// The generator's own images of the held-out pairs (the probe's ceiling).
    pub held_out_truth: f64,
    /// The composed chains started at those images instead of noise (see [`PairResult::composed_from_truth`]).
    pub held_out_composed_from_truth: f64,
    /// Composed >= 60% and >= 2x each single model on held-out pairs.
    pub meets_bar: bool,
    /// Image side in pixels.
    #[serde(skip)]
    pub side: usize,
    pub pairs: Vec<PairResult>,
}

/// The run config of one of the two models: the CPU preset, or its paper-scale version.
pub fn experiment_config(which: Factor, paper_scale: bool) -> Result<RunConfig> {
    let mut cfg = ebm_cd::presets::load(&format!("shapes-{}-cpu", which.name()))?;
    if paper_scale {
        cfg.name = format!("shapes-{}-64", which.name());
        if let ModelConfig::DspritesNet(m) = &mut cfg.model {
            m.image_size = 64;
            m.filters = 64;
        }
        if let DataConfig::Images { shapes: Some(s), .. } = &mut cfg.data {
            s.side = 64;
        }
        cfg.train.batch_size = 128;
        cfg.train.iterations = 10000;
        cfg.train.checkpoint_every = 1000;
        cfg.train.figure_every = 1000;
        cfg.description = format!("{} Paper scale (64x64, 64 filters): GPU-sized.", cfg.description);
    }
    cfg.validate(&format!("the {} model's config", which.name()))?;
    Ok(cfg)
}

/// The run folder of one model: the given one, or `out/<factor>` trained now unless it already holds a model.
fn model_dir(given: Option<&Path>, which: Factor, a: &Settings, device: &Device) -> Result<PathBuf> {
    let dir = a.out.join(which.name());
    let cfg = || experiment_config(which, a.paper_scale);
    train_or_reuse(given, &dir, which.name(), cfg, a.iterations, device)
}

/// The run folder `given`, or `dir` if it already holds a model, or `dir` after training the run `cfg()` in it
/// (continuing a run an earlier call left unfinished there); `iterations` overrides the config's.
pub(crate) fn train_or_reuse(
    given: Option<&Path>,
    dir: &Path,
    name: &str,
    cfg: impl FnOnce() -> Result<RunConfig>,
    iterations: Option<u64>,
    device: &Device,
) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if dir.join("model.safetensors").exists() {
        tracing::info!("reusing the {name} model in {}", dir.display());
        return Ok(dir.to_path_buf());
    }
    let mut cfg = cfg()?;
    if let Some(n) = iterations {
        cfg.train.iterations = n;
    }
    tracing::info!("training the {name} model into {}", dir.display());
    let start = if ebm_cd::run_dir::holds_run(dir) == Some(false) && dir.join("checkpoint.safetensors").exists() {
        tracing::info!("continuing the unfinished {name} model in {}", dir.display());
        ebm_cd::Start::Resume { dir: dir.to_path_buf(), iterations }
    } else {
        ebm_cd::Start::New {
            cfg: Box::new(cfg),
            runs_dir: dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            out: Some(dir.to_path_buf()),
            existing: ebm_cd::run_dir::Existing::Refuse,
            ignore_memory: false,
        }
    };
    let outcome = ebm_cd::run::train(start, device)?;
    tracing::info!("{outcome}");
    Ok(dir.to_path_buf())
}

/// How a set of (scale error, position error) pairs scores at tolerance `tol`.
pub(crate) fn score(errs: &[(f64, f64)], tol: f64) -> Score {
    let n = errs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&(f64, f64)) -> f64| errs.iter().map(f).map(|e| e.min(1.0)).sum::<f64>() / n;
    Score {
        both_within: errs.iter().filter(|e| e.0 <= tol && e.1 <= tol).count() as f64 / n,
        size_within: errs.iter().filter(|e| e.0 <= tol).count() as f64 / n,
        position_within: errs.iter().filter(|e| e.1 <= tol).count() as f64 / n,
        mean_size_error: mean(&|e| e.0),
        mean_position_error: mean(&|e| e.1),
    }
}

/// The generator's image (a square at orientation 0, `ss x ss` supersampling) of each pair, `k` copies each, as
/// `[pairs * k, 1, side, side]` in [0, 1].
fn true_images(pairs: &[(f32, [f32; 2])], k: usize, side: usize, ss: u32, device: &Device) -> Result<Tensor> {
    let ss = ss.max(1);
    let mut v = Vec::with_capacity(pairs.len() * k * side * side);
    for &(scale, [pos_x, pos_y]) in pairs {
        let sprite = ebm_data::shapes::Sprite { shape: Shape::Square, scale, orientation: 0.0, pos_x, pos_y };
        let img: Vec<f32> =
            ebm_data::shapes::render(&sprite, side, ss).iter().map(|&c| c as f32 / (ss * ss) as f32).collect();
        for _ in 0..k {
            v.extend_from_slice(&img);
        }
    }
    Ok(Tensor::from_vec(v, (pairs.len() * k, 1, side, side), device)?)
}

/// The experiment (see the module documentation).
pub fn run(a: &Settings, device: &Device) -> Result<Report> {
    let size_dir = model_dir(a.size_model.as_deref(), Factor::Size, a, device)?;
    let pos_dir = model_dir(a.position_model.as_deref(), Factor::Position, a, device)?;
    let separate = [size_dir.display().to_string(), pos_dir.display().to_string()];
    let (size_dir, pos_dir) = if a.joint_iterations > 0 {
        crate::joint::finetune(&size_dir, &pos_dir, &a.out.join("joint"), a.joint_iterations, a.seed, device)?
    } else {
        (size_dir, pos_dir)
    };
    let load = |dir: &Path, dim: usize| -> Result<(Arc<EnergyNet>, RunConfig)> {
        let (mut m, cfg) = Run::open_folder(dir, device)?;
        if m.config().cond_dim() != dim || m.config().is_class_conditional() {
            return Err(CdError::run_folder(dir, format!("expected a model conditioned on {dim} continuous latents")));
        }
        m.set_frozen(true);
        Ok((Arc::new(m), cfg))
    };
    let (size_m, size_cfg) = load(&size_dir, 1)?;
    let (pos_m, _) = load(&pos_dir, 2)?;
    let shape = size_m.config().input_shape();
    ensure!(pos_m.config().input_shape() == shape, "the two models take images of different shapes");
    let side = shape[1];
    let sampler = size_cfg.sampler.langevin(a.steps);
    let k = a.samples_per_pair.max(1);
    let pairs: Vec<(f32, [f32; 2])> = SCALES.iter().flat_map(|&s| POSITIONS.iter().map(move |&p| (s, p))).collect();
    let n = pairs.len() * k;
    let size_c: Vec<f32> = pairs.iter().flat_map(|&(s, _)| std::iter::repeat_n(s, k)).collect();
    let pos_c: Vec<f32> = pairs.iter().flat_map(|&(_, p)| std::iter::repeat_n(p, k).flatten()).collect();
    let size_c = Tensor::from_vec(size_c, (n, 1), device)?;
    let pos_c = Tensor::from_vec(pos_c, (n, 2), device)?;
    let sw = a.size_weight;
    let grid: Vec<f32> = match a.composition {
        Composition::Sum => Vec::new(),
        Composition::Bayes => {
            let (lo, hi) = match &size_cfg.data {
                DataConfig::Images { shapes: Some(s), .. } => (s.scale.lo, s.scale.hi),
                _ => (SCALES[0], SCALES[SCALES.len() - 1]),
            };
            let m = a.scale_grid.max(2);
            (0..m).map(|i| lo + (hi - lo) * i as f32 / (m - 1) as f32).collect()
        }
    };
    let shifts: Vec<(i32, i32)> =
        pairs.iter().flat_map(|&(_, p)| std::iter::repeat_n(recentring_shift(p, side), k)).collect();
    let (sm, pm) = (size_m.clone(), pos_m.clone());
    let (sc, pc) = (size_c.clone(), pos_c.clone());
    let (init, steps) = (a.init_steps, a.steps);
    tracing::info!(
        "sampling {n} chains of {} steps for each of: composed ({:?}, size frame {:?}), size only, position only",
        init + steps,
        a.composition,
        a.size_frame
    );
    let chains = |starts: Option<&Tensor>,
                  stages: &mut dyn FnMut(usize, usize) -> candle_core::Result<Vec<Stage<'static>>>| {
        chunked(n, &shape, starts, &sampler, &mut Rng::with_stream(a.seed, CHAIN_STREAM), device, stages)
    };
    let mut composed_stages = |s: usize, k: usize| -> candle_core::Result<Vec<Stage<'static>>> {
        let (sc, pc) = (sc.narrow(0, s, k)?, pc.narrow(0, s, k)?);
        let size: Arc<dyn Energy + Send + Sync> = match a.size_frame {
            SizeFrame::Image => sm.clone(),
            SizeFrame::Requested => Arc::new(Recentred { inner: sm.clone(), shifts: shifts[s..s + k].to_vec() }),
        };
        let e: Box<dyn Energy> = match a.composition {
            Composition::Sum => Box::new(Sum::new(vec![
                Term::new(size, sw).with_cond(sc),
                Term::new(pm.clone(), 1.0).with_cond(pc.clone()),
            ])),
            Composition::Bayes => Box::new(bayes_composite(pm.clone(), &pc, size, &sc, &grid, sw)?),
        };
        let mut stages: Vec<Stage> = Vec::new();
        if init > 0 {
            stages.push((Box::new(Sum::new(vec![Term::new(pm.clone(), 1.0).with_cond(pc)])), None, init));
        }
        stages.push((e, None, steps));
        Ok(stages)
    };
    let composed = chains(None, &mut composed_stages)?;
    // the same composed chains started at the generator's image of each requested pair: whether the composed
    // energy holds the right image once there (a failure from noise is then one of mixing, not of the energy)
    // rendered as the size model's training images were
    let supersample = match &size_cfg.data {
        DataConfig::Images { source, shapes, .. } => source.shapes_config(shapes.as_ref()).map_or(1, |s| s.supersample),
        _ => 1,
    };
    let truth = true_images(&pairs, k, side, supersample, device)?;
    let from_truth = chains(Some(&truth), &mut composed_stages)?;
    let size_only = chains(None, &mut |s, k| {
        Ok(vec![(
            Box::new(Sum::new(vec![Term::new(sm.clone(), 1.0).with_cond(sc.narrow(0, s, k)?)])) as _,
            None,
            init + steps,
        )])
    })?;
    let position_only = chains(None, &mut |s, k| {
        Ok(vec![(
            Box::new(Sum::new(vec![Term::new(pm.clone(), 1.0).with_cond(pc.narrow(0, s, k)?)])) as _,
            None,
            init + steps,
        )])
    })?;
    let back: Vec<(i32, i32)> = shifts.iter().map(|&(x, y)| (-x, -y)).collect();
    let size_translated = translate(&size_only, &back)?;
    let tol = tolerance(Factor::Size);
    debug_assert_eq!(tol, tolerance(Factor::Position));
    let errors = |x: &Tensor| -> Result<Vec<(f64, f64)>> {
        let m = probe::measure_batch(x)?;
        Ok((0..n)
            .map(|i| {
                let (s, p) = pairs[i / k];
                let sq = Some(Shape::Square);
                (
                    factor_error(m[i].as_ref(), Factor::Size, &[s], sq),
                    factor_error(m[i].as_ref(), Factor::Position, &p, sq),
                )
            })
            .collect())
    };
    let (ec, es, ep) = (errors(&composed)?, errors(&size_only)?, errors(&position_only)?);
    let (et0, efrom) = (errors(&truth)?, errors(&from_truth)?);
    let et = errors(&size_translated)?;
    let held = |(s, p): (f32, [f32; 2])| s != 0.75 && p != [0.5, 0.5];
    let results: Vec<PairResult> = pairs
        .iter()
        .enumerate()
        .map(|(j, &(s, p))| PairResult {
            scale: s,
            position: p,
            held_out: held((s, p)),
            composed: score(&ec[j * k..(j + 1) * k], tol),
            composed_from_truth: score(&efrom[j * k..(j + 1) * k], tol),
            size_only: score(&es[j * k..(j + 1) * k], tol),
            position_only: score(&ep[j * k..(j + 1) * k], tol),
        })
        .collect();
    let held_errs =
        |e: &[(f64, f64)]| -> Vec<(f64, f64)> { (0..n).filter(|&i| held(pairs[i / k])).map(|i| e[i]).collect() };
    let (h_truth, h_from) = (score(&held_errs(&et0), tol).both_within, score(&held_errs(&efrom), tol).both_within);
    let (hc, hs, hp, ht) = (
        score(&held_errs(&ec), tol).both_within,
        score(&held_errs(&es), tol).both_within,
        score(&held_errs(&ep), tol).both_within,
        score(&held_errs(&et), tol).both_within,
    );
    let report = Report {
        size_model: size_dir.display().to_string(),
        position_model: pos_dir.display().to_string(),
        tolerance: tol,
        samples_per_pair: k,
        steps: a.steps,
        size_weight: sw,
        composition: a.composition,
        scale_grid: grid.clone(),
        size_frame: a.size_frame,
        init_steps: init,
        separate_models: separate,
        joint_iterations: a.joint_iterations,
        held_out_composed: hc,
        held_out_size_only: hs,
        held_out_position_only: hp,
        held_out_size_only_translated: ht,
        held_out_truth: h_truth,
        held_out_composed_from_truth: h_from,
        meets_bar: hc >= 0.6 && hc >= 2.0 * hs && hc >= 2.0 * hp,
        side,
        pairs: results,
    };
    std::fs::create_dir_all(&a.out).map_err(ebm_cd::error::fs_err(&a.out))?;
    let first: Vec<u32> = (0..pairs.len()).map(|j| (j * k) as u32).collect();
    let idx = Tensor::new(first.as_slice(), composed.device())?;
    let figures = [
        ("composed", &composed),
        ("size_only", &size_only),
        ("position_only", &position_only),
        ("composed_from_truth", &from_truth),
    ];
    for (name, x) in figures {
        let png = a.out.join(format!("{name}.png"));
        ebm_eval::figures::image_grid_png(&x.index_select(&idx, 0)?, None, POSITIONS.len(), &png)?;
    }
    ebm_io::write_atomic(&a.out.join("compose_shapes.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

impl Report {
    /// What a user reads at the end of the experiment, with the outputs' names in `out`.
    pub fn summary(&self, out: &Path) -> String {
        let (side, k, tol) = (self.side, self.samples_per_pair, self.tolerance);
        format!(
        "held-out (scale, position) pairs ({side}x{side}, {k} samples each, scale and position within {tol}): composed \
         {:.1}%, size model alone {:.1}%, position model alone {:.1}% -> {} (size model alone, translated to the \
         request: {:.1}%; composed chains started at the true images: {:.1}%, the true images themselves {:.1}%)\n  \
         outputs in {}: composed.png, size_only.png, position_only.png, composed_from_truth.png (rows: scales \
         {:?}; columns: positions {:?}), compose_shapes.json",
        100.0 * self.held_out_composed,
        100.0 * self.held_out_size_only,
        100.0 * self.held_out_position_only,
        if self.meets_bar { "meets the bar (>= 60% and >= 2x each single model)" } else { "below the bar" },
        100.0 * self.held_out_size_only_translated,
        100.0 * self.held_out_composed_from_truth,
        100.0 * self.held_out_truth,
        out.display(),
        SCALES,
        POSITIONS,
    )
    }
}
