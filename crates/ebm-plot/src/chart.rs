//! Charts with axes: line charts for training curves and overlaid histograms for score distributions.
//!
//! Both share one frame: title on top, a legend row under it (outside the data, so it never hides a curve),
//! light grid lines at round tick values, tick labels, and axis labels with the y label turned on its side.

use crate::canvas::{Anchor, Canvas, Rgb};
use crate::font;
use crate::ticks::Scale;

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [30, 30, 30];
const MUTED: Rgb = [90, 90, 90];
const GRID: Rgb = [228, 228, 228];

/// One named curve of a [`line_chart`]: `(x, y)` points drawn in order and joined by straight segments.
///
/// Points with a NaN or infinite coordinate are left out of the axis ranges and break the curve (a gap is
/// drawn instead of a jump), which is what one wants when a loss diverges for a few steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points, usually `(iteration, value)`.
    pub points: Vec<(f64, f64)>,
    /// Line colour; [`crate::colormap::palette`] gives distinct ones.
    pub colour: Rgb,
}

impl Series {
    /// A series from explicit points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, colour: Rgb) -> Self {
        Self { name: name.into(), points, colour }
    }

    /// A series from values logged once per step: point `i` is `(i, values[i])`.
    pub fn from_values(name: impl Into<String>, values: &[f32], colour: Rgb) -> Self {
        Self::new(name, values.iter().enumerate().map(|(i, &v)| (i as f64, f64::from(v))).collect(), colour)
    }
}

/// Settings of a line chart; [`line_chart`] is the one-call form with defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Text above the chart (empty for none).
    pub title: String,
    /// Label under the x axis (empty for none).
    pub x_label: String,
    /// Label left of the y axis, turned to read upwards (empty for none).
    pub y_label: String,
    /// Size of the whole image in pixels.
    pub width: u32,
    /// Size of the whole image in pixels.
    pub height: u32,
    /// Mapping of y values: linear (default), log10 or symmetric log (see [`Scale`]).
    pub y_scale: Scale,
    /// Integer magnification of the bitmap font (2: 10x14-pixel capitals).
    pub text_scale: u32,
    /// Thickness of the curves in pixels.
    pub line_width: u32,
}

impl LineChart {
    /// A chart of `width x height` pixels with the given texts, a linear y axis, text scale 2 and 2-pixel lines.
    pub fn new(title: &str, x_label: &str, y_label: &str, width: u32, height: u32) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            width,
            height,
            y_scale: Scale::Linear,
            text_scale: 2,
            line_width: 2,
        }
    }

    /// The same chart with another y scale, e.g. [`Scale::Log`] for a loss spanning orders of magnitude.
    pub fn y_scale(mut self, scale: Scale) -> Self {
        self.y_scale = scale;
        self
    }

    /// The same chart with another font magnification (1 for small thumbnails).
    pub fn text_scale(mut self, scale: u32) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    /// The same chart with another curve thickness.
    pub fn line_width(mut self, width: u32) -> Self {
        self.line_width = width.max(1);
        self
    }

    /// Draws `series`. Axis ranges cover every finite point (on a log scale, every positive one) and are
    /// rounded out to "nice" tick values; with no usable point the axes are drawn empty with a "no data" note.
    pub fn render(&self, series: &[Series]) -> Canvas {
        let usable = |&(x, y): &(f64, f64)| -> Option<(f64, f64)> {
            x.is_finite().then_some(())?;
            Some((x, self.y_scale.forward(y)?))
        };
        let mut x_range = Extent::default();
        let mut y_range = Extent::default();
        for p in series.iter().flat_map(|s| s.points.iter()).filter_map(usable) {
            x_range.add(p.0);
            y_range.add(p.1);
        }
        let legend: Vec<(&str, Rgb)> = series.iter().map(|s| (s.name.as_str(), s.colour)).collect();
        let frame = FrameSpec {
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            legend: &legend,
            width: self.width,
            height: self.height,
            text_scale: self.text_scale.max(1),
            y_scale: self.y_scale,
        };
        let empty = x_range.is_empty();
        let mut axes = Axes::new(&frame, x_range.or(0.0, 1.0), y_range.or(0.0, 1.0));
        let lw = self.line_width.max(1);
        for s in series {
            let mut prev: Option<(i64, i64)> = None;
            let mut run = 0usize;
            for (i, p) in s.points.iter().enumerate() {
                match usable(p) {
                    Some((x, ty)) => {
                        let here = axes.to_plot(x, ty);
                        if let Some(a) = prev {
                            axes.plot.draw_line(a.0, a.1, here.0, here.1, s.colour, lw);
                        }
                        prev = Some(here);
                        run += 1;
                    }
                    None => {
                        prev = None;
                        run = 0;
                    }
                }
                // A point with no usable neighbour on either side would be invisible as a line: mark it.
                let next_usable = s.points.get(i + 1).and_then(usable).is_some();
                if run == 1 && !next_usable {
                    if let Some(a) = prev {
                        axes.plot.fill_disc(a.0, a.1, lw, s.colour, 1.0);
                    }
                }
            }
        }
        if empty {
            axes.note("no data");
        }
        axes.finish()
    }
}

