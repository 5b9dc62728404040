//! Panels of the 2D plane: densities on a grid, 2D histograms of samples, scatter plots.
//!
//! All of them share one convention so they can sit side by side (or on top of each other) and line up: a
//! [`Bounds`] rectangle of the plane is stretched over the whole panel, x grows to the right, y grows
//! **upwards**, and grid data is row-major with row 0 at the top (largest y). [`grid_points`] produces points in
//! exactly that order, so `heatmap(&energies_to_density(grid_points(b, n, n)), n, n, ..)` is the right way up,
//! and [`hist2d`] fills its bins in the same order.

use crate::canvas::{Anchor, Canvas, Rgb};
use crate::error::{PlotError, Result};
use crate::font;
use crate::ticks::{format_tick, Scale};

/// An axis-aligned rectangle of the plane, `x_min..x_max` by `y_min..y_max`, shown by a panel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Left edge.
    pub x_min: f32,
    /// Right edge.
    pub x_max: f32,
    /// Bottom edge.
    pub y_min: f32,
    /// Top edge.
    pub y_max: f32,
}

impl Bounds {
    /// The rectangle `x.0..x.1` by `y.0..y.1`.
    pub fn new(x: (f32, f32), y: (f32, f32)) -> Self {
        Self { x_min: x.0, x_max: x.1, y_min: y.0, y_max: y.1 }
    }

    /// The square `lo..hi` in both coordinates, the usual frame for toy 2D distributions.
    pub fn square(lo: f32, hi: f32) -> Self {
        Self::new((lo, hi), (lo, hi))
    }

    /// The smallest square holding every finite point, enlarged by `margin` times its side on each side, so
    /// data and samples can share a frame without hand-picking one. Points with NaN or infinite coordinates
    /// are ignored; with none left the result is `-1..1`.
    pub fn around(points: &[[f32; 2]], margin: f32) -> Self {
        let finite = points.iter().filter(|p| p[0].is_finite() && p[1].is_finite());
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in finite {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if lo[0] > hi[0] {
            return Self::square(-1.0, 1.0);
        }
        let side = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-6);
        let half = side * (0.5 + margin.max(0.0));
        let (cx, cy) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
        Self::new((cx - half, cx + half), (cy - half, cy + half))
    }

    /// Where `p` falls inside the rectangle as fractions `(u, v)`: `u` from 0 at the left to 1 at the right,
    /// `v` from 0 at the **top** to 1 at the bottom (image order). `None` for non-finite points or a degenerate
    /// rectangle; points outside give fractions outside `[0, 1]`.
    pub fn to_unit(&self, p: [f32; 2]) -> Option<(f32, f32)> {
        let (w, h) = (self.x_max - self.x_min, self.y_max - self.y_min);
        let (u, v) = ((p[0] - self.x_min) / w, (self.y_max - p[1]) / h);
        (u.is_finite() && v.is_finite() && w != 0.0 && h != 0.0).then_some((u, v))
    }
}

/// Cell index for a fraction `f` of an axis split into `n` cells: the upper edge belongs to the last cell.
fn cell(f: f32, n: usize) -> Option<usize> {
    if (0.0..=1.0).contains(&f) {
        Some(((f * n as f32) as usize).min(n - 1))
    } else {
        None
    }
}

/// The centres of an `nx x ny` grid over `bounds`, row-major with row 0 at the top (largest y). Evaluate an
/// energy at these points and pass `exp(-E)` (or `-E`) to [`heatmap`] with the same `nx, ny` to see the model
/// density the right way up and aligned with [`hist2d`] and [`scatter`] panels of the same bounds.
pub fn grid_points(bounds: Bounds, nx: usize, ny: usize) -> Vec<[f32; 2]> {
    let (dx, dy) = ((bounds.x_max - bounds.x_min) / nx as f32, (bounds.y_max - bounds.y_min) / ny as f32);
    let mut out = Vec::with_capacity(nx * ny);
    for row in 0..ny {
        let y = bounds.y_max - (row as f32 + 0.5) * dy;
        out.extend((0..nx).map(|col| [bounds.x_min + (col as f32 + 0.5) * dx, y]));
    }
    out
}

