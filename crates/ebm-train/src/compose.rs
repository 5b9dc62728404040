//! `ebm-train compose`: sample from a composition of several trained energies and measure the result.
//!
//! Each `--model` is `PATH[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]` (a run folder or a model file; the
//! legacy `PATH:W` still means weight `W`). Models with a positive weight form the positive part, combined by
//! `--op and` (the weighted sum of energies, a product of experts, [`Sum`]) or `--op or` (the mixture
//! `-log sum_i w_i exp(-E_i)`, [`LogSumExp`]). A negative weight makes a model a NOT term, added to the positive part
//! as `|w| * BoundedNot(E_B)`: a soft hinge `tau * softplus((margin - E_B)/tau)` that acts like `-E_B` where B is
//! confident (`E_B` below the margin) and fades to 0 above it. Why bounded: `E_A - w E_B` for a plain negation is
//! unbounded below whenever B is sharper than A, and a network's energy is unbounded over the pixel box, so the
//! sampler would gain by driving `E_B` ever higher, into inputs B finds absurd rather than inputs A likes that B
//! does not. The hinge is never negative, so the composed density is at most the positive part's, and it rewards
//! leaving B's confident region only up to the margin. The default margin is B's mean energy on the chains' uniform
//! noise starts ("no more likely under B than noise") and the default `tau` the standard deviation of those energies
//! (the hinge turns off across the band of energies B gives noise), both in B's own energy units, which differ from
//! model to model; `:margin=M` and `--not-softness` set them.
//! At least one model must have a positive weight.
//!
//! 2D models (the toy runs) are composed with `and` and measured against their densities' high-density regions
//! ([`measure`]); image models are sampled with their run's Langevin sampler, every model's gradient taken at the
//! same point in each step and one noise draw per step, and written as samples.safetensors, compose.png and
//! compose.json ([`compose_images`]).

use crate::cli::open_model;
use crate::config::{DataConfig, RunConfig};
use candle_core::{Device, Tensor};
use ebm_data::Toy2d;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::{BoundedNot, Energy, Langevin, LogSumExp, Sum, Term};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sample from a composition of several models' energies (AND, OR, NOT) and draw the result.
#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// A model to compose: `RUN[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]`, where RUN is a run folder or a
    /// model .safetensors file; `label` for class-conditional models, `cond` (the latent vector) for continuous ones;
    /// a negative weight makes it a NOT term (`margin`: the energy above which NOT stops acting). `RUN:W` is short
    /// for `RUN:weight=W`.
    #[arg(long = "model", required = true, num_args = 1)]
    pub models: Vec<String>,
    /// How the positive-weight models combine: `and` (sum of energies) or `or` (mixture, logsumexp).
    #[arg(long, value_enum, default_value_t = ComposeOp::And)]
    pub op: ComposeOp,
    /// Number of samples (default: 2000 for 2D models, 64 for image models).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Langevin steps from uniform noise (default: 500 for 2D models; the first run's `eval.steps` for images).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sample exp(-E/T): below 1 concentrates the samples on the composition's high-density region.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Width tau of the soft hinge of NOT terms, in energy units (default: the spread, one standard deviation, of
    /// the negated model's energies on the noise starts).
    #[arg(long)]
    pub not_softness: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder for compose.png and compose.json (and samples.safetensors for images).
    #[arg(long, default_value = "runs/compose")]
    pub out: PathBuf,
}

/// How the positive-weight models of a composition combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComposeOp {
    /// `sum_i w_i E_i`: samples all models agree on.
    And,
    /// `-log sum_i w_i exp(-E_i)`: samples any of the models likes.
    Or,
}

/// A model's condition as given on the command line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CondSpec {
    /// A class label (for class-conditional models).
    Label(u32),
    /// A vector of continuous latents (for models such as DspritesNet).
    Cond(Vec<f32>),
}

/// One parsed `--model` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub path: PathBuf,
    pub cond: Option<CondSpec>,
    /// Positive: an AND/OR part; negative: a NOT term with weight `|weight|`.
    pub weight: f64,
    /// For NOT terms: the energy of the negated model above which the term stops acting.
    pub margin: Option<f64>,
}

