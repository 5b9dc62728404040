//! The `--model` specs of a composition: `PATH[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]` (a run folder or a
//! model file; the legacy `PATH:W` still means weight `W`), and the condition tensor a spec gives its model.

use candle_core::{Device, Tensor};
use ebm_cd::{bail, ensure, CdError, Result};
use ebm_models::EnergyNet;
use serde::Serialize;
use std::path::PathBuf;

/// A model's condition as given on the command line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CondSpec {
    /// A class label (for class-conditional models).
    Label(u32),
    /// A vector of continuous latents (for models such as DspritesNet).
    Cond(Vec<f32>),
}

/// One parsed `--model` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub path: PathBuf,
    pub cond: Option<CondSpec>,
    /// Positive: an AND/OR part; negative: a NOT term with weight `|weight|`.
    pub weight: f64,
    /// For NOT terms: the energy of the negated model above which the term stops acting.
    pub margin: Option<f64>,
}

fn number(spec: &str, key: &str, v: &str) -> Result<f64> {
    let x: f64 = v.trim().parse().map_err(|_| CdError::Msg(format!("`{spec}`: {key} `{v}` is not a number")))?;
    ensure!(x.is_finite(), "`{spec}`: {key} must be finite, got {v}");
    Ok(x)
}

/// Parses `PATH[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]` (or the legacy `PATH:W`). Options are the trailing
/// `:`-separated segments that contain `=` (or a final bare number); anything before them is the path.
pub fn parse_model_spec(spec: &str) -> Result<ModelSpec> {
    let segs: Vec<&str> = spec.split(':').collect();
    let mut first_opt = segs.len();
    while first_opt > 1 {
        let s = segs[first_opt - 1];
        let legacy_weight = first_opt == segs.len() && s.parse::<f64>().is_ok();
        if s.contains('=') || legacy_weight {
            first_opt -= 1;
        } else {
            break;
        }
    }
    let path = segs[..first_opt].join(":");
    ensure!(!path.is_empty(), "`{spec}`: no model path before the options");
    let mut out = ModelSpec { path: PathBuf::from(path), cond: None, weight: 1.0, margin: None };
    let mut seen = Vec::new();
    for s in &segs[first_opt..] {
        let (key, value) = s.split_once('=').unwrap_or(("weight", s));
        ensure!(!seen.contains(&key), "`{spec}`: `{key}` given twice");
        seen.push(key);
        match key {
            "weight" | "w" => {
                out.weight = number(spec, "weight", value)?;
                ensure!(out.weight != 0.0, "`{spec}`: a weight of 0 leaves the model out; drop it instead");
            }
            "margin" => out.margin = Some(number(spec, "margin", value)?),
            "label" => {
                ensure!(out.cond.is_none(), "`{spec}`: give either `label` or `cond`, not both");
                let l = value.trim().parse::<u32>().map_err(|_| {
                    CdError::Msg(format!("`{spec}`: label `{value}` is not a class index (0, 1, 2, ...)"))
                })?;
                out.cond = Some(CondSpec::Label(l));
            }
            "cond" => {
                ensure!(out.cond.is_none(), "`{spec}`: give either `label` or `cond`, not both");
                let v = value
                    .split(',')
                    .map(|t| number(spec, "cond entry", t).map(|x| x as f32))
                    .collect::<Result<Vec<f32>>>()?;
                out.cond = Some(CondSpec::Cond(v));
            }
            other => bail!(
                "`{spec}`: unknown option `{other}` (expected label=, cond=, weight= or margin=, e.g. \
                 `runs/digits:label=3:weight=1`)"
            ),
        }
    }
    ensure!(out.margin.is_none() || out.weight < 0.0, "`{spec}`: `margin` is for NOT terms (a negative weight)");
    Ok(out)
}

/// The `[n, cond_dim]` condition `spec` gives `model`, or `None` for an unconditional model; errors name the model
/// and say what it expects.
pub fn condition_tensor(spec: &ModelSpec, model: &EnergyNet, n: usize, device: &Device) -> Result<Option<Tensor>> {
    let cfg = model.config();
    let (d, arch, name) = (cfg.cond_dim(), cfg.arch_name(), spec.path.display());
    let expects = if d == 0 {
        "no condition (it is unconditional)".to_string()
    } else if cfg.is_class_conditional() {
        format!("a class label `:label=L` with L in 0..{d}")
    } else {
        format!("{d} continuous latents `:cond=v1,...,v{d}`")
    };
    let row: Vec<f32> = match (&spec.cond, d) {
        (None, 0) => return Ok(None),
        (Some(_), 0) => bail!("{name}: the `{arch}` model takes {expects}"),
        (None, _) => bail!("{name}: the `{arch}` model is conditional; give it {expects}"),
        (Some(CondSpec::Label(l)), _) => {
            ensure!(cfg.is_class_conditional(), "{name}: the `{arch}` model takes {expects}, not a label");
            ensure!((*l as usize) < d, "{name}: label {l} is out of range; the `{arch}` model takes {expects}");
            (0..d).map(|i| if i == *l as usize { 1.0 } else { 0.0 }).collect()
        }
        (Some(CondSpec::Cond(v)), _) => {
            ensure!(!cfg.is_class_conditional(), "{name}: the `{arch}` model takes {expects}, not a latent vector");
            ensure!(v.len() == d, "{name}: `cond` has {} values, but the `{arch}` model takes {expects}", v.len());
            v.clone()
        }
    };
    let rows: Vec<f32> = row.iter().copied().cycle().take(n * d).collect();
    Ok(Some(Tensor::from_vec(rows, (n, d), device)?))
}
