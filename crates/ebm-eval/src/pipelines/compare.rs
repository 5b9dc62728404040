//! Several models' reports in one figure: the robustness curves of `robust.json` files (accuracy against epsilon,
//! one line per model and attack), and the steps curves of `steps.json` files.

use crate::error::{EvalError, Result};
use ebm_plot::{line_chart, palette, Series};
use std::path::Path;

fn read(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).map_err(|inner| EvalError::Fs { path: p.to_path_buf(), inner })?;
    serde_json::from_str(&text).map_err(|e| EvalError::input(p, format!("not a report: {e}")))
}

/// One line per curve of every `robust.json` in `reports` (each labelled `label: curve name`), accuracy against
/// epsilon, into `png`. The reports must share one norm, which the title names.
pub fn robust(reports: &[(String, std::path::PathBuf)], png: &Path) -> Result<()> {
    let mut series = Vec::new();
    let mut norm: Option<String> = None;
    for (label, p) in reports {
        let v = read(p)?;
        let n = v["norm"].as_str().ok_or_else(|| EvalError::input(p, "not a robust.json (no `norm`)"))?.to_string();
        match &norm {
            Some(m) if *m != n => {
                return Err(EvalError::Settings(format!("{} is under {n}, the others under {m}", p.display())))
            }
            _ => norm = Some(n),
        }
        for c in v["curves"].as_array().into_iter().flatten() {
            let eps = c["eps"].as_array().cloned().unwrap_or_default();
            let acc = c["accuracy"].as_array().cloned().unwrap_or_default();
            let mut pts: Vec<(f64, f64)> =
                eps.iter().zip(&acc).filter_map(|(e, a)| Some((e.as_f64()?, a.as_f64()?))).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = format!("{label}: {}", c["name"].as_str().unwrap_or(""));
            series.push(Series::new(&name, pts, palette(series.len())));
        }
    }
    let norm = norm.unwrap_or_default();
    line_chart(&series, &format!("accuracy under {norm} PGD"), "epsilon", "accuracy", 820, 500).save_png(png)?;
    Ok(())
}

/// One line per `steps.json` in `reports`: conditional-sample accuracy against Langevin steps, into `png`.
pub fn steps(reports: &[(String, std::path::PathBuf)], png: &Path) -> Result<()> {
    let mut series = Vec::new();
    for (label, p) in reports {
        let v = read(p)?;
        let pts: Vec<(f64, f64)> = v["points"]
            .as_array()
            .ok_or_else(|| EvalError::input(p, "not a steps.json (no `points`)"))?
            .iter()
            .filter_map(|q| Some((q["steps"].as_f64()?, q["conditional_sample_accuracy"].as_f64()?)))
            .collect();
        series.push(Series::new(label, pts, palette(series.len())));
    }
    line_chart(&series, "conditional-sample accuracy vs Langevin steps", "steps", "accuracy", 820, 500)
        .save_png(png)?;
    Ok(())
}