/// Counts `points` in a `bins x bins` grid over `bounds`: row-major, row 0 at the top, as [`heatmap`] expects.
/// Points outside the rectangle (or with NaN/infinite coordinates) are left out, so the sum is the number of
/// points inside; the top and right edges count as inside. Returns raw counts; `heatmap` rescales anyway.
pub fn hist2d(points: &[[f32; 2]], bins: usize, bounds: Bounds) -> Vec<f32> {
    let mut counts = vec![0.0f32; bins * bins];
    if bins == 0 {
        return counts;
    }
    for &p in points {
        if let Some((u, v)) = bounds.to_unit(p) {
            if let (Some(col), Some(row)) = (cell(u, bins), cell(v, bins)) {
                counts[row * bins + col] += 1.0;
            }
        }
    }
    counts
}

/// Which values map to the two ends of a colormap.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ValueRange {
    /// From the smallest to the largest finite value.
    #[default]
    Auto,
    /// From `-m` to `m`, where `m` is the largest finite absolute value: zero lands in the middle of a
    /// diverging map.
    Symmetric,
    /// From the first value to the second, whatever the data (compare panels on a common scale). A reversed
    /// pair flips the map.
    Fixed(f32, f32),
}

impl From<(f32, f32)> for ValueRange {
    /// A `(lo, hi)` pair is a [`ValueRange::Fixed`] range.
    fn from((lo, hi): (f32, f32)) -> Self {
        ValueRange::Fixed(lo, hi)
    }
}

impl ValueRange {
    /// The `(lo, hi)` this range stands for over `values`, e.g. to label a colour bar. Never returns an empty
    /// span for the automatic ranges: constant data is centred in a span of 1, data without finite values
    /// gives `0..1`.
    pub fn resolve(self, values: &[f32]) -> (f32, f32) {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        match self {
            ValueRange::Fixed(lo, hi) => (lo, hi),
            ValueRange::Auto => {
                let lo = finite().fold(f32::INFINITY, f32::min);
                let hi = finite().fold(f32::NEG_INFINITY, f32::max);
                if lo > hi {
                    (0.0, 1.0)
                } else if lo == hi {
                    (lo - 0.5, hi + 0.5)
                } else {
                    (lo, hi)
                }
            }
            ValueRange::Symmetric => {
                let m = finite().fold(0.0f32, |m, v| m.max(v.abs()));
                let m = if m > 0.0 { m } else { 1.0 };
                (-m, m)
            }
        }
    }
}

/// Paints a `width x height` grid of `values` (row-major, row 0 at the top) one pixel per cell, mapping the
/// range `range` resolves to (see [`ValueRange`]; a `(lo, hi)` tuple also works) onto `colormap`: `lo` gets
/// `colormap(0.0)`, `hi` gets `colormap(1.0)`, values beyond are clamped and NaN is passed through (the
/// crate's maps show it as [`crate::colormap::BAD`]). Enlarge the result with [`Canvas::upscale`].
///
/// Used for a model density `exp(-E)` over [`grid_points`] and for [`hist2d`] counts of samples.
pub fn heatmap(
    values: &[f32],
    width: usize,
    height: usize,
    colormap: impl Fn(f32) -> Rgb,
    range: impl Into<ValueRange>,
) -> Result<Canvas> {
    if values.len() != width * height {
        return Err(PlotError::Input(format!(
            "heatmap of {width}x{height} cells needs {} values, got {}",
            width * height,
            values.len()
        )));
    }
    let (lo, hi) = range.into().resolve(values);
    let span = hi - lo;
    let mut data = Vec::with_capacity(values.len() * 3);
    for &v in values {
        let t = if span != 0.0 && span.is_finite() {
            (v - lo) / span
        } else if v.is_nan() {
            f32::NAN
        } else {
            0.5
        };
        data.extend_from_slice(&colormap(t));
    }
    let too_big = || PlotError::Input(format!("heatmap of {width}x{height} cells is too large"));
    Canvas::from_rgb8(u32::try_from(width).map_err(|_| too_big())?, u32::try_from(height).map_err(|_| too_big())?, data)
}

impl Canvas {
    /// Draws `points` of the plane as discs of `radius` pixels with opacity `alpha`, `bounds` being stretched
    /// over the whole canvas (the convention of this module). Use it to overlay samples on a [`heatmap`] of the
    /// same bounds. Points with NaN or infinite coordinates are skipped.
    pub fn draw_points(&mut self, points: &[[f32; 2]], bounds: Bounds, colour: Rgb, radius: u32, alpha: f32) {
        let (w, h) = (self.width() as f32, self.height() as f32);
        for &p in points {
            if let Some((u, v)) = bounds.to_unit(p) {
                // Same cells as `hist2d`: pixel floor(u * w), with the right/top edge inside the last pixel.
                let x = if u == 1.0 { w - 1.0 } else { (u * w).floor() };
                let y = if v == 1.0 { h - 1.0 } else { (v * h).floor() };
                if x.abs() < 1e9 && y.abs() < 1e9 {
                    self.fill_disc(x as i64, y as i64, radius, colour, alpha);
                }
            }
        }
    }
}