fn number(spec: &str, key: &str, v: &str) -> anyhow::Result<f64> {
    let x: f64 = v.trim().parse().map_err(|_| anyhow::anyhow!("`{spec}`: {key} `{v}` is not a number"))?;
    anyhow::ensure!(x.is_finite(), "`{spec}`: {key} must be finite, got {v}");
    Ok(x)
}

/// Parses `PATH[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]` (or the legacy `PATH:W`). Options are the trailing
/// `:`-separated segments that contain `=` (or a final bare number); anything before them is the path.
pub fn parse_model_spec(spec: &str) -> anyhow::Result<ModelSpec> {
    let segs: Vec<&str> = spec.split(':').collect();
    let mut first_opt = segs.len();
    while first_opt > 1 {
        let s = segs[first_opt - 1];
        let legacy_weight = first_opt == segs.len() && s.parse::<f64>().is_ok();
        if s.contains('=') || legacy_weight {
            first_opt -= 1;
        } else {
            break;
        }
    }
    let path = segs[..first_opt].join(":");
    anyhow::ensure!(!path.is_empty(), "`{spec}`: no model path before the options");
    let mut out = ModelSpec { path: PathBuf::from(path), cond: None, weight: 1.0, margin: None };
    let mut seen = Vec::new();
    for s in &segs[first_opt..] {
        let (key, value) = s.split_once('=').unwrap_or(("weight", s));
        anyhow::ensure!(!seen.contains(&key), "`{spec}`: `{key}` given twice");
        seen.push(key);
        match key {
            "weight" | "w" => {
                out.weight = number(spec, "weight", value)?;
                anyhow::ensure!(out.weight != 0.0, "`{spec}`: a weight of 0 leaves the model out; drop it instead");
            }
            "margin" => out.margin = Some(number(spec, "margin", value)?),
            "label" => {
                anyhow::ensure!(out.cond.is_none(), "`{spec}`: give either `label` or `cond`, not both");
                let l = value.trim().parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("`{spec}`: label `{value}` is not a class index (0, 1, 2, ...)")
                })?;
                out.cond = Some(CondSpec::Label(l));
            }
            "cond" => {
                anyhow::ensure!(out.cond.is_none(), "`{spec}`: give either `label` or `cond`, not both");
                let v = value
                    .split(',')
                    .map(|t| number(spec, "cond entry", t).map(|x| x as f32))
                    .collect::<anyhow::Result<Vec<f32>>>()?;
                out.cond = Some(CondSpec::Cond(v));
            }
            other => anyhow::bail!(
                "`{spec}`: unknown option `{other}` (expected label=, cond=, weight= or margin=, e.g.                  `runs/digits:label=3:weight=1`)"
            ),
        }
    }
    anyhow::ensure!(
        out.margin.is_none() || out.weight < 0.0,
        "`{spec}`: `margin` is for NOT terms (a negative weight)"
    );
    Ok(out)
}

/// The `[n, cond_dim]` condition `spec` gives `model`, or `None` for an unconditional model; errors name the model
/// and say what it expects.
pub fn condition_tensor(
    spec: &ModelSpec,
    model: &EnergyNet,
    n: usize,
    device: &Device,
) -> anyhow::Result<Option<Tensor>> {
    let cfg = model.config();
    let (d, arch, name) = (cfg.cond_dim(), cfg.arch_name(), spec.path.display());
    let expects = if d == 0 {
        "no condition (it is unconditional)".to_string()
    } else if cfg.is_class_conditional() {
        format!("a class label `:label=L` with L in 0..{d}")
    } else {
        format!("{d} continuous latents `:cond=v1,...,v{d}`")
    };
    let row: Vec<f32> = match (&spec.cond, d) {
        (None, 0) => return Ok(None),
        (Some(_), 0) => anyhow::bail!("{name}: the `{arch}` model takes {expects}"),
        (None, _) => anyhow::bail!("{name}: the `{arch}` model is conditional; give it {expects}"),
        (Some(CondSpec::Label(l)), _) => {
            anyhow::ensure!(cfg.is_class_conditional(), "{name}: the `{arch}` model takes {expects}, not a label");
            anyhow::ensure!((*l as usize) < d, "{name}: label {l} is out of range; the `{arch}` model takes {expects}");
            (0..d).map(|i| if i == *l as usize { 1.0 } else { 0.0 }).collect()
        }
        (Some(CondSpec::Cond(v)), _) => {
            anyhow::ensure!(
                !cfg.is_class_conditional(),
                "{name}: the `{arch}` model takes {expects}, not a latent vector"
            );
            anyhow::ensure!(
                v.len() == d,
                "{name}: `cond` has {} values, but the `{arch}` model takes {expects}",
                v.len()
            );
            v.clone()
        }
    };
    let rows: Vec<f32> = row.iter().copied().cycle().take(n * d).collect();
    Ok(Some(Tensor::from_vec(rows, (n, d), device)?))
}

