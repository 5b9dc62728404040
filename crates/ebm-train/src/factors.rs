//! Models conditioned on continuous factors (DspritesNet on `dsprites-*` or `shapes-*`): their end-of-run
//! evaluation, which judges fresh samples with the factor probe ([`ebm_eval::probe`]) instead of a classifier.
//!
//! A sample drawn under condition `c` of factor `f` counts as right when the probe's measurement of `f` is within
//! [`tolerance`]`(f)` of `c` ([`factor_error`]). The same fraction is reported for the test images under their own
//! conditions (the probe's ceiling) and for the samples against another sample's condition (what ignoring the
//! condition would score).

use crate::config::{DataConfig, RunConfig};
use crate::image::ImageData;
use crate::run_dir::RunDir;
use crate::state::TrainState;
use candle_core::{Device, Tensor};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::Shape;
use ebm_data::ImageSet;
use ebm_eval::probe::{self, Measurement};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::{Energy, Langevin};
use serde::Serialize;

/// How far a measured factor may be from the requested one and still count as right: 0.1 in scale (of dSprites'
/// 0.5..1), 0.1 in each position coordinate (of 0..1; 2 pixels at 32x32), the right shape, 15 degrees of
/// orientation (modulo the shape's symmetry).
pub fn tolerance(f: Factor) -> f64 {
    match f {
        Factor::Size | Factor::Position => 0.1,
        Factor::Shape => 0.5,
        Factor::Rotation => 15f64.to_radians(),
    }
}

/// The error of measurement `m` against the condition vector `cond` of `factor` (as `Factor::condition` builds
/// it): scale difference; the larger coordinate difference of position; 0 or 1 for shape; orientation difference
/// in radians. Scale and orientation are read as the known `shape` when given (a set of one shape), else as the
/// measured shape. Infinite when the probe found no sprite.
pub fn factor_error(m: Option<&Measurement>, factor: Factor, cond: &[f32], shape: Option<Shape>) -> f64 {
    let Some(m) = m else { return f64::INFINITY };
    let sh = shape.unwrap_or(m.shape);
    match factor {
        Factor::Size => (m.scale_as(sh) - cond[0] as f64).abs(),
        Factor::Position => (m.pos_x - cond[0] as f64).abs().max((m.pos_y - cond[1] as f64).abs()),
        Factor::Shape => {
            let want = (0..3).max_by(|&a, &b| cond[a].total_cmp(&cond[b])).unwrap_or(0);
            (m.shape.index() != want) as u8 as f64
        }
        Factor::Rotation => {
            let want = (cond[1] as f64).atan2(cond[0] as f64);
            probe::angle_error(m.orientation_as(sh), want, sh.symmetry())
        }
    }
}

/// The shape every image of `set` has, if they share one (the labels of generated and dSprites sets are shapes).
pub fn single_shape(set: &ImageSet) -> Option<Shape> {
    let first = *set.labels().first()?;
    if set.num_classes() == 3 && set.labels().iter().all(|&l| l == first) {
        Shape::from_index(first as usize)
    } else {
        None
    }
}

/// What a continuous-condition run measures at its end.
#[derive(Debug, Clone, Serialize)]
pub struct FactorEval {
    pub factor: &'static str,
    /// See [`tolerance`].
    pub tolerance: f64,
    /// Fresh chains from uniform noise, each under the condition of a test image.
    pub samples: usize,
    pub sample_steps: usize,
    /// Fraction of those samples whose measured factor is within the tolerance of their condition.
    pub fraction_within: f64,
    /// Median of the samples' errors.
    pub median_error: f64,
    /// The same fraction for the test images under their own conditions (the probe's ceiling).
    pub data_fraction_within: f64,
    /// The samples judged against another sample's condition (pairing i with i + n/2): the level of a model that
    /// ignores its condition.
    pub shuffled_fraction_within: f64,
    /// The shape the probe assumed for scale and orientation (`None`: the measured one).
    pub assumed_shape: Option<Shape>,
}

fn factor_of(cfg: &RunConfig) -> anyhow::Result<Factor> {
    let DataConfig::Images { source, .. } = &cfg.data else { anyhow::bail!("not an image run") };
    source.factor().ok_or_else(|| anyhow::anyhow!("`{}` has no factors", source.name()))
}

fn fraction(errs: &[f64], tol: f64) -> f64 {
    errs.iter().filter(|&&e| e <= tol).count() as f64 / errs.len().max(1) as f64
}

/// One stage of [`chunked_chains`]: an energy, the condition its chunk of chains runs under (if the energy does not
/// carry its own), and a number of steps.
pub type Stage<'a> = (Box<dyn Energy + 'a>, Option<Tensor>, usize);

/// Runs `n` chains of images of `shape` from `starts` (`[n, ...]`) or, when `None`, from uniform noise in [0, 1],
/// in chunks of 100: on each chunk, the stages that `stages(start, k)` returns, each from the previous one's end,
/// with `sampler`'s settings and that stage's steps. `rng` draws each chunk's noise starts, then one chain seed
/// per stage.
pub fn chunked_chains<'a>(
    n: usize,
    shape: &[usize],
    starts: Option<&Tensor>,
    sampler: &Langevin,
    rng: &mut Rng,
    device: &Device,
    mut stages: impl FnMut(usize, usize) -> anyhow::Result<Vec<Stage<'a>>>,
) -> anyhow::Result<Tensor> {
    let mut out = Vec::new();
    for start in (0..n).step_by(100) {
        let k = (n - start).min(100);
        let mut x = match starts {
            Some(s) => s.narrow(0, start, k)?.to_device(device)?,
            None => crate::image::uniform_images(k, shape, [0.0, 1.0], rng, device)?,
        };
        for (e, cond, steps) in stages(start, k)? {
            let stage = Langevin { steps, ..sampler.clone() };
            x = stage.run(&*e, &x, cond.as_ref(), None, rng.next_u64())?.x;
        }
        out.push(x);
    }
    Ok(Tensor::cat(&out, 0)?)
}

