//! Out-of-distribution detection: AUROC of the model's score `-E(x)` (or `-min_y E(x, y)`), the test split as the
//! positives, against synthetic sets, other datasets and the user's files.

use super::{load_set, mean, secs, subset, Setup, Subject};
use crate::error::{ensure, Result};
use candle_core::{Device, Tensor};
use ebm_data::Split;
use ebm_kernels::Rng;
use ebm_plot::{palette, Figure, HistogramChart};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The family of streams of the negative sets, one per set keyed by its spec.
pub const NEGATIVES_STREAM: u64 = 0x00d;

/// What an image is scored by: its energy (`-E(x)`, or `-min_y E(x, y)` for a conditional model), or, as for a
/// softmax classifier, its largest class probability `max_y softmax(-E(x, .))_y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    Energy,
    MaxProb,
}

impl std::str::FromStr for Score {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "energy" => Ok(Score::Energy),
            "maxprob" | "max-prob" => Ok(Score::MaxProb),
            _ => Err(format!("unknown score `{s}` (use energy or maxprob)")),
        }
    }
}

impl Score {
    fn describe(self, conditional: bool) -> &'static str {
        match (self, conditional) {
            (Score::MaxProb, _) => "max_y softmax(-E(x, .))_y",
            (Score::Energy, true) => "-min_y E(x, y)",
            (Score::Energy, false) => "-E(x)",
        }
    }
}

/// The scores of `x` (higher: more in-distribution).
fn scores(s: &Subject, x: &Tensor, score: Score) -> Result<Vec<f32>> {
    let c = if s.conditional() { s.classes() } else { 0 };
    match score {
        Score::Energy => Ok(crate::ood::scores(&s.model, x, c, 256)?),
        Score::MaxProb => {
            let mut out = Vec::with_capacity(x.dims()[0]);
            for start in (0..x.dims()[0]).step_by(256) {
                let len = (x.dims()[0] - start).min(256);
                let logits = crate::classify::class_energy_values(&s.model, &x.narrow(0, start, len)?, c)?.neg()?;
                let p = candle_core::Tensor::exp(&logits.broadcast_sub(&logits.max_keepdim(1)?)?)?;
                let p = p.broadcast_div(&p.sum_keepdim(1)?)?;
                out.extend(p.max(1)?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?);
            }
            Ok(out)
        }
    }
}

/// The negative sets of the paper's table: uniform noise, constant images, interpolations.
pub const SYNTHETIC: [&str; 3] = ["uniform", "constant", "interp"];

/// One negative set, measured.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    pub what: String,
    pub images: usize,
    pub auroc: f64,
    pub score_mean_in: f64,
    pub score_mean_out: f64,
}

/// What [`run`] measured (`ood.json`).
#[derive(Debug, Clone, Serialize)]
pub struct OodReport {
    pub what: &'static str,
    pub score: &'static str,
    pub score_kind: Score,
    pub setup: Setup,
    pub in_distribution: String,
    pub negatives_quantised_to_levels: u16,
    /// AUROC per negative set, by its spec.
    pub auroc: BTreeMap<String, f64>,
    pub sets: BTreeMap<String, SetReport>,
    pub seconds: f64,
}