/// One part of a 2D composition.
pub struct Part {
    pub path: PathBuf,
    pub weight: f64,
    pub model: Arc<EnergyNet>,
    pub cfg: Option<RunConfig>,
}

/// The "high-density region" of a toy density: where its log density is above the level that holds 95% of its
/// mass (estimated from 20,000 draws).
pub struct HighRegion {
    pub density: Toy2d,
    pub threshold: f64,
}

impl HighRegion {
    pub fn new(density: Toy2d, rng: &mut Rng) -> Option<Self> {
        let mut lp: Vec<f64> =
            density.sample(20_000, rng).iter().map(|p| density.log_density(*p)).collect::<Option<_>>()?;
        lp.sort_by(|a, b| a.partial_cmp(b).expect("finite log densities"));
        Some(Self { density, threshold: lp[lp.len() / 20] })
    }

    pub fn contains(&self, p: [f32; 2]) -> bool {
        self.density.log_density(p).is_some_and(|l| l >= self.threshold)
    }
}

/// Fraction of `points` inside every region.
pub fn fraction_in_all(points: &[[f32; 2]], regions: &[HighRegion]) -> f64 {
    let n = points.iter().filter(|p| regions.iter().all(|r| r.contains(**p))).count();
    n as f64 / points.len().max(1) as f64
}

/// The sampler for toy compositions: the first part's own, or textbook Langevin (step 0.01) from [-4.5, 4.5]^2.
fn sampler_of(parts: &[Part], steps: usize) -> (Langevin, [f32; 2]) {
    match parts.iter().find_map(|p| p.cfg.as_ref()) {
        Some(c) => (c.sampler.langevin(steps), c.sampler.init_range),
        None => {
            let mut l = Langevin::ula(0.01, steps);
            l.noise_std = 0.1414;
            (l, [-4.5, 4.5])
        }
    }
}