/// A borrowed model as a boxed [`Energy`] (keeping its own input-gradient path).
struct ByRef<'a>(&'a EnergyNet);

impl Energy for ByRef<'_> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.0.energy(x, cond)
    }
    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        self.0.energy_and_grad(x, cond)
    }
}

/// Chains from uniform noise under the given conditions `[N, D]`, `steps` Langevin steps of the run's sampler
/// ([`chunked_chains`]).
pub fn sample_under(
    model: &mut EnergyNet,
    cfg: &RunConfig,
    conds: &Tensor,
    steps: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Tensor> {
    let shape = cfg.model.input_shape();
    let mut rng = Rng::with_stream(seed, 0x5b);
    let sampler = cfg.sampler.langevin(steps);
    model.set_frozen(true);
    let m: &EnergyNet = model;
    let out = chunked_chains(conds.dims()[0], &shape, None, &sampler, &mut rng, device, |start, k| {
        Ok(vec![(Box::new(ByRef(m)) as Box<dyn Energy>, Some(conds.narrow(0, start, k)?.to_device(device)?), steps)])
    });
    model.set_frozen(false);
    out
}

/// Fresh samples under `eval.samples` test conditions, judged by the probe; returns the samples and their
/// conditions too.
pub fn evaluate(
    model: &mut EnergyNet,
    cfg: &RunConfig,
    data: &ImageData,
    device: &Device,
) -> anyhow::Result<(FactorEval, Tensor, Tensor)> {
    let factor = factor_of(cfg)?;
    let n = cfg.eval.samples.max(1);
    let idx: Vec<usize> = (0..n).map(|i| i % data.test.len()).collect();
    let conds = factor.batch(&data.test, &idx)?;
    let cv = conds.to_vec2::<f32>()?;
    let shape = single_shape(&data.train);
    let tol = tolerance(factor);
    let samples = sample_under(model, cfg, &conds, cfg.eval.steps, cfg.seed ^ 0xe7a2, device)?;
    let meas = probe::measure_batch(&samples)?;
    let errs: Vec<f64> = meas.iter().zip(&cv).map(|(m, c)| factor_error(m.as_ref(), factor, c, shape)).collect();
    let shuffled: Vec<f64> =
        (0..n).map(|i| factor_error(meas[i].as_ref(), factor, &cv[(i + n / 2) % n], shape)).collect();
    let (x_test, _) = data.test.batch(&idx, None)?;
    let data_errs: Vec<f64> = probe::measure_batch(&x_test)?
        .iter()
        .zip(&cv)
        .map(|(m, c)| factor_error(m.as_ref(), factor, c, shape))
        .collect();
    let mut sorted = errs.clone();
    sorted.sort_by(f64::total_cmp);
    let ev = FactorEval {
        factor: factor.name(),
        tolerance: tol,
        samples: n,
        sample_steps: cfg.eval.steps,
        fraction_within: fraction(&errs, tol),
        median_error: sorted[n / 2],
        data_fraction_within: fraction(&data_errs, tol),
        shuffled_fraction_within: fraction(&shuffled, tol),
        assumed_shape: shape,
    };
    Ok((ev, samples, conds))
}

/// The end of a continuous-condition run: [`evaluate`], `fresh_samples.png` (up to 100 samples, ordered by their
/// condition's first value), `summary.json`, and a summary on stdout.
pub fn report(
    st: &mut TrainState<u8>,
    data: &ImageData,
    run: &RunDir,
    started: std::time::Instant,
    device: &Device,
) -> anyhow::Result<()> {
    tracing::info!("evaluating: {} fresh samples judged by the factor probe", st.cfg.eval.samples);
    let (ev, samples, conds) = evaluate(&mut st.model, &st.cfg, data, device)?;
    let k = samples.dims()[0].min(100);
    let cv = conds.to_vec2::<f32>()?;
    let mut order: Vec<u32> = (0..k as u32).collect();
    order.sort_by(|&a, &b| cv[a as usize][0].total_cmp(&cv[b as usize][0]));
    let shown = samples.index_select(&Tensor::new(order.as_slice(), samples.device())?, 0)?;
    crate::figures::image_grid_png(&shown, None, 10, &run.file("fresh_samples.png"))?;
    run.write_text("summary.json", &serde_json::to_string_pretty(&ev)?)?;
    println!(
        "done in {:.0} s; outputs in {}\n  samples.png (replay buffer), fresh_samples.png (new chains from noise, {} \
         steps, ordered by condition), curves.png, metrics.jsonl, checkpoint.safetensors, model.safetensors, \
         summary.json\n  {} of {} fresh samples within {:.3} of their requested {} (probe): {:.1}% (test images \
         themselves: {:.1}%; against another sample's condition: {:.1}%), median error {:.3}",
        started.elapsed().as_secs_f64(),
        run.path.display(),
        ev.sample_steps,
        (ev.fraction_within * ev.samples as f64).round(),
        ev.samples,
        ev.tolerance,
        ev.factor,
        100.0 * ev.fraction_within,
        100.0 * ev.data_fraction_within,
        100.0 * ev.shuffled_fraction_within,
        ev.median_error,
    );
    Ok(())
}
