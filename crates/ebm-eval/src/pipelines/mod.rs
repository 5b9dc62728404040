//! Every evaluation of the paper on a trained image model, each as a function from a [`Subject`] and typed
//! settings to a typed report, written as JSON with a picture beside it in the subject's output folder.
//!
//! | pipeline | measures | writes |
//! |---|---|---|
//! | [`classify::run`] | `argmin_y E(x, y)` accuracy and confusion, optionally after Langevin refinement | `classify.json`, `confusion.png` |
//! | [`ood::run`] | AUROC of `-E(x)` (or `-min_y E`) against noise, constant images, interpolations, other datasets, files | `ood.json`, `ood.png` |
//! | [`robust::run`] | accuracy under PGD (L-inf / L2) vs epsilon, with and without refinement, attacks through it | `robust.json`, `robust.png` |
//! | [`complete::run`] | masked-region MSE of masked-Langevin completion against the original and the trivial fill | `complete.json`, `complete.png` |
//! | [`complete::cross_class`] | images of one class sampled under another | `cross_class.json`, `cross_class.png` |
//! | [`quality::train_classifier`] | trains the pixel classifier used as a judge and feature extractor | the classifier file |
//! | [`quality::run`] | conditional-sample accuracy and classifier-feature Fréchet distance (not FID) | `sample_quality.json`, `samples.png` |
//! | [`fid::run`] | Inception Score and FID with the FID Inception-v3 (weights from the user) | `fid.json`, `fid_samples.png` |
//! | [`ais::run`] | AIS estimates of `log Z` and test log-likelihood bounds | `ais.json`, `ais.png` |
//! | [`report::run`] | the results-table row: the measurements above with their defaults | `report.json`, `report.md` |
//!
//! [`inspect`] holds the small uses of a model: fresh samples to a file, energies and classes of given inputs.

pub mod ais;
pub mod classify;
pub mod compare;
pub mod complete;
pub mod fid;
pub mod inspect;
pub mod ood;
pub mod quality;
pub mod report;
pub mod robust;
pub mod steps;

use crate::error::{ensure, Context, EvalError, Result};
use crate::robust::Refinement;
use candle_core::{Device, Tensor};
use ebm_data::{ImageSet, Split};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::Langevin;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The stream of [`subset`]'s shuffle.
pub const SUBSET_STREAM: u64 = 0x5b5e7;

/// What a training run says about sampling its model and about its data.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The run's Langevin sampler (its step count is replaced by each evaluation's).
    pub sampler: Langevin,
    /// The box the run's fresh chains start in.
    pub init_range: [f32; 2],
    /// The run's own number of steps for fresh samples (`eval.steps`).
    pub eval_steps: usize,
    /// The run's dataset name and folder, for an image run.
    pub data: Option<(String, Option<PathBuf>)>,
}

/// Where an evaluation reads its data and writes its results, chosen by the user.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Dataset name; default: the run's.
    pub data: Option<String>,
    /// Folder of the dataset's files; default: the run's `data.dir`, else the cache folder of the dataset.
    pub data_dir: Option<PathBuf>,
    /// Output folder; default: `<run>/eval`, or `<model file stem>-eval` beside a model file.
    pub out: Option<PathBuf>,
    pub seed: u64,
}

/// A model opened for evaluation: frozen, with its run's settings when it came from a run folder, the dataset it
/// is measured on and the folder the results go to.
pub struct Subject {
    pub model: EnergyNet,
    pub run: Option<RunSettings>,
    /// The run folder or model file it came from.
    pub path: PathBuf,
    pub out: PathBuf,
    pub data: String,
    pub data_dir: PathBuf,
    pub seed: u64,
}

/// Who was measured on what: the `setup` of every report.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub model: String,
    pub arch: String,
    pub data: String,
    pub seed: u64,
}