/// Fresh samples of `energy` from uniform noise in `range`.
pub fn sample_2d<E: Energy + ?Sized>(
    energy: &E,
    sampler: &Langevin,
    range: [f32; 2],
    n: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Vec<[f32; 2]>> {
    let mut rng = Rng::with_stream(seed, 0xc0);
    let x0 = Tensor::from_vec(rng.uniform_vec(2 * n, range[0], range[1]), (n, 2), device)?;
    let x = sampler.run(energy, &x0, None, None, rng.next_u64())?.x;
    Ok(x.to_vec2::<f32>()?.into_iter().map(|r| [r[0], r[1]]).collect())
}

/// What `compose` measured.
#[derive(Debug, Serialize)]
pub struct ComposeReport {
    pub models: Vec<String>,
    pub weights: Vec<f64>,
    pub samples: usize,
    pub steps: usize,
    pub temperature: f32,
    /// Fraction of the composition's samples inside every part's 95% high-density region (None if a part has no
    /// known density).
    pub composed_in_all: Option<f64>,
    /// The same fraction for samples of each part alone.
    pub single_in_all: Vec<Option<f64>>,
}

/// Samples the composition named on the command line: 2D models through [`measure`], image models through
/// [`compose_images`].
pub fn compose(a: &ComposeArgs, device: &Device) -> anyhow::Result<()> {
    anyhow::ensure!(a.models.len() >= 2, "compose needs at least two models, got {}", a.models.len());
    let specs = a.models.iter().map(|s| parse_model_spec(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut loaded = Vec::new();
    for s in &specs {
        let (model, cfg) = open_model(&s.path, device)?;
        loaded.push((model, cfg));
    }
    let shape0 = loaded[0].0.config().input_shape();
    for (s, (m, _)) in specs.iter().zip(&loaded).skip(1) {
        anyhow::ensure!(
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
    anyhow::ensure!(
        specs.iter().any(|s| s.weight > 0.0),
        "every model has a negative weight: NOT needs something to negate from, so give at least one model a \
         positive weight"
    );
    if shape0.len() == 1 {
        anyhow::ensure!(
            a.op == ComposeOp::And && specs.iter().all(|s| s.weight > 0.0),
            "2D models are composed with `--op and` and positive weights only (OR and NOT are for image models)"
        );
        let mut parts = Vec::new();
        for (s, (model, cfg)) in specs.iter().zip(loaded) {
            condition_tensor(s, &model, 1, device)?;
            parts.push(Part { path: s.path.clone(), weight: s.weight, model: Arc::new(model), cfg });
        }
        let (samples, steps) = (a.samples.unwrap_or(2000), a.steps.unwrap_or(500));
        let report = measure(&parts, samples, steps, a.temperature, a.seed, device, Some(&a.out))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!("wrote {} and {}", a.out.join("compose.png").display(), a.out.join("compose.json").display());
        return Ok(());
    }
    let n = a.samples.unwrap_or(64);
    anyhow::ensure!(n > 0, "--samples must be positive");
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
                eprintln!(
                    "note: {} was trained with other sampler settings; the composition uses those of {}",
                    p.spec.path.display(),
                    path.display()
                );
            }
        }
    }
    let steps = a.steps.unwrap_or_else(|| parts.iter().find_map(|p| p.cfg.as_ref()).map_or(60, |c| c.eval.steps));
    let opts = ImageCompose {
        op: a.op,
        samples: n,
        steps,
        temperature: a.temperature,
        not_softness: a.not_softness,
        seed: a.seed,
    };
    let (report, _) = compose_images(&parts, &opts, Some(&a.out), device)?;
    for m in &report.models {
        println!(
            "{:>5} w={:<6} {:<40} mean energy {:.4} (at the noise starts {:.4})",
            m.role, m.weight, m.model, m.energy_mean, m.energy_start_mean
        );
    }
    println!(
        "wrote {}, {} and {}",
        a.out.join("samples.safetensors").display(),
        a.out.join("compose.png").display(),
        a.out.join("compose.json").display()
    );
    Ok(())
}

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
    pub op: ComposeOp,
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
    crate::config::sampler_or_official(parts.iter().find_map(|p| p.cfg.as_ref()), steps)
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}

/// The margin and softness of one NOT term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotBound {
    pub margin: f64,
    pub softness: f64,
}

/// Builds the composed energy: the positive parts combined by `op`, plus `|w| * BoundedNot` for each NOT term; also
/// returns, per part, the bound used for a NOT term (margin given or the negated model's mean energy on `x0`; softness
/// given or the standard deviation of those energies, at least 1e-6).
pub fn composed_energy(
    parts: &[ImagePart],
    op: ComposeOp,
    not_softness: Option<f64>,
    x0: &Tensor,
) -> anyhow::Result<(Sum, Vec<Option<NotBound>>)> {
    if let Some(t) = not_softness {
        anyhow::ensure!(t > 0.0 && t.is_finite(), "--not-softness must be positive, got {t}");
    }
    let term = |p: &ImagePart, energy: Arc<dyn Energy + Send + Sync>, w: f64| {
        let t = Term::new(energy, w);
        match &p.cond {
            Some(c) => t.with_cond(c.clone()),
            None => t,
        }
    };
    let positive: Vec<Term> =
        parts.iter().filter(|p| p.spec.weight > 0.0).map(|p| term(p, p.model.clone(), p.spec.weight)).collect();
    anyhow::ensure!(!positive.is_empty(), "a composition needs at least one model with a positive weight");
    let pos: Arc<dyn Energy + Send + Sync> = match op {
        ComposeOp::And => Arc::new(Sum::new(positive)),
        ComposeOp::Or => Arc::new(LogSumExp::new(positive)),
    };
    let mut terms = vec![Term::new(pos, 1.0)];
    let mut bounds = Vec::new();
    for p in parts {
        if p.spec.weight > 0.0 {
            bounds.push(None);
            continue;
        }
        let e0: Vec<f64> = p.model.energy(x0, p.cond.as_ref())?.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
        let m0 = e0.iter().sum::<f64>() / e0.len() as f64;
        let sd = (e0.iter().map(|e| (e - m0).powi(2)).sum::<f64>() / e0.len() as f64).sqrt();
        let b = NotBound { margin: p.spec.margin.unwrap_or(m0), softness: not_softness.unwrap_or(sd.max(1e-6)) };
        bounds.push(Some(b));
        terms.push(term(p, Arc::new(BoundedNot::new(p.model.clone(), b.margin, b.softness)), -p.spec.weight));
    }
    Ok((Sum::new(terms), bounds))
}

