//! Energy-based classification of the test split: accuracy and confusion, optionally after the paper's Langevin
//! refinement of each class copy.

use super::{secs, subset, Setup, Subject};
use crate::error::{ensure, Result};
use crate::robust::{EnergyClassifier, Refinement};
use candle_core::Device;
use ebm_data::Split;
use serde::Serialize;
use std::time::Instant;

/// Mixed into the subject's seed for the refinement's noise.
pub const REFINE_SEED: u64 = 0xc1a5;

/// Settings of [`run`].
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Test images to classify (a seeded random subset; `None`: all).
    pub limit: Option<usize>,
    /// Langevin steps refining each class copy before scoring (0: none).
    pub refine_steps: usize,
    /// Box the refinement stays in around the input (official: 8/255).
    pub refine_radius: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { limit: None, refine_steps: 0, refine_radius: 8.0 / 255.0 }
    }
}

/// What [`run`] measured (`classify.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ClassifyReport {
    pub what: &'static str,
    pub setup: Setup,
    pub images: usize,
    pub refine_steps: usize,
    pub refinement: Option<Refinement>,
    pub accuracy: f64,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub confusion_note: &'static str,
    pub seconds: f64,
}

/// `eval classify`: writes `classify.json` and `confusion.png`.
pub fn run(s: &Subject, set: &Settings, device: &Device) -> Result<ClassifyReport> {
    let classes = s.need_classes("classification")?;
    ensure!(set.limit != Some(0), "--limit must be at least 1");
    let t0 = Instant::now();
    let (x, y) = subset(&s.split(Split::Test)?, set.limit, s.seed)?;
    let refine = (set.refine_steps > 0).then(|| s.refinement(set.refine_steps, set.refine_radius));
    let clf = EnergyClassifier { energy: &s.model, classes, refine };
    let pred = clf.predict(&x.to_device(device)?, s.seed ^ REFINE_SEED, 128)?;
    let accuracy = crate::classify::accuracy(&pred, &y);
    let confusion = crate::classify::confusion(&pred, &y, classes);
    let r = ClassifyReport {
        what: "energy-based classification: argmin_y E(x~_y, y) on the test split",
        setup: s.setup(),
        images: y.len(),
        refine_steps: set.refine_steps,
        refinement: refine,
        accuracy,
        confusion,
        confusion_note: "confusion[true][predicted]",
        seconds: secs(t0),
    };
    s.write_json("classify.json", &r)?;
    crate::figures::confusion_png(
        &r.confusion,
        &format!("accuracy {:.1}% ({} images)", 100.0 * accuracy, y.len()),
        &s.out.join("confusion.png"),
    )?;
    Ok(r)
}
