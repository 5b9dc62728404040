//! Accuracy under PGD against epsilon, for the plain energy classifier and for the one defended by Langevin
//! refinement, attacked through the refinement in each of the ways asked for.

use super::{secs, subset, Setup, Subject};
use crate::error::{ensure, Result};
use crate::robust::{robust_curve, AttackLoss, EnergyClassifier, Norm, Refinement, Through};
use candle_core::Device;
use ebm_data::Split;
use serde::Serialize;
use std::time::Instant;

/// Mixed into the subject's seed for the attacks' random starts, and for the refinement's noise.
pub const ATTACK_SEED: u64 = 0xe7;
pub const REFINE_SEED: u64 = 0xa7;

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub norm: Norm,
    /// Epsilons (pixel range [0, 1]).
    pub eps: Vec<f32>,
    /// PGD steps.
    pub steps: usize,
    /// Step size as a multiple of eps / steps.
    pub step_factor: f32,
    /// Test images attacked (a seeded random subset).
    pub limit: usize,
    /// Langevin steps of the defence (0: the undefended classifier only).
    pub refine_steps: usize,
    pub refine_radius: f32,
    /// How the attacks on the defended classifier differentiate it.
    pub modes: Vec<Through>,
    /// What the attacker ascends.
    pub loss: AttackLoss,
}

/// The name of a way of attacking through the refinement: `ignore`, `bpda` or `unroll`.
pub fn through_name(t: Through) -> &'static str {
    match t {
        Through::Ignore => "ignore",
        Through::Bpda => "bpda",
        Through::Unroll { .. } => "unroll",
        Through::BpdaEot { .. } => "bpda-eot",
    }
}

/// One classifier's curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub name: String,
    pub refinement: Option<Refinement>,
    pub through: &'static str,
    pub eps: Vec<f32>,
    pub accuracy: Vec<f64>,
    pub pgd_accuracy_final_iterate: Vec<f64>,
    pub max_perturbation: Vec<f64>,
    pub seconds: f64,
}

/// What [`run`] measured (`robust.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RobustReport {
    pub what: &'static str,
    pub setup: Setup,
    pub norm: Norm,
    pub loss: AttackLoss,
    pub steps: usize,
    pub step_size: String,
    pub images: usize,
    pub images_note: &'static str,
    pub accuracy_note: &'static str,
    pub curves: Vec<Curve>,
}

/// `eval robust`: writes `robust.json` and `robust.png`.
pub fn run(s: &Subject, r: &Settings, device: &Device) -> Result<RobustReport> {
    let classes = s.need_classes("adversarial robustness")?;
    ensure!(!r.eps.is_empty() && r.eps.iter().all(|e| *e >= 0.0), "--eps needs non-negative values");
    ensure!(r.eps.iter().all(|e| e.is_finite()), "--eps needs finite values");
    ensure!(r.limit >= 1 && r.steps >= 1, "--limit and --steps must be at least 1");
    ensure!(r.step_factor > 0.0 && r.step_factor.is_finite(), "--step-factor must be a positive number");
    let (x, y) = subset(&s.split(Split::Test)?, Some(r.limit), s.seed)?;
    let x = x.to_device(device)?;
    let mut curves = Vec::new();
    let mut runs: Vec<(String, Option<Refinement>, Through)> = vec![("undefended".into(), None, Through::Ignore)];
    if r.refine_steps > 0 {
        let refine = s.refinement(r.refine_steps, r.refine_radius);
        for &t in &r.modes {
            runs.push((format!("defended ({} steps), attack {}", r.refine_steps, through_name(t)), Some(refine), t));
        }
    }
    for (name, refine, through) in runs {
        let t0 = Instant::now();
        let clf = EnergyClassifier { energy: &s.model, classes, refine };
        let curve = robust_curve(
            &clf,
            &x,
            &y,
            r.norm,
            &r.eps,
            r.steps,
            r.step_factor,
            through,
            r.loss,
            s.seed ^ ATTACK_SEED,
            s.seed ^ REFINE_SEED,
            100,
        )?;
        let secs = secs(t0);
        tracing::info!("{name}: {:?} in {secs} s", curve.iter().map(|p| p.accuracy).collect::<Vec<_>>());
        curves.push(Curve {
            name,
            refinement: refine,
            through: through_name(through),
            eps: curve.iter().map(|p| p.eps).collect(),
            accuracy: curve.iter().map(|p| p.accuracy).collect(),
            pgd_accuracy_final_iterate: curve.iter().map(|p| p.pgd_accuracy).collect(),
            max_perturbation: curve.iter().map(|p| p.max_perturbation).collect(),
            seconds: secs,
        });
    }
    let report = RobustReport {
        what: "accuracy under PGD, projected onto the eps-ball around the clean input and [0, 1], random start",
        setup: s.setup(),
        norm: r.norm,
        loss: r.loss,
        steps: r.steps,
        step_size: format!("{} * eps / steps", r.step_factor),
        images: y.len(),
        images_note: "a seeded random subset of the test split",
        accuracy_note:
            "correct at this eps and at every smaller eps of the sweep; pgd_accuracy_final_iterate: this eps alone",
        curves,
    };
    s.write_json("robust.json", &report)?;
    let series: Vec<ebm_plot::Series> = report
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut e: Vec<(f64, f64)> = c.eps.iter().zip(&c.accuracy).map(|(e, a)| (*e as f64, *a)).collect();
            e.sort_by(|a, b| a.0.total_cmp(&b.0));
            ebm_plot::Series::new(&c.name, e, ebm_plot::palette(i))
        })
        .collect();
    let norm = match r.norm {
        Norm::Linf => "L-inf",
        Norm::L2 => "L2",
    };
    ebm_plot::line_chart(
        &series,
        &format!("accuracy under {norm} PGD ({} images)", y.len()),
        "epsilon",
        "accuracy",
        720,
        440,
    )
    .save_png(s.out.join("robust.png"))?;
    Ok(report)
}