/// Samples an image composition from uniform noise and reports every model's energies of the result; with `out`,
/// writes samples.safetensors, compose.png (a grid) and compose.json. Returns the report and the samples.
pub fn compose_images(
    parts: &[ImagePart],
    o: &ImageCompose,
    out: Option<&Path>,
    device: &Device,
) -> anyhow::Result<(ImageComposeReport, Tensor)> {
    anyhow::ensure!(o.temperature > 0.0, "the temperature must be positive, got {}", o.temperature);
    let shape = parts[0].model.config().input_shape();
    let (mut sampler, range) = image_sampler(parts, o.steps);
    sampler.temperature = o.temperature;
    let mut rng = Rng::with_stream(o.seed, 0xc0);
    let x0 = crate::image::uniform_images(o.samples, &shape, range, &mut rng, device)?;
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
        op: o.op,
        samples: o.samples,
        steps: o.steps,
        temperature: o.temperature,
        seed: o.seed,
        sampler: format!("{sampler:?}"),
        models,
        composed_energies: energy.energy(&x, None)?.to_vec1::<f32>()?,
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let mut b = ebm_io::Bundle::new();
        b.insert("samples", x.clone());
        b.set_meta("op", format!("{:?}", o.op).to_lowercase());
        b.set_meta("steps", o.steps.to_string());
        let names: Vec<String> = parts.iter().map(|p| p.spec.path.display().to_string()).collect();
        b.set_meta("models", names.join("\n"));
        b.save(&dir.join("samples.safetensors"))?;
        let cols = (o.samples as f64).sqrt().ceil().max(1.0) as usize;
        crate::figures::image_grid_png(&x, None, cols, &dir.join("compose.png"))?;
        ebm_io::write_atomic(&dir.join("compose.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok((report, x))
}

/// The measurement behind `compose` (also used by tests): the composition and each part alone, all sampled at
/// `temperature`; writes figures when `out` is given.
pub fn measure(
    parts: &[Part],
    samples: usize,
    steps: usize,
    temperature: f32,
    seed: u64,
    device: &Device,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ComposeReport> {
    anyhow::ensure!(temperature > 0.0, "the temperature must be positive, got {temperature}");
    let (mut sampler, range) = sampler_of(parts, steps);
    sampler.temperature = temperature;
    let sum = Sum::new(parts.iter().map(|p| Term::new(p.model.clone(), p.weight)).collect());
    let composed = sample_2d(&sum, &sampler, range, samples, seed, device)?;
    let mut rng = Rng::with_stream(seed, 0x4e9);
    let regions: Option<Vec<HighRegion>> = parts
        .iter()
        .map(|p| match p.cfg.as_ref().map(|c| &c.data) {
            Some(DataConfig::Toy2d { name }) => name.parse::<Toy2d>().ok().and_then(|d| HighRegion::new(d, &mut rng)),
            _ => None,
        })
        .collect();
    let mut singles = Vec::new();
    let mut single_frac = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let s = sample_2d(&*p.model, &sampler, range, samples, seed + 1 + i as u64, device)?;
        single_frac.push(regions.as_ref().map(|r| fraction_in_all(&s, r)));
        singles.push(s);
    }
    let report = ComposeReport {
        models: parts.iter().map(|p| p.path.display().to_string()).collect(),
        weights: parts.iter().map(|p| p.weight).collect(),
        samples,
        steps,
        temperature,
        composed_in_all: regions.as_ref().map(|r| fraction_in_all(&composed, r)),
        single_in_all: single_frac,
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        crate::figures::compose_figure(parts, &sum, &composed, &singles, range, &dir.join("compose.png"), device)?;
        ebm_io::write_atomic(&dir.join("compose.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(report)
}