/// A `width x height` line chart of `series` with a title, axis labels, nice ticks and a legend: training
/// curves such as E+, E- and the loss against the iteration. See [`LineChart`] for the log scale and other
/// settings.
pub fn line_chart(series: &[Series], title: &str, x_label: &str, y_label: &str, width: u32, height: u32) -> Canvas {
    LineChart::new(title, x_label, y_label, width, height).render(series)
}

/// Settings of an overlaid histogram; [`histogram_chart`] is the one-call form for two distributions.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramChart {
    /// Text above the chart (empty for none).
    pub title: String,
    /// Label under the x axis (empty for none), e.g. "energy" or "score".
    pub x_label: String,
    /// Number of equal-width bins spanning all finite values of all distributions.
    pub bins: usize,
    /// `true` (default): bar heights are densities (each histogram has area 1), so distributions with
    /// different sample counts compare fairly. `false`: raw counts.
    pub density: bool,
    /// Size of the whole image in pixels.
    pub width: u32,
    /// Size of the whole image in pixels.
    pub height: u32,
    /// Integer magnification of the bitmap font.
    pub text_scale: u32,
}

impl HistogramChart {
    /// A 640x400 density histogram with `bins` bins and the given title, text scale 2.
    pub fn new(title: &str, bins: usize) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            bins: bins.max(1),
            density: true,
            width: 640,
            height: 400,
            text_scale: 2,
        }
    }

    /// The same chart with an x-axis label.
    pub fn x_label(mut self, label: &str) -> Self {
        self.x_label = label.into();
        self
    }

    /// The same chart with another image size.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// The same chart showing raw counts (`false`) or densities (`true`).
    pub fn density(mut self, density: bool) -> Self {
        self.density = density;
        self
    }

    /// Draws each `(name, values, colour)` as a semi-transparent histogram with a solid outline, all on common
    /// bins, so overlaps show as mixed colours and each outline stays readable. Non-finite values are ignored.
    pub fn render(&self, sets: &[(&str, &[f32], Rgb)]) -> Canvas {
        let bins = self.bins.max(1);
        let mut x_range = Extent::default();
        for v in sets.iter().flat_map(|s| s.1.iter()).filter(|v| v.is_finite()) {
            x_range.add(f64::from(*v));
        }
        let (lo, hi) = x_range.or(0.0, 1.0);
        let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
        let width = (hi - lo) / bins as f64;
        let heights: Vec<Vec<f64>> = sets
            .iter()
            .map(|(_, values, _)| {
                let mut counts = vec![0.0f64; bins];
                for v in values.iter().map(|&v| f64::from(v)).filter(|v| v.is_finite()) {
                    counts[(((v - lo) / width) as usize).min(bins - 1)] += 1.0;
                }
                let n: f64 = counts.iter().sum();
                if self.density && n > 0.0 {
                    counts.iter_mut().for_each(|c| *c /= n * width);
                }
                counts
            })
            .collect();
        let top = heights.iter().flatten().fold(0.0f64, |m, &h| m.max(h));
        let legend: Vec<(&str, Rgb)> = sets.iter().map(|s| (s.0, s.2)).collect();
        let frame = FrameSpec {
            title: &self.title,
            x_label: &self.x_label,
            y_label: if self.density { "density" } else { "count" },
            legend: &legend,
            width: self.width,
            height: self.height,
            text_scale: self.text_scale.max(1),
            y_scale: Scale::Linear,
        };
        let mut axes = Axes::new(&frame, (lo, hi), (0.0, if top > 0.0 { top } else { 1.0 }));
        let edges: Vec<i64> = (0..=bins).map(|i| axes.to_plot(lo + i as f64 * width, 0.0).0).collect();
        let base = axes.to_plot(lo, 0.0).1;
        for ((_, _, colour), h) in sets.iter().zip(&heights) {
            for (i, &v) in h.iter().enumerate() {
                let y = axes.to_plot(lo, v).1;
                let (w, hgt) = ((edges[i + 1] - edges[i]).max(1) as u32, (base - y + 1).max(0) as u32);
                axes.plot.fill_rect_alpha(edges[i], y, w, hgt, *colour, 0.4);
            }
        }
        for ((_, _, colour), h) in sets.iter().zip(&heights) {
            // The outline is a step curve along the bar tops, down to the base at both ends.
            let mut prev_y = base;
            for (i, &v) in h.iter().enumerate() {
                let y = axes.to_plot(lo, v).1;
                axes.plot.draw_line(edges[i], prev_y, edges[i], y, *colour, 2);
                axes.plot.draw_line(edges[i], y, edges[i + 1], y, *colour, 2);
                prev_y = y;
            }
            axes.plot.draw_line(edges[bins], prev_y, edges[bins], base, *colour, 2);
        }
        if x_range.is_empty() {
            axes.note("no data");
        }
        axes.finish()
    }
}

