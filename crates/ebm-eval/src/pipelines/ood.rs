//! Out-of-distribution detection: AUROC of the model's score `-E(x)` (or `-min_y E(x, y)`), the test split as the
//! positives, against synthetic sets, other datasets and the user's files.

use super::{load_set, mean, secs, subset, Setup, Subject};
use crate::error::Result;
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

/// `eval ood` against each set of `against` with at most `limit` in-distribution images (default 2000); writes
/// `ood.json` and `ood.png`.
pub fn run(s: &Subject, against: &[String], limit: Option<usize>, device: &Device) -> Result<OodReport> {
    let t0 = Instant::now();
    let test = s.split(Split::Test)?;
    let levels = test.levels();
    let (x_in, _) = subset(&test, Some(limit.unwrap_or(2000)), s.seed)?;
    let x_in = x_in.to_device(device)?;
    let n = x_in.dims()[0];
    let conditional = s.conditional();
    let c = if conditional { s.classes() } else { 0 };
    let s_in = crate::ood::scores(&s.model, &x_in, c, 256)?;
    let mut sets = BTreeMap::new();
    let mut auroc = BTreeMap::new();
    let mut panels = Vec::new();
    for spec in against {
        let (x_out, what) = negatives(s, spec, &x_in, n, levels, device)?;
        let s_out = crate::ood::scores(&s.model, &x_out, c, 256)?;
        let a = crate::auroc(&s_in, &s_out)?;
        auroc.insert(spec.clone(), a);
        sets.insert(
            spec.clone(),
            SetReport { what, images: s_out.len(), auroc: a, score_mean_in: mean(&s_in), score_mean_out: mean(&s_out) },
        );
        let chart = HistogramChart::new(&format!("{spec}: AUROC {a:.3}"), 40)
            .x_label(if conditional { "score -min_y E(x, y)" } else { "score -E(x)" })
            .size(560, 340)
            .render(&[(&s.data, &s_in, palette(0)), (spec.as_str(), &s_out, palette(1))]);
        panels.push((String::new(), chart));
    }
    let r = OodReport {
        what: "OOD detection: AUROC of the score (in-distribution = positives), no Langevin",
        score: if conditional { "-min_y E(x, y)" } else { "-E(x)" },
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
