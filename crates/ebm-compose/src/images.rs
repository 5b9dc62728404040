//! Composition of image models: the run's Langevin sampler on AND/OR/NOT of several models' energies, each under
//! its own condition ([`ebm_sampler::builder`]), every model's gradient taken at the same point in each step and
//! one noise draw per step; written as samples.safetensors, compose.png and compose.json.

use crate::spec::{CondSpec, ModelSpec};
use candle_core::{Device, Tensor};
use ebm_cd::config::RunConfig;
use ebm_cd::{ensure, Result};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::builder::{self, ComposeOp, NotBound};
use ebm_sampler::{Energy, Langevin, Sum};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// One image model of a composition, loaded (and frozen), with its condition for every chain.
pub struct ImagePart {
    pub spec: ModelSpec,
    pub model: Arc<EnergyNet>,
    pub cfg: Option<RunConfig>,
    /// `[samples, cond_dim]`, or `None` for an unconditional model.
    pub cond: Option<Tensor>,
}

/// The settings of an image composition.
#[derive(Debug, Clone)]
pub struct ImageCompose {
    pub op: ComposeOp,
    pub samples: usize,
    pub steps: usize,
    pub temperature: f32,
    /// Width of the NOT terms' soft hinge (`None`: each negated model's energy spread on the noise starts).
    pub not_softness: Option<f64>,
    pub seed: u64,
}

/// One model's line in the report.
#[derive(Debug, Serialize)]
pub struct PartReport {
    pub model: String,
    pub arch: String,
    pub condition: Option<CondSpec>,
    pub weight: f64,
    /// `and`/`or` (a positive part) or `not`.
    pub role: String,
    /// NOT terms: the margin used (given, or the mean energy on the noise starts).
    pub margin: Option<f64>,
    /// NOT terms: the hinge's softness used (given, or the energies' standard deviation on the noise starts).
    pub softness: Option<f64>,
    /// Mean energy of the chains' starting noise under this model (with its condition).
    pub energy_start_mean: f32,
    /// Mean energy of the final samples.
    pub energy_mean: f32,
    /// Energy of every final sample.
    pub energies: Vec<f32>,
}

/// What an image composition produced.
#[derive(Debug, Serialize)]
pub struct ImageComposeReport {
    /// `and` or `or`.
    pub op: &'static str,
    pub samples: usize,
    pub steps: usize,
    pub temperature: f32,
    pub seed: u64,
    /// The Langevin settings used (the first run's sampler).
    pub sampler: String,
    pub models: Vec<PartReport>,
    /// The composed energy of every final sample.
    pub composed_energies: Vec<f32>,
}

/// The sampler for an image composition: the first run's own (order, step, clip, clamp, noise), or the official
/// image sampler for bare model files, with `steps` steps; and the box the chains start in.
fn image_sampler(parts: &[ImagePart], steps: usize) -> (Langevin, [f32; 2]) {
    ebm_cd::config::sampler_or_official(parts.iter().find_map(|p| p.cfg.as_ref()), steps)
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}

/// The composed energy of `parts` (see [`builder::compose`]): the positive parts combined by `op`, plus
/// `|w| * BoundedNot` for each NOT term, with the bound each NOT term uses.
pub fn composed_energy(
    parts: &[ImagePart],
    op: ComposeOp,
    not_softness: Option<f64>,
    x0: &Tensor,
) -> Result<(Sum, Vec<Option<NotBound>>)> {
    if let Some(t) = not_softness {
        ensure!(t > 0.0 && t.is_finite(), "--not-softness must be positive, got {t}");
    }
    let parts: Vec<builder::Part> = parts
        .iter()
        .map(|p| builder::Part {
            energy: p.model.clone(),
            weight: p.spec.weight,
            cond: p.cond.clone(),
            margin: p.spec.margin,
        })
        .collect();
    Ok(builder::compose(&parts, op, not_softness, x0)?)
}

/// Samples an image composition from uniform noise and reports every model's energies of the result; with `out`,
/// writes samples.safetensors, compose.png (a grid) and compose.json. Returns the report and the samples.
pub fn compose_images(
    parts: &[ImagePart],
    o: &ImageCompose,
    out: Option<&Path>,
    device: &Device,
) -> Result<(ImageComposeReport, Tensor)> {
    ensure!(o.temperature > 0.0, "the temperature must be positive, got {}", o.temperature);
    let shape = parts[0].model.config().input_shape();
    let (mut sampler, range) = image_sampler(parts, o.steps);
    sampler.temperature = o.temperature;
    let mut rng = Rng::with_stream(o.seed, 0xc0);
    let x0 = ebm_sampler::starts::uniform(o.samples, &shape, range, &mut rng, device)?;
    let (energy, bounds) = composed_energy(parts, o.op, o.not_softness, &x0)?;
    // one chain over the composite: each step takes every model's gradient at the same point, then one noise draw
    let x = sampler.run(&energy, &x0, None, None, rng.next_u64())?.x;
    let mut models = Vec::new();
    for (p, bound) in parts.iter().zip(bounds) {
        let start = p.model.energy(&x0, p.cond.as_ref())?.to_vec1::<f32>()?;
        let energies = p.model.energy(&x, p.cond.as_ref())?.to_vec1::<f32>()?;
        let role = if p.spec.weight < 0.0 {
            "not"
        } else if o.op == ComposeOp::And {
            "and"
        } else {
            "or"
        };
        models.push(PartReport {
            model: p.spec.path.display().to_string(),
            arch: p.model.config().arch_name().to_string(),
            condition: p.spec.cond.clone(),
            weight: p.spec.weight,
            role: role.into(),
            margin: bound.map(|b| b.margin),
            softness: bound.map(|b| b.softness),
            energy_start_mean: mean(&start),
            energy_mean: mean(&energies),
            energies,
        });
    }
    let report = ImageComposeReport {
        op: o.op.name(),
        samples: o.samples,
        steps: o.steps,
        temperature: o.temperature,
        seed: o.seed,
        sampler: format!("{sampler:?}"),
        models,
        composed_energies: energy.energy(&x, None)?.to_vec1::<f32>()?,
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(ebm_cd::error::fs_err(dir))?;
        let mut b = ebm_io::Bundle::new();
        b.insert("samples", x.clone());
        b.set_meta("op", o.op.name());
        b.set_meta("steps", o.steps.to_string());
        let names: Vec<String> = parts.iter().map(|p| p.spec.path.display().to_string()).collect();
        b.set_meta("models", names.join("\n"));
        b.save(&dir.join("samples.safetensors"))?;
        let cols = (o.samples as f64).sqrt().ceil().max(1.0) as usize;
        ebm_eval::figures::image_grid_png(&x, None, cols, &dir.join("compose.png"))?;
        ebm_io::write_atomic(&dir.join("compose.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok((report, x))
}
