//! Sample quality against the number of Langevin steps ("adaptive computation time"): the same chains from
//! uniform noise, read at several step counts, each time judged by the pixel classifier (conditional-sample
//! accuracy) and by the Fréchet distance of its features to the test images.

use super::quality::judge;
use super::{secs, subset, Setup, Subject};
use crate::error::{ensure, Result};
use candle_core::{DType, Device, Tensor};
use ebm_data::Split;
use ebm_kernels::Rng;
use ebm_sampler::starts::{one_hot, uniform};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The stream of the chains' starts and seeds.
pub const STEPS_STREAM: u64 = 0x57e9;

/// The judged quality after one number of steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepPoint {
    pub steps: usize,
    pub conditional_sample_accuracy: Option<f64>,
    pub classifier_fd_samples_vs_test: f64,
}

/// What [`run`] measured (`steps.json`).
#[derive(Debug, Clone, Serialize)]
pub struct StepsReport {
    pub what: &'static str,
    pub setup: Setup,
    pub samples: usize,
    pub per_class: usize,
    pub classifier: String,
    pub classifier_test_accuracy: f64,
    /// The distance of real train images to the test images: the floor of the curve.
    pub classifier_fd_real_vs_test: f64,
    pub points: Vec<StepPoint>,
    pub seconds: f64,
}

fn features(clf: &crate::PixelClassifier, x: &Tensor) -> Result<(Vec<f32>, usize)> {
    let f = clf.features(&x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
    let d = f.dims()[1];
    Ok((f.flatten_all()?.to_vec1::<f32>()?, d))
}

/// `eval steps`: `per_class` chains per class (or in all) of the run's sampler, read after each of `steps` (in
/// increasing order); writes `steps.json` and `steps.png`.
pub fn run(
    s: &Subject,
    steps: &[usize],
    per_class: usize,
    classifier: Option<&Path>,
    device: &Device,
) -> Result<StepsReport> {
    ensure!(!steps.is_empty() && steps.iter().all(|&k| k >= 1), "--steps needs step counts of at least 1");
    ensure!(steps.windows(2).all(|w| w[0] < w[1]), "--steps must increase");
    ensure!(per_class >= 1, "--per-class must be at least 1");
    let t0 = Instant::now();
    let (clf, info, clf_path) = judge(s, classifier)?;
    let every = steps.iter().fold(0usize, |g, &k| gcd(g, k));
    let max = *steps.last().expect("not empty");
    let (mut sampler, range) = s.sampler(max);
    sampler.record.trajectory_every = Some(every);
    let classes = if s.conditional() { s.classes() } else { 0 };
    let shape = s.model.config().input_shape();
    let mut rng = Rng::with_stream(s.seed, STEPS_STREAM);
    // snapshots[j]: all chains after steps[j]
    let mut snapshots: Vec<Vec<Tensor>> = vec![Vec::new(); steps.len()];
    let mut labels = Vec::new();
    for c in 0..classes.max(1) {
        let x0 = uniform(per_class, &shape, range, &mut rng, device)?;
        let y = vec![c as u32; per_class];
        let cond =
            if classes > 0 { Some(one_hot(&Tensor::from_slice(&y, per_class, device)?, classes)?) } else { None };
        let chain = sampler.run(&s.model, &x0, cond.as_ref(), None, rng.next_u64())?;
        for (j, &k) in steps.iter().enumerate() {
            snapshots[j].push(chain.trajectory[k / every].clone());
        }
        labels.extend(y);
    }
    let test = s.split(Split::Test)?;
    let (xt, _) = subset(&test, None, s.seed)?;
    let (ft, d) = features(&clf, &xt)?;
    let (xr, _) = subset(&s.split(Split::Train)?, Some(labels.len()), s.seed ^ super::quality::REAL_SEED)?;
    let (fr, _) = features(&clf, &xr)?;
    let floor = crate::frechet_from_features(&fr, &ft, d)?.distance;
    let mut points = Vec::new();
    for (j, &k) in steps.iter().enumerate() {
        let x = Tensor::cat(&snapshots[j], 0)?;
        let (fs, _) = features(&clf, &x)?;
        let acc = if classes > 0 { Some(clf.accuracy(&x.to_device(&Device::Cpu)?, &labels)?) } else { None };
        let fd = crate::frechet_from_features(&fs, &ft, d)?.distance;
        tracing::info!("{k} steps: conditional-sample accuracy {acc:?}, classifier FD {fd:.3}");
        points.push(StepPoint { steps: k, conditional_sample_accuracy: acc, classifier_fd_samples_vs_test: fd });
    }
    let r = StepsReport {
        what: "sample quality against Langevin steps: the same chains from noise, judged at each step count",
        setup: s.setup(),
        samples: labels.len(),
        per_class,
        classifier: clf_path.display().to_string(),
        classifier_test_accuracy: info.test_accuracy,
        classifier_fd_real_vs_test: floor,
        points,
        seconds: secs(t0),
    };
    s.write_json("steps.json", &r)?;
    let acc: Vec<(f64, f64)> =
        r.points.iter().filter_map(|p| p.conditional_sample_accuracy.map(|a| (p.steps as f64, a))).collect();
    let fd: Vec<(f64, f64)> = r.points.iter().map(|p| (p.steps as f64, p.classifier_fd_samples_vs_test)).collect();
    let charts = vec![
        (
            String::new(),
            ebm_plot::line_chart(
                &[ebm_plot::Series::new("conditional-sample accuracy", acc, ebm_plot::palette(0))],
                "judged accuracy vs Langevin steps",
                "steps",
                "accuracy",
                560,
                340,
            ),
        ),
        (
            String::new(),
            ebm_plot::line_chart(
                &[ebm_plot::Series::new("classifier-feature FD", fd, ebm_plot::palette(1))],
                "Fréchet distance vs Langevin steps",
                "steps",
                "distance",
                560,
                340,
            ),
        ),
    ];
    ebm_plot::Figure::new()
        .title("sample quality vs steps")
        .cols(2)
        .render(&charts)
        .save_png(s.out.join("steps.png"))?;
    Ok(r)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