/// A 640x400 chart overlaying the histograms of `a` and `b` (named `names.0` and `names.1`) on `bins` common
/// bins, as densities: e.g. energies of in-distribution versus out-of-distribution inputs, where the overlap
/// is what matters. See [`HistogramChart`] for other sizes, counts instead of densities, or more than two sets.
pub fn histogram_chart(a: &[f32], b: &[f32], names: (&str, &str), bins: usize, title: &str) -> Canvas {
    HistogramChart::new(title, bins)
        .render(&[(names.0, a, crate::colormap::PALETTE[0]), (names.1, b, crate::colormap::PALETTE[1])])
}

/// Running minimum and maximum of finite values.
#[derive(Clone, Copy, Debug)]
struct Extent {
    lo: f64,
    hi: f64,
}

impl Default for Extent {
    fn default() -> Self {
        Self { lo: f64::INFINITY, hi: f64::NEG_INFINITY }
    }
}

impl Extent {
    fn add(&mut self, v: f64) {
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }

    fn is_empty(&self) -> bool {
        self.lo > self.hi
    }

    fn or(&self, lo: f64, hi: f64) -> (f64, f64) {
        if self.is_empty() {
            (lo, hi)
        } else {
            (self.lo, self.hi)
        }
    }
}

/// What the frame around a chart shows.
struct FrameSpec<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    legend: &'a [(&'a str, Rgb)],
    width: u32,
    height: u32,
    text_scale: u32,
    y_scale: Scale,
}

/// A chart under construction: the finished frame on `canvas`, and `plot`, the data area, drawn separately so
/// that curves are clipped to it, then copied into place by [`Axes::finish`].
struct Axes {
    canvas: Canvas,
    plot: Canvas,
    origin: (i64, i64),
    x_lim: (f64, f64),
    y_lim: (f64, f64),
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
    text_scale: u32,
}

