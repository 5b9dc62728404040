//! `ebm-train compose-shapes`: the compositionality experiment of issue 7 in one command.
//!
//! A size model (squares whose scale varies at the centre, preset `shapes-size-cpu`) and a position model (squares
//! of scale 0.75 anywhere, `shapes-position-cpu`) are trained separately (or taken from existing run folders), then
//! sampled for a grid of requested (scale, position) pairs three ways with the same Langevin sampler and noise:
//! the sum of both energies, each under its own condition (`ebm_sampler::Sum` of `Term::with_cond`), and each model
//! alone under its own condition. The factor probe measures every sample; a sample is right when its scale and
//! both coordinates of its position are within 0.1 of the request ([`crate::factors::tolerance`]).
//!
//! A pair is *held out* when neither training set holds it: scale not 0.75 (the position model's) and position not
//! the centre (the size model's). The bar (issue 7): on held-out pairs the composition is right for at least 60%
//! of its samples and at least twice as often as either model alone.
//!
//! Outputs in `--out`: `size/` and `position/` (the runs, when trained here), `composed.png`, `size_only.png`,
//! `position_only.png` (one sample per pair: a row per scale, a column per position) and `compose_shapes.json`.

use crate::cli::{open_model, TrainArgs};
use crate::config::{DataConfig, RunConfig};
use crate::factors::{factor_error, tolerance};
use candle_core::{Device, Tensor};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::Shape;
use ebm_eval::probe;
use ebm_kernels::Rng;
use ebm_models::{EnergyNet, ModelConfig};
use ebm_sampler::{Energy, Langevin, Sum, Term};
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
    /// Weight of the size model's energy in the sum (the position model's is 1).
    #[arg(long, default_value_t = 1.0)]
    pub size_weight: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "runs/compose-shapes")]
    pub out: PathBuf,
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
    /// Over the held-out pairs: fraction of samples with both factors within tolerance.
    pub held_out_composed: f64,
    pub held_out_size_only: f64,
    pub held_out_position_only: f64,
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

/// Runs `sampler` on `energy` from uniform noise for `n` chains of `shape`, in chunks of 100 (each chunk's terms
/// get the matching rows of their conditions from `energy_for`).
fn sample_chunks(
    n: usize,
    shape: &[usize],
    sampler: &Langevin,
    seed: u64,
    device: &Device,
    mut energy_for: impl FnMut(usize, usize) -> anyhow::Result<Box<dyn Energy>>,
) -> anyhow::Result<Tensor> {
    let per: usize = shape.iter().product();
    let mut rng = Rng::with_stream(seed, 0xc5);
    let mut out = Vec::new();
    for start in (0..n).step_by(100) {
        let k = (n - start).min(100);
        let dims: Vec<usize> = std::iter::once(k).chain(shape.iter().copied()).collect();
        let x0 = Tensor::from_vec(rng.uniform_vec(k * per, 0.0, 1.0), dims, device)?;
        let e = energy_for(start, k)?;
        out.push(sampler.run(&*e, &x0, None, None, rng.next_u64())?.x);
    }
    Ok(Tensor::cat(&out, 0)?)
}

/// The experiment (see the module documentation).
pub fn run(a: &ComposeShapesArgs, device: &Device) -> anyhow::Result<()> {
    let size_dir = model_dir(a.size_model.as_deref(), Factor::Size, a)?;
    let pos_dir = model_dir(a.position_model.as_deref(), Factor::Position, a)?;
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
    let (sm, pm) = (size_m.clone(), pos_m.clone());
    let (sc, pc) = (size_c.clone(), pos_c.clone());
    tracing::info!("sampling {n} chains of {} steps for each of: composed, size only, position only", a.steps);
    let composed = sample_chunks(n, &shape, &sampler, a.seed, device, |s, k| {
        Ok(Box::new(Sum::new(vec![
            Term::new(sm.clone(), sw).with_cond(sc.narrow(0, s, k)?),
            Term::new(pm.clone(), 1.0).with_cond(pc.narrow(0, s, k)?),
        ])))
    })?;
    let size_only = sample_chunks(n, &shape, &sampler, a.seed, device, |s, k| {
        Ok(Box::new(Sum::new(vec![Term::new(sm.clone(), 1.0).with_cond(sc.narrow(0, s, k)?)])))
    })?;
    let position_only = sample_chunks(n, &shape, &sampler, a.seed, device, |s, k| {
        Ok(Box::new(Sum::new(vec![Term::new(pm.clone(), 1.0).with_cond(pc.narrow(0, s, k)?)])))
    })?;
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
    let held = |(s, p): (f32, [f32; 2])| s != 0.75 && p != [0.5, 0.5];
    let results: Vec<PairResult> = pairs
        .iter()
        .enumerate()
        .map(|(j, &(s, p))| PairResult {
            scale: s,
            position: p,
            held_out: held((s, p)),
            composed: score(&ec[j * k..(j + 1) * k], tol),
            size_only: score(&es[j * k..(j + 1) * k], tol),
            position_only: score(&ep[j * k..(j + 1) * k], tol),
        })
        .collect();
    let held_errs =
        |e: &[(f64, f64)]| -> Vec<(f64, f64)> { (0..n).filter(|&i| held(pairs[i / k])).map(|i| e[i]).collect() };
    let (hc, hs, hp) = (
        score(&held_errs(&ec), tol).both_within,
        score(&held_errs(&es), tol).both_within,
        score(&held_errs(&ep), tol).both_within,
    );
    let report = Report {
        size_model: size_dir.display().to_string(),
        position_model: pos_dir.display().to_string(),
        tolerance: tol,
        samples_per_pair: k,
        steps: a.steps,
        size_weight: sw,
        held_out_composed: hc,
        held_out_size_only: hs,
        held_out_position_only: hp,
        meets_bar: hc >= 0.6 && hc >= 2.0 * hs && hc >= 2.0 * hp,
        pairs: results,
    };
    std::fs::create_dir_all(&a.out)?;
    let first: Vec<u32> = (0..pairs.len()).map(|j| (j * k) as u32).collect();
    let idx = Tensor::new(first.as_slice(), composed.device())?;
    for (name, x) in [("composed", &composed), ("size_only", &size_only), ("position_only", &position_only)] {
        let png = a.out.join(format!("{name}.png"));
        crate::figures::image_grid_png(&x.index_select(&idx, 0)?, None, POSITIONS.len(), &png)?;
    }
    ebm_io::write_atomic(&a.out.join("compose_shapes.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "held-out (scale, position) pairs ({side}x{side}, {k} samples each, scale and position within {tol}): composed \
         {:.1}%, size model alone {:.1}%, position model alone {:.1}% -> {}\n  outputs in {}: composed.png, \
         size_only.png, position_only.png (rows: scales {:?}; columns: positions {:?}), compose_shapes.json",
        100.0 * hc,
        100.0 * hs,
        100.0 * hp,
        if report.meets_bar { "meets the bar (>= 60% and >= 2x each single model)" } else { "below the bar" },
        a.out.display(),
        SCALES,
        POSITIONS,
    );
    Ok(())
}