impl Subject {
    /// Opens `model` (read from `path`, with `run` when `path` is a run folder) for evaluation on `target`'s data,
    /// creating the output folder.
    pub fn new(mut model: EnergyNet, path: &Path, run: Option<RunSettings>, target: &Target) -> Result<Self> {
        let shape = model.config().input_shape();
        if shape.len() != 3 {
            return Err(EvalError::input(
                path,
                format!("`eval` measures image models; this `{}` model takes {shape:?}", model.config().arch_name()),
            ));
        }
        model.set_frozen(true);
        let (run_data, run_dir) = match run.as_ref().and_then(|r| r.data.clone()) {
            Some((d, dir)) => (Some(d), dir),
            None => (None, None),
        };
        let data = match (&target.data, run_data) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d,
            (None, None) => {
                return Err(EvalError::input(
                    path,
                    "a bare model file does not say its dataset; pass --data (e.g. --data digits)",
                ))
            }
        };
        let data_dir = target
            .data_dir
            .clone()
            .or(if target.data.is_none() { run_dir } else { None })
            .unwrap_or_else(|| ebm_data::sources::cache_dir(&data));
        let out = match &target.out {
            Some(o) => o.clone(),
            // a hub model: not beside the cached file (the cache is shared and content-addressed)
            None if path.to_str().is_some_and(ebm_models::hub::HubSpec::is_hub) => {
                let spec = path.to_string_lossy();
                let name = spec.trim_start_matches(ebm_models::hub::SCHEME).replace(['/', '@'], "--");
                PathBuf::from("runs/eval").join(name)
            }
            None if path.is_dir() => path.join("eval"),
            None => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                path.with_file_name(format!("{stem}-eval"))
            }
        };
        crate::error::create_dir(&out)?;
        Ok(Self { model, run, path: path.to_path_buf(), out, data, data_dir, seed: target.seed })
    }

    /// The model's image shape `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        let s = self.model.config().input_shape();
        [s[0], s[1], s[2]]
    }

    /// Classes of a class-conditional model (the condition's length otherwise).
    pub fn classes(&self) -> usize {
        self.model.config().cond_dim()
    }

    /// Whether the model has one energy per class.
    pub fn conditional(&self) -> bool {
        self.model.config().is_class_conditional()
    }

    /// The classes, or an error naming the file and `what` needs them unless the model is class-conditional.
    pub fn need_classes(&self, what: &str) -> Result<usize> {
        if !self.conditional() {
            return Err(EvalError::input(
                &self.path,
                format!(
                    "{what} needs a class-conditional model (one energy per class, E(x, y)); this `{}` model has no \
                     class head",
                    self.model.config().arch_name()
                ),
            ));
        }
        Ok(self.classes())
    }

    /// A split of the evaluation dataset, checked against the model.
    pub fn split(&self, split: Split) -> Result<ImageSet> {
        let set = load_set(&self.data, &self.data_dir, split)?;
        ensure!(
            set.shape() == self.shape(),
            "dataset `{}` has images of shape {:?} but the model {} takes {:?}",
            self.data,
            set.shape(),
            self.path.display(),
            self.shape()
        );
        let classes = self.classes();
        ensure!(
            !self.conditional() || classes == set.num_classes(),
            "the model {} has {classes} classes but dataset `{}` has {}",
            self.path.display(),
            self.data,
            set.num_classes()
        );
        Ok(set)
    }

    /// The run's sampler with `steps` steps, or the official image sampler (step 10, elementwise clip 0.01, noise
    /// 0.005, clamp to [0, 1]) for a bare model file; and the box its fresh chains start in.
    pub fn sampler(&self, steps: usize) -> (Langevin, [f32; 2]) {
        match &self.run {
            Some(r) => (Langevin { steps, ..r.sampler.clone() }, r.init_range),
            None => (Langevin::igebm(10.0, 0.01, steps), [0.0, 1.0]),
        }
    }

    /// Steps of fresh chains when the user gives none: the run's `eval.steps`, else 60.
    pub fn default_steps(&self) -> usize {
        self.run.as_ref().map(|r| r.eval_steps).unwrap_or(60)
    }

    /// The run's sampler settings as the paper's refinement of a classifier's input.
    pub fn refinement(&self, steps: usize, radius: f32) -> Refinement {
        let (l, _) = self.sampler(steps);
        Refinement { steps, step_size: l.step_size, noise_std: l.noise_std, clip: l.clip, radius }
    }

    /// The `setup` block of a report.
    pub fn setup(&self) -> Setup {
        Setup {
            model: self.path.display().to_string(),
            arch: self.model.config().arch_name().to_string(),
            data: self.data.clone(),
            seed: self.seed,
        }
    }

    /// Writes `report` as pretty JSON to `name` in the output folder, atomically.
    pub fn write_json<R: Serialize>(&self, name: &str, report: &R) -> Result<PathBuf> {
        let p = self.out.join(name);
        ebm_io::write_atomic(&p, serde_json::to_string_pretty(report)?.as_bytes())?;
        Ok(p)
    }
}

/// Split `split` of dataset `name` from `dir`, saying how to get it when its files are missing.
pub fn load_set(name: &str, dir: &Path, split: Split) -> Result<ImageSet> {
    ebm_data::sources::load(name, dir, split).context(format!(
        "loading dataset `{name}` from {} (get it with `cargo xtask fetch-data {name}`)",
        dir.display()
    ))
}

/// The images of a seeded random subset of at most `limit` images (all, in a random order, when `None`), as
/// `p / (L-1)` in [0, 1], with their labels.
pub fn subset(set: &ImageSet, limit: Option<usize>, seed: u64) -> Result<(Tensor, Vec<u32>)> {
    let mut idx: Vec<usize> = (0..set.len()).collect();
    Rng::with_stream(seed, SUBSET_STREAM).shuffle(&mut idx);
    idx.truncate(limit.unwrap_or(set.len()).min(set.len()));
    let (x, y) = set.batch(&idx, None)?;
    Ok((x, y.to_vec1::<u32>()?))
}

/// Seconds since `t`, to a tenth.
pub fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

/// One-hot conditions `[N, classes]` for labels `y` (`None` when `classes` is 0).
pub fn labels_cond(y: &[u32], classes: usize, device: &Device) -> Result<Option<Tensor>> {
    if classes == 0 {
        return Ok(None);
    }
    Ok(Some(ebm_sampler::one_hot(&Tensor::from_slice(y, y.len(), device)?, classes)?))
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|x| *x as f64).sum::<f64>() / v.len().max(1) as f64
}