impl Axes {
    /// Lays out the frame for data spanning `x` (data units) and `y` (positions on the y scale) and draws
    /// everything but the data.
    fn new(spec: &FrameSpec, x: (f64, f64), y: (f64, f64)) -> Self {
        let s = spec.text_scale;
        let si = i64::from(s);
        let (w, h) = (i64::from(spec.width), i64::from(spec.height));
        let line = i64::from(font::text_height("", s));
        let cap = i64::from(7 * s);
        let (pad, gap, tick) = (6 * si, 3 * si, 3 * si);
        let mut canvas = Canvas::new(spec.width, spec.height, WHITE);

        // Top: title, then the legend rows, wrapped to the width.
        let mut top = pad;
        if !spec.title.is_empty() {
            canvas.draw_text(w / 2, top, spec.title, s, INK, Anchor::Centre);
            top += line + 2 * gap;
        }
        let swatch = 7 * si;
        let entry_width = |name: &str| swatch + gap + i64::from(font::text_width(name, s));
        let spacing = 4 * i64::from(font::ADVANCE) * si;
        let mut rows: Vec<Vec<(&str, Rgb)>> = Vec::new();
        let mut row_width = 0;
        for &(name, colour) in spec.legend {
            let ew = entry_width(name);
            if rows.is_empty() || row_width + spacing + ew > w - 2 * pad {
                rows.push(Vec::new());
                row_width = ew;
            } else {
                row_width += spacing + ew;
            }
            rows.last_mut().expect("a row was pushed").push((name, colour));
        }
        for row in &rows {
            let total: i64 = row.iter().map(|e| entry_width(e.0)).sum::<i64>() + spacing * (row.len() as i64 - 1);
            let mut x = (w - total) / 2;
            for &(name, colour) in row {
                canvas.fill_rect(x, top, swatch as u32, swatch as u32, colour);
                canvas.draw_text(x + swatch + gap, top, name, s, INK, Anchor::Left);
                x += entry_width(name) + spacing;
            }
            top += line + gap;
        }
        if !rows.is_empty() {
            top += gap;
        }

        // Bottom: tick labels and the x label. The plot height follows, then the y ticks and left margin.
        let bottom = pad + if spec.x_label.is_empty() { 0 } else { line + gap } + line + gap + tick;
        let plot_h = (h - top - bottom).max(8);
        let y_max_ticks = (plot_h / (3 * line)).clamp(2, 11) as usize;
        let (y_lim, y_ticks) = axis_ticks(spec.y_scale, y.0, y.1, y_max_ticks);
        let y_ticks = thin_ticks(spec.y_scale, y_ticks, y_lim, plot_h, line + gap);
        let y_label_width = y_ticks.iter().map(|t| i64::from(font::text_width(&t.1, s))).max().unwrap_or(0);
        let left = pad + if spec.y_label.is_empty() { 0 } else { line + gap } + y_label_width + gap + tick;
        let right = pad + 3 * i64::from(font::ADVANCE) * si;
        let plot_w = (w - left - right).max(8);

        // X ticks: as many as fit with their labels a few characters apart.
        let mut x_max_ticks = (plot_w / (6 * i64::from(font::ADVANCE) * si)).clamp(2, 12) as usize;
        let (x_lim, x_ticks) = loop {
            let (lim, ticks) = axis_ticks(Scale::Linear, x.0, x.1, x_max_ticks);
            let widest = ticks.iter().map(|t| i64::from(font::text_width(&t.1, s))).max().unwrap_or(0);
            let room = plot_w / (ticks.len() as i64 - 1).max(1);
            if x_max_ticks <= 2 || room >= widest + 2 * i64::from(font::ADVANCE) * si {
                break (lim, ticks);
            }
            x_max_ticks -= 1;
        };

        let mut axes = Axes {
            canvas,
            plot: Canvas::new(plot_w as u32, plot_h as u32, WHITE),
            origin: (left, top),
            x_lim,
            y_lim,
            x_ticks: x_ticks.iter().map(|t| t.0).collect(),
            y_ticks: y_ticks.iter().map(|t| spec.y_scale.forward(t.0).unwrap_or(f64::NAN)).collect(),
            text_scale: s,
        };
        for &t in &axes.x_ticks.clone() {
            let (px, _) = axes.to_plot(t, y_lim.0);
            axes.plot.draw_line(px, 0, px, plot_h, GRID, 1);
        }
        for &t in &axes.y_ticks.clone() {
            let (_, py) = axes.to_plot(x_lim.0, t);
            axes.plot.draw_line(0, py, plot_w, py, GRID, 1);
        }
        let plot_bottom = top + plot_h;
        for ((_, label), &t) in x_ticks.iter().zip(&axes.x_ticks) {
            let px = left + axes.to_plot(t, y_lim.0).0;
            axes.canvas.draw_text(px, plot_bottom + tick + gap, label, s, MUTED, Anchor::Centre);
        }
        for ((_, label), &t) in y_ticks.iter().zip(&axes.y_ticks) {
            let py = top + axes.to_plot(x_lim.0, t).1;
            axes.canvas.draw_text(left - tick - gap, py - cap / 2, label, s, MUTED, Anchor::Right);
        }
        if !spec.x_label.is_empty() {
            axes.canvas.draw_text(left + plot_w / 2, h - pad - line, spec.x_label, s, INK, Anchor::Centre);
        }
        if !spec.y_label.is_empty() {
            axes.canvas.draw_text_vertical(pad, top + plot_h / 2, spec.y_label, s, INK, Anchor::Centre);
        }
        axes
    }

