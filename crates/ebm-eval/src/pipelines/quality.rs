//! Sample quality judged by the project's own pixel classifier (there is no pretrained network to be had here):
//! conditional-sample accuracy and the Fréchet distance of the classifier's features. Not comparable to
//! published FID.

use super::{load_set, secs, subset, Setup, Subject};
use crate::classifier::{ClassifierConfig, ClassifierInfo, PixelClassifier};
use crate::error::{EvalError, Result};
use crate::frechet::FrechetStats;
use candle_core::{DType, Device, Tensor};
use ebm_data::Split;
use ebm_kernels::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The stream of the fresh samples of [`fresh`].
pub const FRESH_STREAM: u64 = 0x5a4e;
/// Mixed into the subject's seed for the real images the floor of the distance is measured on.
pub const REAL_SEED: u64 = 0x7ea1;

/// Trains the pixel classifier on the train split of dataset `data` (in `dir`; at most `limit` images) and writes
/// it to `out`.
pub fn train_classifier(
    data: &str,
    dir: &Path,
    limit: Option<usize>,
    cfg: ClassifierConfig,
    out: &Path,
) -> Result<(PixelClassifier, ClassifierInfo)> {
    let train = load_set(data, dir, Split::Train)?;
    crate::error::ensure!(limit != Some(0), "--limit must be at least 1");
    crate::error::ensure!(cfg.epochs >= 1 && cfg.hidden >= 1, "--epochs and --hidden must be at least 1");
    let test = load_set(data, dir, Split::Test)?;
    let (x, y) = subset(&train, limit, cfg.seed)?;
    let (xt, yt) = subset(&test, None, cfg.seed)?;
    let t0 = Instant::now();
    let clf = PixelClassifier::train(&x, &y, train.num_classes(), cfg)?;
    let info = ClassifierInfo {
        dataset: data.to_string(),
        input_shape: train.shape(),
        classes: train.num_classes(),
        hidden: cfg.hidden,
        train_images: y.len(),
        test_accuracy: clf.accuracy(&xt, &yt)?,
        epochs: cfg.epochs,
        seed: cfg.seed,
    };
    if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::error::create_dir(p)?;
    }
    clf.save(out, &info)?;
    tracing::info!(
        "trained the {data} classifier in {:.0} s: {:.2}% test accuracy",
        secs(t0),
        100.0 * info.test_accuracy
    );
    Ok((clf, info))
}

/// A saved classifier, checked to take the subject's images.
pub fn load_judge(p: &Path, s: &Subject) -> Result<(PixelClassifier, ClassifierInfo)> {
    let (clf, info) = PixelClassifier::load(p, &Device::Cpu)?;
    if info.input_shape != s.shape() {
        return Err(EvalError::input(
            p,
            format!(
                "the classifier takes images of {:?} (dataset `{}`), the model {} makes {:?}",
                info.input_shape,
                info.dataset,
                s.path.display(),
                s.shape()
            ),
        ));
    }
    Ok((clf, info))
}

/// The judge: loaded from `classifier`, or the one in the output folder, or trained on the evaluation data and
/// saved there.
pub fn judge(s: &Subject, classifier: Option<&Path>) -> Result<(PixelClassifier, ClassifierInfo, PathBuf)> {
    let p = match classifier {
        Some(p) => p.to_path_buf(),
        None => {
            let p = s.out.join(format!("classifier-{}.safetensors", s.data));
            if !p.exists() {
                let (c, i) = train_classifier(&s.data, &s.data_dir, None, ClassifierConfig::default(), &p)?;
                return Ok((c, i, p));
            }
            p
        }
    };
    let (c, i) = load_judge(&p, s)?;
    Ok((c, i, p))
}