/// A `size x size` white panel with `points` drawn over `bounds` (see [`Bounds`] for the orientation), for data
/// and sample clouds next to a density panel. Markers are small discs whose opacity drops as the number of
/// points grows, so dense regions read darker instead of saturating into one blob.
pub fn scatter(points: &[[f32; 2]], bounds: Bounds, colour: Rgb, size: u32) -> Canvas {
    let mut c = Canvas::new(size, size, [255, 255, 255]);
    let radius = (size / 200).max(1);
    let alpha = (1000.0 / points.len().max(1) as f32).clamp(0.2, 0.9);
    c.draw_points(points, bounds, colour, radius, alpha);
    c
}

/// A vertical colour bar `height` pixels tall for `colormap` over `range` (`hi` at the top), labelled with round
/// values inside the range at font scale `text_scale`. Put it next to a [`heatmap`] (e.g. as another panel of
/// a [`crate::Figure`]) so the colours can be read as numbers; [`ValueRange::resolve`] gives the range an
/// automatic heatmap used.
pub fn colorbar(colormap: impl Fn(f32) -> Rgb, range: (f32, f32), height: u32, text_scale: u32) -> Canvas {
    let s = text_scale.max(1);
    let si = i64::from(s);
    let (lo, hi) = (f64::from(range.0), f64::from(range.1));
    let cap = 7 * si;
    let (bar_w, tick, gap, margin) = (4 * cap / 3, 3 * si, 2 * si, cap / 2 + 1);
    let bar_h = (i64::from(height) - 2 * margin).max(2);
    let max_ticks = (bar_h / (3 * i64::from(font::text_height("", s)))).clamp(2, 11) as usize;
    let (a, b) = (lo.min(hi), lo.max(hi));
    let tol = (b - a).abs() * 1e-6;
    let mut ticks: Vec<(f64, String)> =
        Scale::Linear.ticks(a, b, max_ticks).into_iter().filter(|t| t.0 >= a - tol && t.0 <= b + tol).collect();
    if ticks.len() < 2 {
        ticks = vec![(a, format_tick(a, b - a)), (b, format_tick(b, b - a))];
    }
    let label_w = ticks.iter().map(|t| font::text_width(&t.1, s)).max().unwrap_or(0);
    let width = (bar_w + tick + gap) as u32 + label_w + 2;
    let mut c = Canvas::new(width, height.max(1), [255, 255, 255]);
    for y in 0..bar_h {
        let t = 1.0 - y as f32 / (bar_h - 1) as f32;
        c.fill_rect(0, margin + y, bar_w as u32, 1, colormap(t));
    }
    for (v, label) in &ticks {
        // Position of v along the bar, measured from lo at the bottom (a reversed range flips the labels).
        let f = if hi != lo { (v - lo) / (hi - lo) } else { 0.5 };
        let y = margin + ((1.0 - f) * (bar_h - 1) as f64).round() as i64;
        c.draw_line(bar_w, y, bar_w + tick - 1, y, [90, 90, 90], 1);
        c.draw_text(bar_w + tick + gap, y - cap / 2, label, s, [60, 60, 60], Anchor::Left);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colormap::{diverging, viridis, BAD};

    #[test]
    fn heatmap_maps_lo_to_the_first_colour_and_hi_to_the_last() {
        let values = [0.0, 0.5, 1.0, 2.0, -1.0, f32::NAN];
        let c = heatmap(&values, 3, 2, viridis, (0.0, 1.0)).unwrap();
        assert_eq!((c.width(), c.height()), (3, 2));
        assert_eq!(c.pixel(0, 0), Some(viridis(0.0)));
        assert_eq!(c.pixel(1, 0), Some(viridis(0.5)));
        assert_eq!(c.pixel(2, 0), Some(viridis(1.0)));
        assert_eq!(c.pixel(0, 1), Some(viridis(1.0)), "above hi is clamped");
        assert_eq!(c.pixel(1, 1), Some(viridis(0.0)), "below lo is clamped");
        assert_eq!(c.pixel(2, 1), Some(BAD));
        let auto = heatmap(&[3.0, 7.0, 5.0, f32::INFINITY], 2, 2, diverging, ValueRange::Auto).unwrap();
        assert_eq!(auto.pixel(0, 0), Some(diverging(0.0)));
        assert_eq!(auto.pixel(1, 0), Some(diverging(1.0)));
        assert_eq!(auto.pixel(0, 1), Some(diverging(0.5)));
        assert!(heatmap(&values, 4, 2, viridis, ValueRange::Auto).is_err());
    }

    #[test]
    fn value_ranges() {
        assert_eq!(ValueRange::Auto.resolve(&[2.0, f32::NAN, -1.0]), (-1.0, 2.0));
        assert_eq!(ValueRange::Auto.resolve(&[4.0, 4.0]), (3.5, 4.5));
        assert_eq!(ValueRange::Auto.resolve(&[f32::NAN]), (0.0, 1.0));
        assert_eq!(ValueRange::Symmetric.resolve(&[-3.0, 1.0]), (-3.0, 3.0));
        assert_eq!(ValueRange::Symmetric.resolve(&[0.0]), (-1.0, 1.0));
        let constant = heatmap(&[4.0, 4.0], 2, 1, viridis, (4.0, 4.0)).unwrap();
        assert_eq!(constant.pixel(0, 0), Some(viridis(0.5)), "an empty fixed range does not divide by zero");
    }

    #[test]
    fn hist2d_counts_in_image_order() {
        let b = Bounds::square(0.0, 2.0);
        let points = [[0.5, 1.5], [0.2, 1.9], [1.5, 0.5], [2.0, 2.0], [0.0, 0.0], [3.0, 1.0], [f32::NAN, 1.0]];
        let h = hist2d(&points, 2, b);
        // Row 0 is the top (y in 1..2): two points top-left, the corner (2, 2) top-right.
        assert_eq!(h, vec![2.0, 1.0, 1.0, 1.0]);
        let g = grid_points(b, 5, 5);
        assert_eq!(g[0], [0.2, 1.8], "first grid point is the top-left cell centre");
        assert_eq!(hist2d(&g, 5, b), vec![1.0; 25], "grid points and hist2d agree cell for cell");
        assert!(hist2d(&points, 0, b).is_empty());
    }

    #[test]
    fn bounds_around_points() {
        let b = Bounds::around(&[[0.0, 0.0], [2.0, 1.0], [f32::INFINITY, 0.0]], 0.25);
        assert_eq!(b, Bounds::new((-0.5, 2.5), (-1.0, 2.0)));
        assert_eq!(Bounds::around(&[], 0.1), Bounds::square(-1.0, 1.0));
        assert_eq!(Bounds::square(0.0, 1.0).to_unit([0.25, 1.0]), Some((0.25, 0.0)));
        assert_eq!(Bounds::square(1.0, 1.0).to_unit([1.0, 1.0]), None);
    }

    #[test]
    fn colorbar_runs_from_hi_at_the_top_to_lo_at_the_bottom() {
        let c = colorbar(viridis, (0.0, 97.0), 200, 1);
        assert_eq!(c.height(), 200);
        let margin = 7 / 2 + 1;
        assert_eq!(c.pixel(0, margin), Some(viridis(1.0)));
        assert_eq!(c.pixel(0, 200 - margin - 1), Some(viridis(0.0)));
        assert_eq!(c.pixel(0, 0), Some([255, 255, 255]));
        // Labels "0" .. "80" fit inside the range; "100" would be outside and is not drawn.
        assert_eq!(c.width(), 9 + 3 + 2 + font::text_width("80", 1) + 2);
        let tiny = colorbar(diverging, (1.0, 1.0), 3, 2);
        assert_eq!(tiny.height(), 3);
    }

    #[test]
    fn scatter_and_heatmap_agree_on_orientation() {
        let b = Bounds::square(-1.0, 1.0);
        // One point in the top-right quadrant: it must light the top-right of both panels.
        let p = [[0.5, 0.5]];
        let s = scatter(&p, b, [0, 0, 0], 100);
        assert_ne!(s.pixel(75, 25), Some([255, 255, 255]));
        assert_eq!(s.pixel(25, 75), Some([255, 255, 255]));
        let h = heatmap(&hist2d(&p, 4, b), 4, 4, viridis, ValueRange::Auto).unwrap().upscale(25);
        assert_eq!(h.pixel(75, 25), Some(viridis(1.0)));
        assert_eq!(h.pixel(25, 75), Some(viridis(0.0)));
    }
}
