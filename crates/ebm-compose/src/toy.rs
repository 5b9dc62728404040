//! Composition of 2D models (the toy runs): the weighted sum of their energies, measured against the densities
//! they were trained on by the fraction of samples inside every density's high-density region.

use candle_core::{Device, Tensor};
use ebm_cd::config::{DataConfig, RunConfig};
use ebm_cd::{ensure, Result};
use ebm_data::Toy2d;
use ebm_eval::figures::{density_panel, hist_panel};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_plot::{Bounds, Canvas, Figure};
use ebm_sampler::{Energy, Langevin, Sum, Term};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
) -> Result<Vec<[f32; 2]>> {
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

/// The measurement behind `compose` (also used by tests): the composition and each part alone, all sampled at
/// `temperature`; writes figures when `out` is given.
pub fn measure(
    parts: &[Part],
    samples: usize,
    steps: usize,
    temperature: f32,
    seed: u64,
    device: &Device,
    out: Option<&Path>,
) -> Result<ComposeReport> {
    ensure!(temperature > 0.0, "the temperature must be positive, got {temperature}");
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
        std::fs::create_dir_all(dir).map_err(ebm_cd::error::fs_err(dir))?;
        compose_figure(parts, &sum, &composed, &singles, range, &dir.join("compose.png"), device)?;
        ebm_io::write_atomic(&dir.join("compose.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(report)
}

/// Each part's density, the composition's density, and its samples.
pub fn compose_figure(
    parts: &[Part],
    sum: &Sum,
    composed: &[[f32; 2]],
    singles: &[Vec<[f32; 2]>],
    range: [f32; 2],
    path: &Path,
    device: &Device,
) -> Result<()> {
    let b = Bounds::square(range[0], range[1]);
    let mut items: Vec<(String, Canvas)> = Vec::new();
    for (p, s) in parts.iter().zip(singles) {
        let name = p.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        items.push((format!("{name} exp(-E)"), density_panel(&*p.model, b, device)?));
        items.push((format!("{name} samples"), hist_panel(s, b)?));
    }
    items.push(("sum: exp(-E1-E2)".into(), density_panel(sum, b, device)?));
    items.push(("sum: samples".into(), hist_panel(composed, b)?));
    Figure::new().title("product of experts").cols(2).render(&items).save_png(path)?;
    Ok(())
}
