//! Image completion (masked Langevin under the true class, against the original and a trivial fill) and
//! cross-class sampling (a test image of each class refined under every class).

use super::quality::load_judge;
use super::{labels_cond, secs, subset, Setup, Subject};
use crate::complete::MaskKind;
use crate::error::{EvalError, Result};
use crate::figures::image_rows_png;
use candle_core::{DType, Device, Tensor};
use ebm_data::Split;
use ebm_kernels::Rng;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The stream of the corruption's draws.
pub const CORRUPT_STREAM: u64 = 0xc0de;
/// Mixed into the subject's seed for the completion chains.
pub const COMPLETE_SEED: u64 = 0xf111;
/// Mixed (with the target class added) into the subject's seed for the cross-class chains.
pub const CROSS_SEED: u64 = 0xc5;

/// What [`run`] measured (`complete.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CompleteReport {
    pub what: &'static str,
    pub setup: Setup,
    pub mask: String,
    pub mask_spec: MaskKind,
    pub images: usize,
    pub steps: usize,
    pub sampler: String,
    pub mse_completed: f64,
    pub mse_trivial_fill: f64,
    pub mse_trivial_fill_note: &'static str,
    pub mse_corrupted: f64,
    pub full_image_mse_completed: f64,
    pub seconds: f64,
}

/// `eval complete` with `mask` (see [`MaskKind::parse`]), `steps` Langevin steps, `limit` test images; writes
/// `complete.json` and `complete.png`.
pub fn run(s: &Subject, mask: &str, steps: usize, limit: usize, device: &Device) -> Result<CompleteReport> {
    let t0 = Instant::now();
    let [_, h, w] = s.shape();
    crate::error::ensure!(limit >= 1, "--limit must be at least 1");
    let kind = MaskKind::parse(mask, h, w).map_err(EvalError::Settings)?;
    let (x, y) = subset(&s.split(Split::Test)?, Some(limit), s.seed)?;
    let x = x.to_device(device)?;
    let mut rng = Rng::with_stream(s.seed, CORRUPT_STREAM);
    let c = crate::complete::corrupt(&x, kind, &mut rng)?;
    let classes = if s.conditional() { s.classes() } else { 0 };
    let cond = labels_cond(&y, classes, device)?;
    let (sampler, _) = s.sampler(steps);
    let done = crate::complete::complete(&s.model, &c.start, &c.mask, cond.as_ref(), &sampler, s.seed ^ COMPLETE_SEED)?;
    let trivial = crate::complete::trivial_fill(&c.start, &c.mask)?;
    let m = |a: &Tensor| -> Result<f64> { Ok(crate::complete::mean(&crate::complete::masked_mse(a, &x, &c.mask)?)) };
    let full =
        |a: &Tensor| -> Result<f64> { Ok((a - &x)?.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    let (mc, mt, mn) = (m(&done)?, m(&trivial)?, m(&c.start)?);
    let r = CompleteReport {
        what: "masked Langevin completion under the true class; MSE over the masked region against the original",
        setup: s.setup(),
        mask: kind.name(),
        mask_spec: kind,
        images: y.len(),
        steps,
        sampler: format!("{sampler:?}"),
        mse_completed: mc,
        mse_trivial_fill: mt,
        mse_trivial_fill_note: "missing pixels set to the mean of the image's known pixels (per channel)",
        mse_corrupted: mn,
        full_image_mse_completed: full(&done)?,
        seconds: secs(t0),
    };
    s.write_json("complete.json", &r)?;
    // 10 images: originals / corrupted / completed / trivial fill
    let k = y.len().min(10);
    let rows: Vec<Tensor> =
        [&x, &c.start, &done, &trivial].iter().map(|t| t.narrow(0, 0, k)).collect::<candle_core::Result<_>>()?;
    let labels: Vec<String> = ["orig", "input", "ebm", "mean"].map(String::from).to_vec();
    image_rows_png(
        &Tensor::cat(&rows, 0)?,
        k,
        &labels,
        &format!("{}: MSE ebm {mc:.4}, mean fill {mt:.4}", kind.name()),
        &s.out.join("complete.png"),
    )?;
    Ok(r)
}

/// The judge's reading of cross-class samples.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub classifier: String,
    pub classifier_test_accuracy: f64,
    pub judged_as_target: f64,
}

/// What [`cross_class`] measured (`cross_class.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CrossClassReport {
    pub what: &'static str,
    pub setup: Setup,
    pub steps: usize,
    pub source_labels: Vec<u32>,
    pub judged_as_target: Option<f64>,
    pub judge: Option<Judged>,
    pub seconds: f64,
}

/// `eval cross-class`: a test image of each class sampled under every class for `steps` steps, judged by the
/// pixel classifier in `classifier` when given; writes `cross_class.json` and `cross_class.png`.
pub fn cross_class(s: &Subject, steps: usize, classifier: Option<&Path>, device: &Device) -> Result<CrossClassReport> {
    let classes = s.need_classes("cross-class sampling")?;
    let t0 = Instant::now();
    let test = s.split(Split::Test)?;
    // one test image per class (the first of each class in the seeded order), each sampled under every class
    let (xs, ys) = subset(&test, None, s.seed)?;
    let pick: Vec<u32> =
        (0..classes as u32).filter_map(|c| ys.iter().position(|&l| l == c).map(|i| i as u32)).collect();
    let src = xs.index_select(&Tensor::from_slice(&pick, pick.len(), &Device::Cpu)?, 0)?.to_device(device)?;
    let k = pick.len();
    let (sampler, _) = s.sampler(steps);
    let mut rows = vec![src.clone()];
    let mut targets = Vec::new();
    for t in 0..classes as u32 {
        let y = vec![t; k];
        let cond = labels_cond(&y, classes, device)?;
        rows.push(sampler.run(&s.model, &src, cond.as_ref(), None, s.seed ^ (CROSS_SEED + t as u64))?.x);
        targets.extend(y);
    }
    let results = Tensor::cat(&rows[1..], 0)?;
    let judge = match classifier {
        Some(p) => {
            let (judge, info) = load_judge(p, s)?;
            Some(Judged {
                classifier: p.display().to_string(),
                classifier_test_accuracy: info.test_accuracy,
                judged_as_target: judge.accuracy(&results.to_device(&Device::Cpu)?, &targets)?,
            })
        }
        None => None,
    };
    let r = CrossClassReport {
        what: "cross-class: a test image of each class (columns) refined by Langevin under each class (rows)",
        setup: s.setup(),
        steps,
        source_labels: pick.iter().map(|&i| ys[i as usize]).collect(),
        judged_as_target: judge.as_ref().map(|j| j.judged_as_target),
        judge,
        seconds: secs(t0),
    };
    s.write_json("cross_class.json", &r)?;
    let mut labels = vec!["src".to_string()];
    labels.extend((0..classes).map(|c| format!("as {c}")));
    image_rows_png(
        &Tensor::cat(&rows, 0)?,
        k,
        &labels,
        &format!("cross-class, {steps} steps"),
        &s.out.join("cross_class.png"),
    )?;
    Ok(r)
}
