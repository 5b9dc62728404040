//! The small uses of a trained model: fresh samples to a file, the energies of given inputs, their classes.

use super::RunSettings;
use crate::error::{EvalError, Result};
use candle_core::{Device, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::{Energy, Langevin};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The stream of [`sample`]'s chains.
pub const SAMPLE_STREAM: u64 = 0x5a3;

/// Fresh chains of an image model from uniform noise (the run's sampler and box, or the official image sampler
/// for a bare model file): `per_class` per class (or `per_class` in all for an unconditional model), `steps` steps,
/// written to `out` as `samples.safetensors` (tensors `samples`, `labels`) and `samples.png`. Returns both paths.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    model: &mut EnergyNet,
    model_path: &Path,
    run: Option<&RunSettings>,
    per_class: usize,
    steps: usize,
    seed: u64,
    out: &Path,
    device: &Device,
) -> Result<(PathBuf, PathBuf)> {
    let shape = model.config().input_shape();
    crate::error::ensure!(per_class >= 1, "--per-class must be at least 1");
    if shape.len() != 3 {
        return Err(EvalError::input(model_path, "`sample` draws image models; use `train` for 2D runs"));
    }
    let classes = model.config().cond_dim();
    let (sampler, range) = match run {
        Some(r) => (Langevin { steps, ..r.sampler.clone() }, r.init_range),
        None => (Langevin::igebm(10.0, 0.01, steps), [0.0, 1.0]),
    };
    let mut rng = Rng::with_stream(seed, SAMPLE_STREAM);
    model.set_frozen(true);
    let (x, labels) =
        ebm_sampler::starts::per_class(&*model, &sampler, &shape, range, classes, per_class, &mut rng, device)?;
    crate::error::create_dir(out)?;
    let mut b = Bundle::new();
    b.insert("samples", x.clone());
    b.insert("labels", Tensor::from_slice(&labels, labels.len(), device)?);
    b.set_meta("steps", steps.to_string());
    b.set_meta("model", model_path.display().to_string());
    let (st, png) = (out.join("samples.safetensors"), out.join("samples.png"));
    b.save(&st)?;
    crate::figures::image_grid_png(&x, (classes > 0).then_some(&labels[..]), per_class.min(16), &png)?;
    Ok((st, png))
}

/// The energies of some inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub model: String,
    pub input: String,
    /// Whether each row holds one energy per class.
    pub per_class: bool,
    pub energies: Vec<Vec<f32>>,
}

/// The energy of every input of `x` (read from `input`), one per class for a conditional model.
pub fn score(model: &EnergyNet, model_path: &Path, x: &Tensor, input: &Path) -> Result<Scores> {
    let classes = model.config().cond_dim();
    let energies: Vec<Vec<f32>> = if classes > 0 {
        crate::classify::class_energy_values(model, x, classes)?.to_vec2::<f32>()?
    } else {
        model.energy(x, None)?.to_vec1::<f32>()?.into_iter().map(|e| vec![e]).collect()
    };
    Ok(Scores {
        model: model_path.display().to_string(),
        input: input.display().to_string(),
        per_class: classes > 0,
        energies,
    })
}

/// The classes of some inputs, with accuracy and the confusion matrix when their labels are known.
#[derive(Debug, Clone, Serialize)]
pub struct Classes {
    pub predictions: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<usize>>>,
}

/// `argmin_y E(x, y)` for every input of `x`; `labels` (named by `origin` in errors) must match in number and lie
/// in the model's classes.
pub fn classify(model: &EnergyNet, model_path: &Path, x: &Tensor, labels: Option<(&[u32], &Path)>) -> Result<Classes> {
    let classes = model.config().cond_dim();
    if !model.config().is_class_conditional() {
        return Err(EvalError::input(
            model_path,
            format!("`classify` needs a class-conditional model (this `{}` model is not)", model.config().arch_name()),
        ));
    }
    let pred = crate::classify::predict(model, x, classes, 256)?;
    let mut out = Classes { predictions: pred, accuracy: None, confusion: None };
    if let Some((l, origin)) = labels {
        if l.len() != out.predictions.len() {
            return Err(EvalError::input(origin, format!("{} inputs but {} labels", out.predictions.len(), l.len())));
        }
        if let Some((i, l)) = l.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
            return Err(EvalError::input(origin, format!("label {l} at position {i} is outside 0..{classes}")));
        }
        out.accuracy = Some(crate::classify::accuracy(&out.predictions, l));
        out.confusion = Some(crate::classify::confusion(&out.predictions, l, classes));
    }
    Ok(out)
}