    /// Pixel position inside the plot area of data x and y-scale position `ty`; the ends of the axis limits
    /// land on the first and last pixel.
    fn to_plot(&self, x: f64, ty: f64) -> (i64, i64) {
        let (w, h) = (f64::from(self.plot.width() - 1), f64::from(self.plot.height() - 1));
        let fx = (x - self.x_lim.0) / (self.x_lim.1 - self.x_lim.0);
        let fy = (ty - self.y_lim.0) / (self.y_lim.1 - self.y_lim.0);
        // Far-off values (clipped anyway) are kept within i64 by the clamp.
        let px = (fx * w).round().clamp(-1e9, 1e9) as i64;
        let py = ((1.0 - fy) * h).round().clamp(-1e9, 1e9) as i64;
        (px, py)
    }

    /// A grey message in the middle of the plot area.
    fn note(&mut self, text: &str) {
        let (w, h) = (i64::from(self.plot.width()), i64::from(self.plot.height()));
        let s = self.text_scale;
        self.plot.draw_text(w / 2, h / 2 - i64::from(4 * s), text, s, MUTED, Anchor::Centre);
    }

    /// Copies the plot area into the frame and draws the axis box and tick marks over its edges.
    fn finish(mut self) -> Canvas {
        let (x0, y0) = self.origin;
        let (w, h) = (self.plot.width(), self.plot.height());
        let si = i64::from(self.text_scale);
        self.canvas.blit(&self.plot, x0, y0);
        self.canvas.stroke_rect(x0 - 1, y0 - 1, w + 2, h + 2, MUTED, 1);
        for &t in &self.x_ticks {
            let px = x0 + self.to_plot(t, self.y_lim.0).0;
            self.canvas.draw_line(px, y0 + i64::from(h), px, y0 + i64::from(h) + 3 * si, MUTED, 1);
        }
        for &t in &self.y_ticks {
            let py = y0 + self.to_plot(self.x_lim.0, t).1;
            self.canvas.draw_line(x0 - 1 - 3 * si, py, x0 - 1, py, MUTED, 1);
        }
        self.canvas
    }
}

/// Drops y ticks whose labels would touch (closer than `min_px` on a plot `plot_h` pixels tall), as happens
/// around zero on a symlog axis. Zero is kept first, then the largest magnitudes, which carry the most
/// information about the range. Linear ticks are evenly spaced and pass through untouched.
fn thin_ticks(
    scale: Scale,
    ticks: Vec<(f64, String)>,
    lim: (f64, f64),
    plot_h: i64,
    min_px: i64,
) -> Vec<(f64, String)> {
    if scale == Scale::Linear {
        return ticks;
    }
    let px = |v: f64| scale.forward(v).map_or(f64::NAN, |t| (t - lim.0) / (lim.1 - lim.0) * plot_h as f64);
    let mut order: Vec<usize> = (0..ticks.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| if ticks[i].0 == 0.0 { f64::INFINITY } else { ticks[i].0.abs() };
        key(b).total_cmp(&key(a))
    });
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        if kept.iter().all(|&k| (px(ticks[k].0) - px(ticks[i].0)).abs() >= min_px as f64) {
            kept.push(i);
        }
    }
    kept.sort_unstable();
    kept.into_iter().map(|i| ticks[i].clone()).collect()
}