fn features(clf: &PixelClassifier, x: &Tensor) -> Result<(Vec<f32>, usize)> {
    let f = clf.features(&x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
    let d = f.dims()[1];
    Ok((f.flatten_all()?.to_vec1::<f32>()?, d))
}

/// Fresh samples from uniform noise in the run's box: `per_class` per class (or `per_class` in all), `steps`
/// steps of the run's sampler, with their labels.
pub fn fresh(s: &Subject, per_class: usize, steps: usize, device: &Device) -> Result<(Tensor, Vec<u32>)> {
    let classes = if s.conditional() { s.classes() } else { 0 };
    let (sampler, range) = s.sampler(steps);
    let mut rng = Rng::with_stream(s.seed, FRESH_STREAM);
    let shape = s.model.config().input_shape();
    Ok(ebm_sampler::starts::per_class(&s.model, &sampler, &shape, range, classes, per_class, &mut rng, device)?)
}

/// The Fréchet computations behind the two distances.
#[derive(Debug, Clone, Serialize)]
pub struct FrechetChecks {
    pub samples: FrechetStats,
    pub real: FrechetStats,
}

/// What [`run`] measured (`sample_quality.json`).
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub what: &'static str,
    pub setup: Setup,
    pub samples: usize,
    pub samples_note: String,
    pub classifier: String,
    pub classifier_test_accuracy: f64,
    pub classifier_features: usize,
    pub conditional_sample_accuracy: Option<f64>,
    pub classifier_fd_samples_vs_test: f64,
    pub classifier_fd_real_vs_test: f64,
    pub classifier_fd_note: String,
    pub frechet_checks: FrechetChecks,
    pub seconds: f64,
}

/// `eval sample-quality`: `per_class` fresh samples per class after `steps` steps (default: the run's), judged by
/// `classifier` (see [`judge`]); writes `sample_quality.json` and `samples.png`.
pub fn run(
    s: &Subject,
    classifier: Option<&Path>,
    per_class: usize,
    steps: Option<usize>,
    device: &Device,
) -> Result<QualityReport> {
    let t0 = Instant::now();
    let steps = steps.unwrap_or_else(|| s.default_steps());
    crate::error::ensure!(per_class >= 1, "--per-class must be at least 1");
    let (clf, info, clf_path) = judge(s, classifier)?;
    let conditional = s.conditional();
    let (samples, labels) = fresh(s, per_class, steps, device)?;
    let n = labels.len();
    let test = s.split(Split::Test)?;
    let train = s.split(Split::Train)?;
    let (xt, _) = subset(&test, None, s.seed)?;
    let (xr, _) = subset(&train, Some(n), s.seed ^ REAL_SEED)?;
    let (fs, d) = features(&clf, &samples)?;
    let (ft, _) = features(&clf, &xt)?;
    let (fr, _) = features(&clf, &xr)?;
    let fd_s = crate::frechet_from_features(&fs, &ft, d)?;
    let fd_r = crate::frechet_from_features(&fr, &ft, d)?;
    let cond_acc = if conditional { Some(clf.accuracy(&samples.to_device(&Device::Cpu)?, &labels)?) } else { None };
    let r = QualityReport {
        what: "sample quality judged by the project's own pixel classifier (NOT comparable to published FID)",
        setup: s.setup(),
        samples: n,
        samples_note: format!("fresh chains from uniform noise, {steps} Langevin steps, {per_class} per class"),
        classifier: clf_path.display().to_string(),
        classifier_test_accuracy: info.test_accuracy,
        classifier_features: d,
        conditional_sample_accuracy: cond_acc,
        classifier_fd_samples_vs_test: fd_s.distance,
        classifier_fd_real_vs_test: fd_r.distance,
        classifier_fd_note: format!(
            "Fréchet distance of the classifier's {d}-d hidden features: samples vs the {} test images, and (the \
             floor) {} real train images vs the same test images",
            xt.dims()[0],
            xr.dims()[0]
        ),
        frechet_checks: FrechetChecks { samples: fd_s, real: fd_r },
        seconds: secs(t0),
    };
    s.write_json("sample_quality.json", &r)?;
    let k = per_class.min(10);
    let pick: Vec<u32> =
        (0..labels.len() / per_class.max(1)).flat_map(|c| (0..k).map(move |j| (c * per_class + j) as u32)).collect();
    let shown = samples.index_select(&Tensor::from_slice(&pick, pick.len(), samples.device())?, 0)?;
    let shown_labels: Vec<u32> = pick.iter().map(|&i| labels[i as usize]).collect();
    crate::figures::image_grid_png(&shown, conditional.then_some(&shown_labels[..]), k, &s.out.join("samples.png"))?;
    Ok(r)
}
