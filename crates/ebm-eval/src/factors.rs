//! Models conditioned on continuous factors (DspritesNet on `dsprites-*` or `shapes-*`): their evaluation, which
//! judges fresh samples with the factor probe ([`crate::probe`]) instead of a classifier.
//!
//! A sample drawn under condition `c` of factor `f` counts as right when the probe's measurement of `f` is within
//! [`tolerance`]`(f)` of `c` ([`factor_error`]). The same fraction is reported for the test images under their own
//! conditions (the probe's ceiling) and for the samples against another sample's condition (what ignoring the
//! condition would score).

use crate::error::Result;
use crate::probe::{self, Measurement};
use candle_core::{Device, Tensor};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::Shape;
use ebm_data::{ImageData, ImageSet};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::starts::{chunked, Stage};
use ebm_sampler::{Borrowed, Energy, Langevin};
use serde::Serialize;

/// The stream of the probe-judged samples' starts and chain seeds ([`sample_under`]).
pub const SAMPLE_STREAM: u64 = 0x5b;
/// Mixed into the run's seed for the end-of-run samples of [`evaluate`].
pub const EVAL_SEED: u64 = 0xe7a2;

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

fn fraction(errs: &[f64], tol: f64) -> f64 {
    errs.iter().filter(|&&e| e <= tol).count() as f64 / errs.len().max(1) as f64
}

/// Chains of `sampler` from uniform noise under the given conditions `[N, D]` ([`chunked`]).
pub fn sample_under(
    model: &mut EnergyNet,
    sampler: &Langevin,
    conds: &Tensor,
    seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let shape = model.config().input_shape();
    let mut rng = Rng::with_stream(seed, SAMPLE_STREAM);
    let steps = sampler.steps;
    model.set_frozen(true);
    let m: &EnergyNet = model;
    let out = chunked(conds.dims()[0], &shape, None, sampler, &mut rng, device, |start, k| {
        let stage: Stage =
            (Box::new(Borrowed(m)) as Box<dyn Energy>, Some(conds.narrow(0, start, k)?.to_device(device)?), steps);
        Ok(vec![stage])
    });
    model.set_frozen(false);
    Ok(out?)
}

/// Fresh samples of `sampler` under the conditions of `samples` test images (cycling through the test split),
/// judged by the probe; returns the samples and their conditions too. The chains draw from the run's `seed`
/// mixed with [`EVAL_SEED`].
pub fn evaluate(
    model: &mut EnergyNet,
    sampler: &Langevin,
    factor: Factor,
    data: &ImageData,
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<(FactorEval, Tensor, Tensor)> {
    let n = samples.max(1);
    let idx: Vec<usize> = (0..n).map(|i| i % data.test.len()).collect();
    let conds = factor.batch(&data.test, &idx)?;
    let cv = conds.to_vec2::<f32>()?;
    let shape = single_shape(&data.train);
    let tol = tolerance(factor);
    let samples = sample_under(model, sampler, &conds, seed ^ EVAL_SEED, device)?;
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
        sample_steps: sampler.steps,
        fraction_within: fraction(&errs, tol),
        median_error: sorted[n / 2],
        data_fraction_within: fraction(&data_errs, tol),
        shuffled_fraction_within: fraction(&shuffled, tol),
        assumed_shape: shape,
    };
    Ok((ev, samples, conds))
}
