//! The pictures a run leaves behind.

use crate::compose::Part;
use crate::state::TrainState;
use candle_core::{Device, Tensor};
use ebm_data::Toy2d;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_plot::{
    grid_points, heatmap, hist2d, image_grid, line_chart, viridis, Bounds, Canvas, Figure, GridLayout, Series,
    ValueRange,
};
use ebm_sampler::Energy;
use std::path::Path;

/// The plotting window of the toy densities.
pub const TOY_BOUNDS: f32 = 4.5;
const RES: usize = 128;
const BINS: usize = 96;

/// `exp(-(E - min E))` of an energy on the `RES` x `RES` grid of `b` (top row first).
pub fn density_grid<E: Energy + ?Sized>(energy: &E, b: Bounds, device: &Device) -> anyhow::Result<Vec<f32>> {
    let pts: Vec<f32> = grid_points(b, RES, RES).into_iter().flatten().collect();
    let x = Tensor::from_vec(pts, (RES * RES, 2), device)?;
    let e = energy.energy(&x, None)?.to_vec1::<f32>()?;
    let m = e.iter().copied().filter(|v| v.is_finite()).fold(f32::INFINITY, f32::min);
    Ok(e.iter().map(|v| (m - v).exp()).collect())
}

fn density_panel<E: Energy + ?Sized>(energy: &E, b: Bounds, device: &Device) -> anyhow::Result<Canvas> {
    Ok(heatmap(&density_grid(energy, b, device)?, RES, RES, viridis, ValueRange::Auto)?.upscale(2))
}

fn hist_panel(points: &[[f32; 2]], b: Bounds) -> anyhow::Result<Canvas> {
    let h: Vec<f32> = hist2d(points, BINS, b).iter().map(|v| v.sqrt()).collect();
    Ok(heatmap(&h, BINS, BINS, viridis, ValueRange::Auto)?.resize_nearest(2 * RES as u32, 2 * RES as u32))
}

fn rows(t: &Tensor) -> anyhow::Result<Vec<[f32; 2]>> {
    Ok(t.to_vec2::<f32>()?.into_iter().map(|r| [r[0], r[1]]).collect())
}

/// data | model density exp(-E) | samples (fresh chains when given, else the replay buffer's content).
pub fn toy_figure(
    st: &TrainState<f32>,
    toy: Toy2d,
    path: &Path,
    samples: Option<&Tensor>,
    device: &Device,
) -> anyhow::Result<()> {
    let b = Bounds::square(-TOY_BOUNDS, TOY_BOUNDS);
    let data = toy.sample(20_000, &mut Rng::with_stream(0, 0xf16));
    let (label, pts) = match samples {
        Some(s) => ("fresh samples", rows(s)?),
        None => {
            let n = st.replay.len();
            let all: Vec<usize> = (0..n).collect();
            let (x, _) = st.replay.get(&all, &mut Rng::new(0), device)?;
            ("replay buffer", rows(&x)?)
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

/// Each part's density, the composition's density, and its samples.
pub fn compose_figure(
    parts: &[Part],
    sum: &ebm_sampler::Sum,
    composed: &[[f32; 2]],
    singles: &[Vec<[f32; 2]>],
    range: [f32; 2],
    path: &Path,
    device: &Device,
) -> anyhow::Result<()> {
    let b = Bounds::square(range[0], range[1]);
    let mut items: Vec<(String, Canvas)> = Vec::new();
    for (p, s) in parts.iter().zip(singles) {
        let name = p.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        items.push((format!("{name} exp(-E)"), density_panel(&*p.model, b, device)?));
        items.push((format!("{name} samples"), hist_panel(s, b)?));
    }
    items.push(("sum: exp(-E1-E2)".into(), density_panel(sum, b, device)?));
    items.push(("sum: samples".into(), hist_panel(composed, b)?));
    Figure::new().title("product of experts").cols(2).render(&items).save_png(path)?;
    Ok(())
}

/// Loads a model and draws its density alone (for quick looks at checkpoints).
pub fn model_density_png(model: &EnergyNet, path: &Path, device: &Device) -> anyhow::Result<()> {
    let b = Bounds::square(-TOY_BOUNDS, TOY_BOUNDS);
    density_panel(model, b, device)?.save_png(path)?;
    Ok(())
}

/// A grid of images `[N, C, H, W]` in [0, 1], one row per label when `labels` are given.
pub fn image_grid_png(x: &Tensor, labels: Option<&[u32]>, cols: usize, path: &Path) -> anyhow::Result<()> {
    let dims = x.dims().to_vec();
    anyhow::ensure!(dims.len() == 4, "image grid needs [N, C, H, W], got {dims:?}");
    let data = x.to_device(&Device::Cpu)?.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let up = (96 / dims[3].max(1)).clamp(1, 8) as u32;
    let mut layout = GridLayout::new(cols).upscale(up).pad(2);
    if let Some(l) = labels {
        // one row per class: the label of the first image of each row
        let rows: Vec<String> = l.chunks(cols).map(|c| c[0].to_string()).collect();
        layout = layout.row_labels(rows);
    }
    image_grid(&data, [dims[0], dims[1], dims[2], dims[3]], &layout)?.save_png(path)?;
    Ok(())
}

/// Up to 10 replay-buffer samples per stored label, one row per class (or a plain grid of the latest 100 when
/// unconditional or conditioned on continuous factors).
pub fn replay_grid<E: ebm_replay::Stored>(st: &TrainState<E>, path: &Path, device: &Device) -> anyhow::Result<()> {
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
            image_grid_png(&x.index_select(&idx, 0)?, Some(&labels), 10, path)
        }
        _ => {
            let k = all.len().min(100);
            image_grid_png(&x.narrow(0, all.len() - k, k)?, None, 10, path)
        }
    }
}

/// E+, E- and the loss against iteration, from metrics.jsonl.
pub fn curves(metrics: &Path, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(metrics).map_err(|e| anyhow::anyhow!("{}: {e}", metrics.display()))?;
    let mut series: Vec<Series> = ["e_pos", "e_neg", "loss"]
        .iter()
        .enumerate()
        .map(|(i, n)| Series::new(*n, Vec::new(), ebm_plot::palette(i)))
        .collect();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(it) = v.get("iter").and_then(|i| i.as_f64()) else { continue };
        for s in series.iter_mut() {
            if let Some(y) = v.get(&s.name).and_then(|y| y.as_f64()) {
                s.points.push((it, y));
            }
        }
    }
    line_chart(&series, "training curves", "iteration", "energy / loss", 720, 420).save_png(path)?;
    Ok(())
}
