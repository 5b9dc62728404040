//! The pictures a training run leaves behind: its curves, the replay buffer's samples, a 2D model's density.

use crate::error::{fs_err, Result};
use crate::state::TrainState;
use candle_core::{Device, Tensor};
use ebm_data::Toy2d;
use ebm_eval::figures::{density_panel, hist_panel, image_grid_png, points, TOY_BOUNDS};
use ebm_kernels::Rng;
use ebm_plot::{line_chart, Bounds, Figure, Series};
use std::path::Path;

/// The quantities [`curves`] draws, as metrics.jsonl names them.
pub const CURVES: [&str; 3] = ["e_pos", "e_neg", "loss"];

/// The `(iteration, value)` points of each of `keys` in the JSON lines of `text` (lines without an `iter`, or
/// that do not parse, are skipped).
pub fn read_series(text: &str, keys: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = keys.iter().map(|k| (k.to_string(), Vec::new())).collect();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(it) = v.get("iter").and_then(|i| i.as_f64()) else { continue };
        for (name, pts) in series.iter_mut() {
            if let Some(y) = v.get(name.as_str()).and_then(|y| y.as_f64()) {
                pts.push((it, y));
            }
        }
    }
    series
}

/// A line chart of `series` against iteration.
pub fn curves(series: &[(String, Vec<(f64, f64)>)], path: &Path) -> Result<()> {
    let lines: Vec<Series> =
        series.iter().enumerate().map(|(i, (n, p))| Series::new(n, p.clone(), ebm_plot::palette(i))).collect();
    line_chart(&lines, "training curves", "iteration", "energy / loss", 720, 420).save_png(path)?;
    Ok(())
}

/// E+, E- and the loss against iteration, from the metrics file `metrics`.
pub fn curves_of(metrics: &Path, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics).map_err(fs_err(metrics))?;
    curves(&read_series(&text, &CURVES), path)
}

/// data | model density exp(-E) | samples (fresh chains when given, else the replay buffer's content).
pub fn toy_figure(
    st: &TrainState<f32>,
    toy: Toy2d,
    path: &Path,
    samples: Option<&Tensor>,
    device: &Device,
) -> Result<()> {
    let b = Bounds::square(-TOY_BOUNDS, TOY_BOUNDS);
    let data = toy.sample(20_000, &mut Rng::with_stream(0, 0xf16));
    let (label, pts) = match samples {
        Some(s) => ("fresh samples", points(s)?),
        None => {
            let n = st.replay.len();
            let all: Vec<usize> = (0..n).collect();
            let (x, _) = st.replay.get(&all, &mut Rng::new(0), device)?;
            ("replay buffer", points(&x)?)
        }
    };
    let fig = Figure::new().title(&format!("{} after {} iterations", st.cfg.name, st.iter)).render(&[
        ("data", hist_panel(&data, b)?),
        ("model exp(-E)", density_panel(&st.model, b, device)?),
        (label, hist_panel(&pts, b)?),
    ]);
    fig.save_png(path)?;
    Ok(())
}

/// Up to 10 replay-buffer samples per stored label, one row per class (or a plain grid of the latest 100 when
/// unconditional or conditioned on continuous factors).
pub fn replay_grid<E: ebm_replay::Stored>(st: &TrainState<E>, path: &Path, device: &Device) -> Result<()> {
    let n = st.replay.len();
    if n == 0 {
        return Ok(());
    }
    let classes = st.cfg.model.cond_dim();
    let all: Vec<usize> = (n.saturating_sub(2000)..n).collect();
    let (x, c) = st.replay.get(&all, &mut Rng::new(0), device)?;
    match c {
        Some(c) if classes > 0 && st.cfg.model.is_class_conditional() => {
            let lab = c.argmax(1)?.to_vec1::<u32>()?;
            let mut pick = Vec::new();
            let mut labels = Vec::new();
            for k in 0..classes as u32 {
                let mine: Vec<usize> = (0..lab.len()).filter(|&i| lab[i] == k).rev().take(10).collect();
                for j in 0..10 {
                    // pad short rows by repeating (a class seen rarely early in training)
                    if let Some(&i) = mine.get(j % mine.len().max(1)) {
                        pick.push(i as u32);
                        labels.push(k);
                    }
                }
            }
            let idx = Tensor::from_vec(pick, labels.len(), x.device())?;
            Ok(image_grid_png(&x.index_select(&idx, 0)?, Some(&labels), 10, path)?)
        }
        _ => {
            let k = all.len().min(100);
            Ok(image_grid_png(&x.narrow(0, all.len() - k, k)?, None, 10, path)?)
        }
    }
}
