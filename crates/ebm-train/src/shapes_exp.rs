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
//! both coordinates of its position are within 0.1 of the request ([`crate::factors::tolerance`]).
//!
//! A pair is *held out* when neither training set holds it: scale not 0.75 (the position model's) and position not
//! the centre (the size model's). The bar (issue 7): on held-out pairs the composition is right for at least 60%
//! of its samples and at least twice as often as either model alone.
//!
//! Outputs in `--out`: `size/` and `position/` (the runs, when trained here), `composed.png`, `size_only.png`,
//! `position_only.png`, `composed_from_truth.png` (one sample per pair: a row per scale, a column per position) and
//! `compose_shapes.json`.

use crate::cli::{open_model, TrainArgs};
use crate::config::{DataConfig, RunConfig};
use crate::factors::{chunked_chains, factor_error, tolerance, Stage};
use candle_core::{Device, Tensor};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::Shape;
use ebm_eval::probe;
use ebm_kernels::Rng;
use ebm_models::{EnergyNet, ModelConfig};
use ebm_sampler::{Energy, LogSumExp, Neg, Sum, Term};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Train (or reuse) the size and position models, compose them, and measure the held-out pairs.
#[derive(Debug, clap::Args)]
pub struct ComposeShapesArgs {
    /// A trained size model (run folder); trained into OUT/size when absent (or reused if OUT/size has one).
    #[arg(long)]
    pub size_model: Option<PathBuf>,
    /// A trained position model (run folder); trained into OUT/position when absent (or reused).
    #[arg(long)]
    pub position_model: Option<PathBuf>,
    /// Paper scale: 64x64 sprites and a 64-filter DspritesNet, batch 128, 10000 iterations (GPU-sized); the
    /// default is the 32x32 CPU pair.
    #[arg(long)]
    pub paper_scale: bool,
    /// Override the training iterations of both models.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Samples per (scale, position) pair and way of sampling.
    #[arg(long, default_value_t = 20)]
    pub samples_per_pair: usize,
    /// Langevin steps from uniform noise (the runs' sampler settings otherwise).
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// Weight of the size model's energy in the sum (the position model's is 1); in `bayes` composition, the
    /// weight (guidance scale) of the classifier term `-log p_size(s | x)`.
    #[arg(long, default_value_t = 1.0)]
    pub size_weight: f64,
    /// How the two models are combined (see [`Composition`]).
    #[arg(long, value_enum, default_value_t = Composition::Sum)]
    pub composition: Composition,
    /// Points of the scale grid `s_k` of the `bayes` classifier, evenly spaced over the size model's training
    /// range of scales (end points included).
    #[arg(long, default_value_t = 11)]
    pub scale_grid: usize,
    /// Where the size model looks (see [`SizeFrame`]).
    #[arg(long, value_enum, default_value_t = SizeFrame::Image)]
    pub size_frame: SizeFrame,
    /// Langevin steps of the position model alone before the composed chain (0: the composed chain starts from
    /// uniform noise). The single models are then sampled for `init_steps + steps` steps.
    #[arg(long, default_value_t = 0)]
    pub init_steps: usize,
    /// Fine-tune the two models jointly for this many iterations before composing them (CD on the sum of their
    /// energies over the union of their training slices, as the official `gentest`; see [`crate::joint`]),
    /// into OUT/joint (reused or continued if there). 0: compose the separately trained models as they are.
    #[arg(long, default_value_t = 0)]
    pub joint_iterations: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "runs/compose-shapes")]
    pub out: PathBuf,
}

/// How `compose-shapes` combines the size model `E_s(x | s)` and the position model `E_p(x | pos)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeFrame {
    /// At the image as it is.
    Image,
    /// At the image translated (by whole pixels, zero filled) so that the requested position lands on the
    /// centre, where the size model saw its sprites ([`Recentred`]). This builds in that scale does not depend on
    /// position: knowledge neither model learnt.
    Requested,
}

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
    pub pairs: Vec<PairResult>,
}

/// The run config of one of the two models: the CPU preset, or its paper-scale version.
pub fn experiment_config(which: Factor, paper_scale: bool) -> anyhow::Result<RunConfig> {
    let mut cfg = crate::presets::load(&format!("shapes-{}-cpu", which.name()))?;
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
    cfg.validate()?;
    Ok(cfg)
}