/// The images of one negative set, brought to the model's shape: `uniform`, `constant`, `interp`, `file:PATH` (a
/// PNG/JPEG file or folder, a safetensors file with `images`, or an IDX file) or a dataset `NAME` / `NAME@DIR`
/// (its test split, resized and converted).
fn negatives(
    s: &Subject,
    spec: &str,
    x_in: &Tensor,
    n: usize,
    levels: u16,
    device: &Device,
) -> Result<(Tensor, String)> {
    let shape = s.shape();
    let mut rng = Rng::with_named_stream(s.seed, NEGATIVES_STREAM, spec);
    let quant = |t: Tensor| crate::convert::quantize(&t, levels);
    Ok(match spec {
        "uniform" => (quant(crate::ood::uniform_noise(n, shape, &mut rng, device)?)?, "uniform noise U(0,1)".into()),
        "constant" => (
            quant(crate::ood::constant_images(n, shape, &mut rng, device)?)?,
            "constant images of a uniform random colour".into(),
        ),
        "interp" | "interpolation" => (
            quant(crate::ood::interpolations(x_in, &mut rng)?)?,
            "midpoints of pairs of in-distribution test images".into(),
        ),
        s2 if s2.starts_with("file:") => {
            let p = PathBuf::from(&s2[5..]);
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            let x = if p.is_dir() || matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                crate::convert::read_image_files(&p, shape)?
            } else {
                let arch = s.model.config().arch_name();
                ebm_data::inputs::read_inputs(&p, &s.model.config().input_shape(), arch, device)?.0
            };
            (x.to_device(device)?, format!("the images of {}", p.display()))
        }
        spec => {
            let (name, dir) = match spec.split_once('@') {
                Some((n, d)) => (n, PathBuf::from(d)),
                None if spec == s.data => (spec, s.data_dir.clone()),
                None => (spec, ebm_data::sources::cache_dir(spec)),
            };
            let set = load_set(name, &dir, Split::Test)?;
            let (x, _) = subset(&set, Some(n), s.seed)?;
            let from = set.shape();
            let x = quant(crate::convert::fit_to(&x, shape)?)?;
            let how = if from == shape {
                String::new()
            } else {
                format!(", converted from {}x{}x{} (area resize, luma/repeat channels)", from[0], from[1], from[2])
            };
            (x.to_device(device)?, format!("{name} test images{how}"))
        }
    })
}

/// `eval ood` against each set of `against` with at most `limit` in-distribution images (default 2000), scoring
/// by `score`; writes `ood.json` and `ood.png`.
pub fn run(s: &Subject, against: &[String], limit: Option<usize>, score: Score, device: &Device) -> Result<OodReport> {
    let t0 = Instant::now();
    ensure!(limit != Some(0), "--limit must be at least 1");
    ensure!(!against.is_empty(), "--against needs at least one set");
    let test = s.split(Split::Test)?;
    let levels = test.levels();
    let (x_in, _) = subset(&test, Some(limit.unwrap_or(2000)), s.seed)?;
    let x_in = x_in.to_device(device)?;
    let n = x_in.dims()[0];
    let conditional = s.conditional();
    ensure!(score == Score::Energy || conditional, "--score maxprob needs a class-conditional model");
    let s_in = scores(s, &x_in, score)?;
    let mut sets = BTreeMap::new();
    let mut auroc = BTreeMap::new();
    let mut panels = Vec::new();
    for spec in against {
        let (x_out, what) = negatives(s, spec, &x_in, n, levels, device)?;
        let s_out = scores(s, &x_out, score)?;
        let a = crate::auroc(&s_in, &s_out)?;
        auroc.insert(spec.clone(), a);
        sets.insert(
            spec.clone(),
            SetReport { what, images: s_out.len(), auroc: a, score_mean_in: mean(&s_in), score_mean_out: mean(&s_out) },
        );
        let chart = HistogramChart::new(&format!("{spec}: AUROC {a:.3}"), 40)
            .x_label(&format!("score {}", score.describe(conditional)))
            .size(560, 340)
            .render(&[(&s.data, &s_in, palette(0)), (spec.as_str(), &s_out, palette(1))]);
        panels.push((String::new(), chart));
    }
    let r = OodReport {
        what: "OOD detection: AUROC of the score (in-distribution = positives), no Langevin",
        score: score.describe(conditional),
        score_kind: score,
        setup: s.setup(),
        in_distribution: format!("{n} test images (seeded random subset), pixels p/(L-1)"),
        negatives_quantised_to_levels: levels,
        auroc,
        sets,
        seconds: secs(t0),
    };
    s.write_json("ood.json", &r)?;
    Figure::new()
        .title("OOD scores: in-distribution vs each set")
        .cols(2)
        .render(&panels)
        .save_png(s.out.join("ood.png"))?;
    Ok(r)
}