/// Axis limits (in scale positions) and labelled ticks for data spanning positions `lo..=hi`. Linear axes end
/// on the outermost nice ticks; log axes keep the data range, padded by 4%, with ticks inside.
fn axis_ticks(scale: Scale, lo: f64, hi: f64, max_ticks: usize) -> ((f64, f64), Vec<(f64, String)>) {
    if scale == Scale::Linear {
        let ticks = scale.ticks(lo, hi, max_ticks);
        let lim = (ticks[0].0, ticks[ticks.len() - 1].0);
        return (lim, ticks);
    }
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let pad = (hi - lo) * 0.04;
    let lim = (lo - pad, hi + pad);
    (lim, scale.ticks(lim.0, lim.1, max_ticks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colormap::palette;

    fn count(c: &Canvas, colour: Rgb) -> usize {
        c.as_rgb8().chunks_exact(3).filter(|p| *p == colour).count()
    }

    #[test]
    fn linear_axes_end_on_nice_ticks_covering_the_data() {
        let (lim, ticks) = axis_ticks(Scale::Linear, 0.0, 97.0, 6);
        assert_eq!(lim, (0.0, 100.0));
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "20", "40", "60", "80", "100"]);
        let (lim, ticks) = axis_ticks(Scale::Log, -2.0, 1.0, 10);
        assert!(lim.0 < -2.0 && lim.1 > 1.0);
        assert_eq!(ticks.len(), 4);
    }

    #[test]
    fn crowded_symlog_ticks_are_thinned_keeping_zero() {
        let ticks: Vec<(f64, String)> = [-10.0, -1.0, 0.0, 1.0, 10.0].iter().map(|&v| (v, format!("{v}"))).collect();
        let s = Scale::Symlog;
        let lim = (s.forward(-20.0).unwrap(), s.forward(20.0).unwrap());
        let kept: Vec<f64> = thin_ticks(s, ticks.clone(), lim, 100, 20).into_iter().map(|t| t.0).collect();
        assert_eq!(kept, [-10.0, 0.0, 10.0]);
        assert_eq!(thin_ticks(s, ticks.clone(), lim, 1000, 20).len(), 5, "enough room: all kept");
        assert_eq!(thin_ticks(Scale::Linear, ticks, lim, 10, 20).len(), 5);
    }

    #[test]
    fn line_chart_draws_curves_and_survives_bad_points() {
        let red = [220, 20, 20];
        let mut loss: Vec<(f64, f64)> = (0..500).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect();
        loss[200].1 = f64::NAN;
        loss[300].1 = f64::INFINITY;
        let series = [
            Series::new("loss", loss, red),
            Series::from_values("E+", &[0.5, -0.25, f32::NAN, 0.0], palette(0)),
            Series::new("one point", vec![(50.0, 0.5)], palette(2)),
        ];
        let c = line_chart(&series, "training", "iteration", "value", 500, 300);
        assert_eq!((c.width(), c.height()), (500, 300));
        assert!(count(&c, red) > 300, "the curve is drawn");
        assert!(count(&c, palette(2)) > 10, "an isolated point still shows (legend swatch plus marker)");
        let log = LineChart::new("", "", "", 300, 200).y_scale(Scale::Log).render(&series);
        assert_eq!(log.width(), 300);
        let empty = line_chart(&[], "", "", "", 200, 120);
        assert_eq!(empty.height(), 120);
        let huge = [Series::new("x", vec![(0.0, -1e300), (1.0, 1e300), (2.0, f64::MAX)], red)];
        assert!(count(&line_chart(&huge, "t", "x", "y", 200, 120), red) > 0);
        // Far too small to lay out: still a canvas of the requested size, no panic.
        assert_eq!(line_chart(&series, "title", "x", "y", 20, 10).width(), 20);
    }

    #[test]
    fn histogram_chart_overlays_two_sets() {
        let a: Vec<f32> = (0..1000).map(|i| (i % 100) as f32 / 100.0).collect();
        let b: Vec<f32> = (0..300).map(|i| 0.5 + (i % 50) as f32 / 50.0).chain([f32::NAN]).collect();
        let c = histogram_chart(&a, &b, ("in", "out"), 30, "scores");
        assert_eq!((c.width(), c.height()), (640, 400));
        assert!(count(&c, palette(0)) > 100 && count(&c, palette(1)) > 100, "both outlines are drawn");
        let counts =
            HistogramChart::new("", 5).density(false).size(300, 200).render(&[("same", &[1.0, 1.0], palette(3))]);
        assert_eq!(counts.width(), 300);
        assert_eq!(histogram_chart(&[], &[], ("a", "b"), 10, "").height(), 400);
    }
}