/// The run folder of one model: the given one, or `out/<factor>` trained now unless it already holds a model.
fn model_dir(given: Option<&Path>, which: Factor, a: &ComposeShapesArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let dir = a.out.join(which.name());
    if dir.join("model.safetensors").exists() {
        tracing::info!("reusing the {} model in {}", which.name(), dir.display());
        return Ok(dir);
    }
    let mut cfg = experiment_config(which, a.paper_scale)?;
    if let Some(n) = a.iterations {
        cfg.train.iterations = n;
    }
    std::fs::create_dir_all(&a.out)?;
    let file = a.out.join(format!("{}.toml", which.name()));
    std::fs::write(&file, cfg.to_toml())?;
    tracing::info!("training the {} model into {}", which.name(), dir.display());
    let args = TrainArgs { config: Some(file), out: Some(dir.clone()), runs_dir: a.out.clone(), ..Default::default() };
    crate::cli::run(crate::cli::Cli { command: Some(crate::cli::Command::Train(args)) })?;
    Ok(dir)
}

/// Translates each image of `x` (`[B, C, H, W]`) by whole pixels: row `b` of the result at `(y, x)` is the input
/// at `(y - t_y, x - t_x)` with `(t_x, t_y) = shifts[b]`, and 0 where that falls outside the image.
pub fn translate(x: &Tensor, shifts: &[(i32, i32)]) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let [b, c, h, w] = dims[..] else { candle_core::bail!("translate takes [B, C, H, W], got {dims:?}") };
    if shifts.len() != b {
        candle_core::bail!("translate: {} shifts for a batch of {b}", shifts.len());
    }
    let v = x.to_device(&Device::Cpu)?.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; v.len()];
    let (h, w) = (h as i64, w as i64);
    for (r, &(tx, ty)) in shifts.iter().enumerate() {
        for ch in 0..c {
            let base = (r * c + ch) * (h * w) as usize;
            for yy in 0..h {
                let sy = yy - ty as i64;
                if !(0..h).contains(&sy) {
                    continue;
                }
                for xx in 0..w {
                    let sx = xx - tx as i64;
                    if (0..w).contains(&sx) {
                        out[base + (yy * w + xx) as usize] = v[base + (sy * w + sx) as usize];
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, dims, x.device())?.to_dtype(x.dtype())
}

/// The whole-pixel shift that moves position `p` (of `ebm_data::shapes`' 0..1 units) to the centre of a
/// `side`-pixel image.
pub fn recentring_shift(p: [f32; 2], side: usize) -> (i32, i32) {
    let t =
        |v: f32| (ebm_data::shapes::pos_to_pixel(0.5, side) - ebm_data::shapes::pos_to_pixel(v as f64, side)).round();
    (t(p[0]) as i32, t(p[1]) as i32)
}

/// An energy that looks at each image translated by its own whole-pixel shift: `E(x) = E_inner(T_b x)`, with
/// [`translate`] as `T_b`. Its input gradient is the inner one translated back, `T_b^T g = T_{-b} g` (0 on the
/// pixels the translation drops).
pub struct Recentred {
    pub inner: Arc<dyn Energy + Send + Sync>,
    /// One `(t_x, t_y)` per row of the batch.
    pub shifts: Vec<(i32, i32)>,
}

impl Recentred {
    fn back(&self) -> Vec<(i32, i32)> {
        self.shifts.iter().map(|&(a, b)| (-a, -b)).collect()
    }
}

impl Energy for Recentred {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.inner.energy(&translate(x, &self.shifts)?, cond)
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        let (e, g) = self.inner.energy_and_grad(&translate(x, &self.shifts)?, cond)?;
        // the transpose of "pixel y takes x(y - t)" gives pixel p the gradient at p + t, and 0 when p + t is outside
        // the image: exactly the translation by -t
        Ok((e, translate(&g, &self.back())?))
    }
}

/// `-log p_s(s | x) = E_s(x | s) + log sum_k exp(-E_s(x | s_k))`, the size model as a classifier over the scale
/// grid `grid`, for a batch whose rows request the scales `scale` (`[B, 1]`): `Sum` of `Term(size, cond s)` and
/// `Neg(LogSumExp(Term(size, cond s_k) for each k))`. It is never negative when every requested scale is on the
/// grid (a probability is at most 1) and unchanged by adding to `E_s` anything that does not depend on the scale.
pub fn size_classifier(size: Arc<dyn Energy + Send + Sync>, scale: &Tensor, grid: &[f32]) -> candle_core::Result<Sum> {
    let b = scale.dims()[0];
    let mut lse = Vec::with_capacity(grid.len());
    for &g in grid {
        lse.push(
            Term::new(size.clone(), 1.0).with_cond(Tensor::full(g, (b, 1), scale.device())?.to_dtype(scale.dtype())?),
        );
    }
    Ok(Sum::new(vec![
        Term::new(size, 1.0).with_cond(scale.clone()),
        Term::new(Arc::new(Neg(LogSumExp::new(lse))), 1.0),
    ]))
}

/// The [`Composition::Bayes`] energy: `E_p(x | pos) + w (-log p_s(s | x))` ([`size_classifier`]).
pub fn bayes_composite(
    position: Arc<dyn Energy + Send + Sync>,
    pos: &Tensor,
    size: Arc<dyn Energy + Send + Sync>,
    scale: &Tensor,
    grid: &[f32],
    w: f64,
) -> candle_core::Result<Sum> {
    Ok(Sum::new(vec![
        Term::new(position, 1.0).with_cond(pos.clone()),
        Term::new(Arc::new(size_classifier(size, scale, grid)?), w),
    ]))
}

fn score(errs: &[(f64, f64)], tol: f64) -> Score {
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
fn true_images(pairs: &[(f32, [f32; 2])], k: usize, side: usize, ss: u32, device: &Device) -> anyhow::Result<Tensor> {
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
pub fn run(a: &ComposeShapesArgs, device: &Device) -> anyhow::Result<()> {
    let size_dir = model_dir(a.size_model.as_deref(), Factor::Size, a)?;
    let pos_dir = model_dir(a.position_model.as_deref(), Factor::Position, a)?;
    let separate = [size_dir.display().to_string(), pos_dir.display().to_string()];
    let (size_dir, pos_dir) = if a.joint_iterations > 0 {
        crate::joint::finetune(&size_dir, &pos_dir, &a.out.join("joint"), a.joint_iterations, a.seed, device)?
    } else {
        (size_dir, pos_dir)
    };
    let load = |dir: &Path, dim: usize| -> anyhow::Result<(Arc<EnergyNet>, RunConfig)> {
        let (mut m, cfg) = open_model(dir, device)?;
        let cfg = cfg.ok_or_else(|| anyhow::anyhow!("{}: a run folder is needed", dir.display()))?;
        anyhow::ensure!(
            m.config().cond_dim() == dim && !m.config().is_class_conditional(),
            "{}: expected a model conditioned on {dim} continuous latents",
            dir.display()
        );
        m.set_frozen(true);
        Ok((Arc::new(m), cfg))
    };
    let (size_m, size_cfg) = load(&size_dir, 1)?;
    let (pos_m, _) = load(&pos_dir, 2)?;
    let shape = size_m.config().input_shape();
    anyhow::ensure!(pos_m.config().input_shape() == shape, "the two models take images of different shapes");
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
                  stages: &mut dyn FnMut(usize, usize) -> anyhow::Result<Vec<Stage<'static>>>| {
        chunked_chains(n, &shape, starts, &sampler, &mut Rng::with_stream(a.seed, 0xc5), device, stages)
    };
    let mut composed_stages = |s: usize, k: usize| -> anyhow::Result<Vec<Stage<'static>>> {
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
        DataConfig::Images { source, shapes, .. } => {
            crate::image::shapes_config(*source, shapes.as_ref()).map_or(1, |s| s.supersample)
        }
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
    let errors = |x: &Tensor| -> anyhow::Result<Vec<(f64, f64)>> {
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
        pairs: results,
    };
    std::fs::create_dir_all(&a.out)?;
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
        crate::figures::image_grid_png(&x.index_select(&idx, 0)?, None, POSITIONS.len(), &png)?;
    }
    ebm_io::write_atomic(&a.out.join("compose_shapes.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "held-out (scale, position) pairs ({side}x{side}, {k} samples each, scale and position within {tol}): composed \
         {:.1}%, size model alone {:.1}%, position model alone {:.1}% -> {} (size model alone, translated to the \
         request: {:.1}%; composed chains started at the true images: {:.1}%, the true images themselves {:.1}%)\n  \
         outputs in {}: composed.png, size_only.png, position_only.png, composed_from_truth.png (rows: scales \
         {:?}; columns: positions {:?}), compose_shapes.json",
        100.0 * hc,
        100.0 * hs,
        100.0 * hp,
        if report.meets_bar { "meets the bar (>= 60% and >= 2x each single model)" } else { "below the bar" },
        100.0 * ht,
        100.0 * h_from,
        100.0 * h_truth,
        a.out.display(),
        SCALES,
        POSITIONS,
    );
    Ok(())
}
