//! Composition experiments with energy-based models, callable without the command line:
//!
//! - [`compose`]: sample from a composition of several trained models given as `--model` specs ([`spec`]): 2D
//!   models by the weighted sum of their energies, measured against their densities ([`toy`]); image models by
//!   AND / OR / NOT under each model's own condition ([`images`]).
//! - [`shapes`]: the compositionality experiment on generated sprites (a size model and a position model
//!   composed on pairs neither saw), with [`joint`] fine-tuning of the pair first if asked.
//!
//! Errors are `ebm_cd`'s [`CdError`](ebm_cd::CdError).

pub mod images;
pub mod joint;
pub mod shapes;
pub mod spec;
pub mod toy;

use candle_core::Device;
use ebm_cd::{ensure, Result, Run};
use ebm_sampler::builder::ComposeOp;
use images::{ImageCompose, ImageComposeReport, ImagePart};
use spec::{condition_tensor, parse_model_spec};
use std::path::PathBuf;
use std::sync::Arc;
use toy::{measure, ComposeReport, Part};

/// A composition to sample: the models (as `--model` specs) and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// `RUN[:label=L|:cond=v1,...][:weight=W][:margin=M]` per model ([`spec::parse_model_spec`]).
    pub models: Vec<String>,
    pub op: ComposeOp,
    /// Number of samples (default: 2000 for 2D models, 64 for image models).
    pub samples: Option<usize>,
    /// Langevin steps from uniform noise (default: 500 for 2D models; the first run's `eval.steps` for images).
    pub steps: Option<usize>,
    /// Sample `exp(-E/T)`.
    pub temperature: f32,
    /// Width of the NOT terms' soft hinge (default: each negated model's energy spread on the noise starts).
    pub not_softness: Option<f64>,
    pub seed: u64,
    /// Output folder for compose.png and compose.json (and samples.safetensors for images).
    pub out: PathBuf,
}

/// What [`compose`] produced.
pub enum Composed {
    /// A 2D composition, measured against its parts' densities.
    Toy(ComposeReport),
    /// An image composition with every model's energies of the result.
    Images(ImageComposeReport),
}

/// Samples the composition `r` asks for and writes its files into `r.out`.
pub fn compose(r: &Request, device: &Device) -> Result<Composed> {
    ensure!(r.models.len() >= 2, "compose needs at least two models, got {}", r.models.len());
    let specs = r.models.iter().map(|s| parse_model_spec(s)).collect::<Result<Vec<_>>>()?;
    let mut loaded = Vec::new();
    for s in &specs {
        let run = Run::open(&s.path, device)?;
        loaded.push((run.model, run.cfg));
    }
    let shape0 = loaded[0].0.config().input_shape();
    for (s, (m, _)) in specs.iter().zip(&loaded).skip(1) {
        ensure!(
            m.config().input_shape() == shape0,
            "{} (a `{}` model) takes inputs {:?}, but {} (a `{}` model) takes {:?}: composed models must share \
             one input shape",
            s.path.display(),
            m.config().arch_name(),
            m.config().input_shape(),
            specs[0].path.display(),
            loaded[0].0.config().arch_name(),
            shape0
        );
    }
    ensure!(
        specs.iter().any(|s| s.weight > 0.0),
        "every model has a negative weight: NOT needs something to negate from, so give at least one model a \
         positive weight"
    );
    if shape0.len() == 1 {
        ensure!(
            r.op == ComposeOp::And && specs.iter().all(|s| s.weight > 0.0),
            "2D models are composed with `--op and` and positive weights only (OR and NOT are for image models)"
        );
        let mut parts = Vec::new();
        for (s, (model, cfg)) in specs.iter().zip(loaded) {
            condition_tensor(s, &model, 1, device)?;
            parts.push(Part { path: s.path.clone(), weight: s.weight, model: Arc::new(model), cfg });
        }
        let (samples, steps) = (r.samples.unwrap_or(2000), r.steps.unwrap_or(500));
        let report = measure(&parts, samples, steps, r.temperature, r.seed, device, Some(&r.out))?;
        return Ok(Composed::Toy(report));
    }
    let n = r.samples.unwrap_or(64);
    ensure!(n > 0, "--samples must be positive");
    let mut parts = Vec::new();
    for (s, (mut model, cfg)) in specs.into_iter().zip(loaded) {
        model.set_frozen(true);
        let cond = condition_tensor(&s, &model, n, device)?;
        parts.push(ImagePart { spec: s, model: Arc::new(model), cfg, cond });
    }
    let first_sampler = parts.iter().find_map(|p| p.cfg.as_ref().map(|c| (&p.spec.path, &c.sampler)));
    if let Some((path, sc)) = first_sampler {
        for p in &parts {
            if p.cfg.as_ref().is_some_and(|c| c.sampler.langevin(1) != sc.langevin(1)) {
                tracing::warn!(
                    "{} was trained with other sampler settings; the composition uses those of {}",
                    p.spec.path.display(),
                    path.display()
                );
            }
        }
    }
    let steps = r.steps.unwrap_or_else(|| parts.iter().find_map(|p| p.cfg.as_ref()).map_or(60, |c| c.eval.steps));
    let opts = ImageCompose {
        op: r.op,
        samples: n,
        steps,
        temperature: r.temperature,
        not_softness: r.not_softness,
        seed: r.seed,
    };
    let (report, _) = images::compose_images(&parts, &opts, Some(&r.out), device)?;
    Ok(Composed::Images(report))
}
