//! Pictures of tensors: grids of images, 2D densities and sample histograms. Every evaluation and training
//! figure of the project is drawn from these, through `ebm-plot`.

use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use ebm_plot::{grid_points, heatmap, hist2d, image_grid, viridis, Bounds, Canvas, Figure, GridLayout, ValueRange};
use ebm_sampler::Energy;
use std::path::Path;

/// The plotting window of the toy densities: `[-TOY_BOUNDS, TOY_BOUNDS]^2`.
pub const TOY_BOUNDS: f32 = 4.5;
/// Grid points per side of a density panel.
pub const RES: usize = 128;
/// Histogram bins per side of a samples panel.
pub const BINS: usize = 96;

fn pixels(x: &Tensor) -> Result<(Vec<f32>, [usize; 4])> {
    let dims = x.dims().to_vec();
    crate::error::ensure!(dims.len() == 4, "an image grid needs [N, C, H, W], got {dims:?}");
    let data = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((data, [dims[0], dims[1], dims[2], dims[3]]))
}

/// A grid of images `[N, C, H, W]` in [0, 1], `cols` per row, one row label per row when `labels` are given (the
/// label of the row's first image).
pub fn image_grid_png(x: &Tensor, labels: Option<&[u32]>, cols: usize, path: &Path) -> Result<()> {
    let (data, dims) = pixels(x)?;
    let up = (96 / dims[3].max(1)).clamp(1, 8) as u32;
    let mut layout = GridLayout::new(cols).upscale(up).pad(2);
    if let Some(l) = labels {
        let rows: Vec<String> = l.chunks(cols).map(|c| c[0].to_string()).collect();
        layout = layout.row_labels(rows);
    }
    image_grid(&data, dims, &layout)?.save_png(path)?;
    Ok(())
}

/// A grid of `[N, C, H, W]` images with `cols` per row and a text label per row, under a title.
pub fn image_rows_png(x: &Tensor, cols: usize, labels: &[String], title: &str, path: &Path) -> Result<()> {
    let (data, dims) = pixels(x)?;
    let up = (96 / dims[3].max(1)).clamp(1, 8) as u32;
    let layout = GridLayout::new(cols).upscale(up).pad(2).row_labels(labels.iter());
    let grid = image_grid(&data, dims, &layout)?;
    Figure::new().title(title).render(&[("", grid)]).save_png(path)?;
    Ok(())
}

/// A confusion matrix (`conf[true][predicted]`), each row normalised by its true-class count.
pub fn confusion_png(conf: &[Vec<usize>], title: &str, path: &Path) -> Result<()> {
    let k = conf.len();
    let mut cells = Vec::with_capacity(k * k);
    for row in conf {
        let n = row.iter().sum::<usize>().max(1) as f32;
        cells.extend(row.iter().map(|&c| c as f32 / n));
    }
    let map = heatmap(&cells, k, k, viridis, (0.0, 1.0))?.upscale(32);
    Figure::new().title(title).render(&[("confusion: rows true, columns predicted", map)]).save_png(path)?;
    Ok(())
}

/// `exp(-(E - min E))` of a 2D energy on the `RES` x `RES` grid of `b` (top row first).
pub fn density_grid<E: Energy + ?Sized>(energy: &E, b: Bounds, device: &Device) -> Result<Vec<f32>> {
    let pts: Vec<f32> = grid_points(b, RES, RES).into_iter().flatten().collect();
    let x = Tensor::from_vec(pts, (RES * RES, 2), device)?;
    let e = energy.energy(&x, None)?.to_vec1::<f32>()?;
    let m = e.iter().copied().filter(|v| v.is_finite()).fold(f32::INFINITY, f32::min);
    Ok(e.iter().map(|v| (m - v).exp()).collect())
}

/// The density `exp(-E)` of a 2D energy over `b` as a panel.
pub fn density_panel<E: Energy + ?Sized>(energy: &E, b: Bounds, device: &Device) -> Result<Canvas> {
    Ok(heatmap(&density_grid(energy, b, device)?, RES, RES, viridis, ValueRange::Auto)?.upscale(2))
}

/// A histogram of 2D points over `b` as a panel the size of a density panel.
pub fn hist_panel(points: &[[f32; 2]], b: Bounds) -> Result<Canvas> {
    let h: Vec<f32> = hist2d(points, BINS, b).iter().map(|v| v.sqrt()).collect();
    Ok(heatmap(&h, BINS, BINS, viridis, ValueRange::Auto)?.resize_nearest(2 * RES as u32, 2 * RES as u32))
}

/// The rows of a `[N, 2]` tensor as points.
pub fn points(t: &Tensor) -> Result<Vec<[f32; 2]>> {
    Ok(t.to_vec2::<f32>()?.into_iter().map(|r| [r[0], r[1]]).collect())
}
