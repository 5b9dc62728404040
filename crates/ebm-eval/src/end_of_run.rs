//! What a training run measures when it ends: an image model's held-out classification and the judged accuracy
//! of its fresh class-conditional samples ([`images`]), a 2D model's MMD to its density ([`toy`]). (Models
//! conditioned on continuous factors are judged by the probe: [`crate::factors::evaluate`].)

use crate::classifier::{ClassifierConfig, PixelClassifier};
use crate::error::Result;
use crate::mmd::{mmd2, MmdEstimator};
use candle_core::{DType, Device, Tensor};
use ebm_data::{ImageData, Toy2d};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::Langevin;
use serde::Serialize;

/// The stream of an image run's fresh samples ([`fresh_images`]).
pub const FRESH_STREAM: u64 = 0x5a;
/// Mixed into the run's seed for the end-of-run samples (also the stream of a toy run's evaluation).
pub const EVAL_SEED: u64 = 0xe7a1;

/// What an image run measures at its end.
#[derive(Debug, Clone, Serialize)]
pub struct ImageEval {
    /// Held-out accuracy of `argmin_y E(x, y)` on the test split (conditional models).
    pub heldout_accuracy: Option<f64>,
    pub test_images: usize,
    /// Fraction of fresh class-conditional samples that the judge classifier labels as the class asked for.
    pub conditional_sample_accuracy: Option<f64>,
    pub samples_per_class: usize,
    pub sample_steps: usize,
    /// The judge's own accuracy on the test split.
    pub judge_test_accuracy: f64,
}

/// Fresh chains of `sampler` from uniform noise in [0, 1]: `per_class` under each of the model's classes (or
/// `per_class` unconditioned), from `seed`'s [`FRESH_STREAM`].
pub fn fresh_images(
    model: &mut EnergyNet,
    sampler: &Langevin,
    per_class: usize,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let mut rng = Rng::with_stream(seed, FRESH_STREAM);
    let (shape, classes) = (model.config().input_shape(), model.config().cond_dim());
    model.set_frozen(true);
    let out =
        ebm_sampler::starts::per_class(&*model, sampler, &shape, [0.0, 1.0], classes, per_class, &mut rng, device);
    model.set_frozen(false);
    Ok(out?)
}

/// Held-out classification, and `per_class` fresh conditional samples of `sampler` judged by a classifier trained
/// on the train split; returns the samples too. `seed` is the run's.
pub fn images(
    model: &mut EnergyNet,
    sampler: &Langevin,
    data: &ImageData,
    per_class: usize,
    seed: u64,
    device: &Device,
) -> Result<(ImageEval, Tensor)> {
    let classes = model.config().cond_dim();
    let all: Vec<usize> = (0..data.test.len()).collect();
    let (x_test, y_test) = data.test.batch(&all, None)?;
    let y_test = y_test.to_vec1::<u32>()?;
    let heldout = if classes > 0 {
        let pred = crate::classify::predict(&*model, &x_test.to_device(device)?, classes, 256)?;
        Some(crate::classify::accuracy(&pred, &y_test))
    } else {
        None
    };
    let tr: Vec<usize> = (0..data.train.len()).collect();
    let (x_train, y_train) = data.train.batch(&tr, None)?;
    let judge = PixelClassifier::train(
        &x_train,
        &y_train.to_vec1::<u32>()?,
        data.train.num_classes(),
        ClassifierConfig::default(),
    )?;
    let judge_acc = judge.accuracy(&x_test, &y_test)?;
    let (samples, labels) = fresh_images(model, sampler, per_class, seed ^ EVAL_SEED, device)?;
    let cond_acc = if classes > 0 {
        Some(judge.accuracy(&samples.to_device(&Device::Cpu)?.to_dtype(DType::F32)?, &labels)?)
    } else {
        None
    };
    let ev = ImageEval {
        heldout_accuracy: heldout,
        test_images: data.test.len(),
        conditional_sample_accuracy: cond_acc,
        samples_per_class: per_class,
        sample_steps: sampler.steps,
        judge_test_accuracy: judge_acc,
    };
    Ok((ev, samples))
}

/// Measurements of a trained 2D model against its density.
#[derive(Debug, Clone, Serialize)]
pub struct ToyEval {
    pub density: String,
    pub samples: usize,
    pub steps: usize,
    pub bandwidth: f64,
    /// MMD^2 (biased V-statistic) of fresh model samples vs fresh data.
    pub mmd2_model: f64,
    /// MMD^2 of two independent fresh data draws: the finite-sample floor.
    pub mmd2_data_floor: f64,
    /// MMD^2 of the chains' initial noise vs data.
    pub mmd2_init_noise: f64,
}

/// `n` fresh chains of `sampler` from uniform noise in the box `range`: the starts and the ends, `[n, 2]` each.
pub fn fresh_points(
    model: &EnergyNet,
    sampler: &Langevin,
    range: [f32; 2],
    n: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let x0 = ebm_sampler::starts::uniform(n, &[2], range, rng, device)?;
    let chain = sampler.run(model, &x0, None, None, rng.next_u64())?;
    Ok((x0, chain.x))
}

/// `n` fresh samples of `sampler` from the box `range`, compared with `density` by MMD (kernel bandwidth
/// `bandwidth`); returns the samples too. Draws from `seed`'s [`EVAL_SEED`] stream.
#[allow(clippy::too_many_arguments)]
pub fn toy(
    model: &mut EnergyNet,
    sampler: &Langevin,
    range: [f32; 2],
    density: Toy2d,
    n: usize,
    bandwidth: f64,
    seed: u64,
    device: &Device,
) -> Result<(ToyEval, Tensor)> {
    let mut rng = Rng::with_stream(seed, EVAL_SEED);
    model.set_frozen(true);
    let fresh = fresh_points(model, sampler, range, n, &mut rng, device);
    model.set_frozen(false);
    let (x0, xs) = fresh?;
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
    let d1 = flat(&density.sample_tensor(n, &mut rng, device)?)?;
    let d2 = flat(&density.sample_tensor(n, &mut rng, device)?)?;
    let ev = ToyEval {
        density: density.name().to_string(),
        samples: n,
        steps: sampler.steps,
        bandwidth,
        mmd2_model: mmd2(&flat(&xs)?, &d1, 2, bandwidth, MmdEstimator::Biased),
        mmd2_data_floor: mmd2(&d2, &d1, 2, bandwidth, MmdEstimator::Biased),
        mmd2_init_noise: mmd2(&flat(&x0)?, &d1, 2, bandwidth, MmdEstimator::Biased),
    };
    Ok((ev, xs))
}
