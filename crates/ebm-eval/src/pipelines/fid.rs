//! FID and the Inception Score with the FID Inception-v3 of pytorch-fid (weights from the user), with the
//! reference statistics of each dataset cached on disk.

use super::quality::fresh;
use super::{secs, subset, Setup, Subject};
use crate::error::{EvalError, Result};
use crate::frechet::{FrechetStats, Gaussian};
use crate::inception::InceptionV3;
use candle_core::{Device, Tensor};
use ebm_data::{ImageSet, Split};
use ebm_io::Bundle;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, or a safetensors copy.
    pub inception: PathBuf,
    /// Samples to score (a safetensors file with `samples`/`images`); `None`: fresh samples from the model.
    pub samples: Option<PathBuf>,
    /// Fresh samples to draw when there is no sample file (per class for a conditional model).
    pub per_class: usize,
    pub steps: Option<usize>,
    /// Reference images: `all` (train and test, the paper's CIFAR-10 protocol), `train` or `test`.
    pub reference: String,
    /// At most this many reference images (a seeded random subset).
    pub reference_limit: Option<usize>,
    /// Folder of cached reference statistics (default: the `fid-stats` cache folder).
    pub cache: Option<PathBuf>,
    pub batch: usize,
}

/// Gaussian statistics of reference images under one set of Inception weights, stored as a safetensors file
/// (`mu`, `sigma`, metadata `count` and `weights`) named by everything they depend on.
pub struct StatsCache {
    pub path: PathBuf,
}

impl StatsCache {
    /// The cache file for dataset `data`'s `reference` images (at most `limit`, drawn with `seed`) under the
    /// weights in `weights`, in folder `dir`.
    pub fn new(dir: &Path, data: &str, reference: &str, limit: Option<usize>, seed: u64, weights: &Path) -> Self {
        let len = std::fs::metadata(weights).map(|m| m.len()).unwrap_or(0);
        let wname = weights.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let lim = limit.map(|l| l.to_string()).unwrap_or_else(|| "all".into());
        Self { path: dir.join(format!("{data}-{reference}-{lim}-seed{seed}-{wname}-{len}.safetensors")) }
    }

    /// The cached statistics, if the file is there.
    pub fn load(&self) -> Result<Option<Gaussian>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let b = Bundle::load(&self.path, &Device::Cpu)?;
        let mu = b.get(&self.path, "mu")?.to_vec1::<f64>()?;
        let sigma = b.get(&self.path, "sigma")?.flatten_all()?.to_vec1::<f64>()?;
        let count: usize = b
            .meta(&self.path, "count")?
            .parse()
            .map_err(|_| EvalError::input(&self.path, "metadata `count` is not a number"))?;
        let mut g = Gaussian::new(mu, sigma)?;
        g.count = count;
        Ok(Some(g))
    }

    /// Writes `g` (computed under `weights`) to the cache, atomically.
    pub fn store(&self, g: &Gaussian, weights: &Path) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::error::create_dir(dir)?;
        }
        let mut b = Bundle::new();
        b.insert("mu", Tensor::from_slice(&g.mean, g.dim, &Device::Cpu)?);
        b.insert("sigma", Tensor::from_slice(&g.cov, (g.dim, g.dim), &Device::Cpu)?);
        b.set_meta("count", g.count.to_string());
        b.set_meta("weights", weights.display().to_string());
        Ok(b.save(&self.path)?)
    }
}

/// Reference statistics of the subject's dataset under `net`: from the cache, or computed and cached.
fn reference_stats(s: &Subject, net: &InceptionV3, f: &Settings) -> Result<(Gaussian, PathBuf)> {
    let dir = f.cache.clone().unwrap_or_else(|| ebm_data::sources::cache_dir("fid-stats"));
    let cache = StatsCache::new(&dir, &s.data, &f.reference, f.reference_limit, s.seed, &f.inception);
    if let Some(g) = cache.load()? {
        return Ok((g, cache.path));
    }
    let set = match f.reference.as_str() {
        "all" => {
            let (a, b) = (s.split(Split::Train)?, s.split(Split::Test)?);
            ImageSet::concat(format!("{}-all", s.data), &[&a, &b])?
        }
        "train" => s.split(Split::Train)?,
        "test" => s.split(Split::Test)?,
        other => return Err(EvalError::Settings(format!("--reference `{other}`: use all, train or test"))),
    };
    let (x, _) = subset(&set, f.reference_limit, s.seed)?;
    tracing::info!("Inception features of {} reference images (cached in {})", x.dims()[0], cache.path.display());
    let (pool, _) = net.features(&x, f.batch)?;
    let g = Gaussian::fit(&pool, crate::inception::POOL_DIM)?;
    cache.store(&g, &f.inception)?;
    Ok((g, cache.path))
}

/// What [`run`] measured (`fid.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FidReport {
    pub what: &'static str,
    pub setup: Setup,
    pub inception_weights: String,
    pub samples: usize,
    pub samples_source: String,
    pub reference: String,
    pub reference_images: usize,
    pub reference_cache: String,
    pub fid: f64,
    pub frechet_checks: FrechetStats,
    pub inception_score: f64,
    pub inception_score_std: f64,
    pub inception_score_splits: usize,
    pub note: &'static str,
    pub seconds: f64,
}

/// `eval fid`: writes `fid.json` and `fid_samples.png`.
pub fn run(s: &Subject, f: &Settings, device: &Device) -> Result<FidReport> {
    crate::error::ensure!(f.per_class >= 1 && f.batch >= 1, "--per-class and --batch must be at least 1");
    crate::error::ensure!(f.reference_limit != Some(0), "--reference-limit must be at least 1");
    let t0 = Instant::now();
    let net = InceptionV3::load(&f.inception, device)?;
    let samples = match &f.samples {
        Some(p) => {
            let arch = s.model.config().arch_name();
            ebm_data::inputs::read_inputs(p, &s.model.config().input_shape(), arch, device)?.0
        }
        None => fresh(s, f.per_class, f.steps.unwrap_or_else(|| s.default_steps()), device)?.0,
    };
    let (pool, logits) = net.features(&samples, f.batch)?;
    let n = samples.dims()[0];
    let (ref_g, cache) = reference_stats(s, &net, f)?;
    let g = Gaussian::fit(&pool, crate::inception::POOL_DIM)?;
    let fd = crate::frechet_distance(&g, &ref_g)?;
    let splits = (n / 5000).max(1);
    let (is_mean, is_std) = crate::inception::inception_score(&logits, crate::inception::LOGITS, splits)?;
    let r = FidReport {
        what: "FID and Inception Score with pytorch-fid's FID Inception-v3",
        setup: s.setup(),
        inception_weights: f.inception.display().to_string(),
        samples: n,
        samples_source: f.samples.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "fresh chains".into()),
        reference: f.reference.clone(),
        reference_images: ref_g.count,
        reference_cache: cache.display().to_string(),
        fid: fd.distance,
        frechet_checks: fd,
        inception_score: is_mean,
        inception_score_std: is_std,
        inception_score_splits: splits,
        note: "FID depends on the number of samples; the paper's numbers use 50,000",
        seconds: secs(t0),
    };
    s.write_json("fid.json", &r)?;
    crate::figures::image_grid_png(&samples.narrow(0, 0, n.min(64))?, None, 8, &s.out.join("fid_samples.png"))?;
    Ok(r)
}
