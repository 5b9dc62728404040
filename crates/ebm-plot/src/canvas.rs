//! [`Canvas`]: an RGB8 raster with the handful of drawing primitives the figures need, and PNG output.

use crate::error::{PlotError, Result};
use crate::font;
use std::path::Path;

/// An opaque colour as `[red, green, blue]`, 0..=255 each.
pub type Rgb = [u8; 3];

/// Horizontal placement of text relative to the `x` it is drawn at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anchor {
    /// The text starts at `x` (left-aligned).
    #[default]
    Left,
    /// The text is centred on `x` (titles, axis labels under ticks).
    Centre,
    /// The text ends at `x` (right-aligned numbers, labels left of something).
    Right,
}

impl Anchor {
    /// First coordinate of a run of `extent` pixels anchored at `at`.
    fn start(self, at: i64, extent: u32) -> i64 {
        match self {
            Anchor::Left => at,
            Anchor::Centre => at - i64::from(extent / 2),
            Anchor::Right => at - i64::from(extent),
        }
    }
}

/// An RGB8 image in memory, row-major, origin at the top-left corner.
///
/// Every figure of the crate is built on a `Canvas`. Drawing is clipped: shapes and text may extend past the
/// edges (coordinates are signed) and simply lose the part that falls outside, so layout code never has to
/// guard against off-by-one overflows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Canvas {
    /// A `width x height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let n = width as usize * height as usize;
        let data = background.iter().copied().cycle().take(n * 3).collect();
        Self { width, height, data }
    }

    /// Wraps existing RGB8 pixels (row-major, 3 bytes per pixel); fails if `data` has the wrong length.
    pub fn from_rgb8(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(PlotError::Input(format!(
                "{width}x{height} RGB canvas needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self { width, height, data })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The raw pixels: row-major RGB8, `3 * width * height` bytes.
    pub fn as_rgb8(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the canvas and returns its raw RGB8 pixels.
    pub fn into_rgb8(self) -> Vec<u8> {
        self.data
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        let inside = x >= 0 && y >= 0 && x < i64::from(self.width) && y < i64::from(self.height);
        inside.then(|| (y as usize * self.width as usize + x as usize) * 3)
    }

    /// The colour at (`x`, `y`), or `None` outside the canvas. Mostly for tests and probing.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        let i = self.index(i64::from(x), i64::from(y))?;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Paints one pixel; coordinates outside the canvas are ignored.
    pub fn set_pixel(&mut self, x: i64, y: i64, colour: Rgb) {
        if let Some(i) = self.index(x, y) {
            self.data[i..i + 3].copy_from_slice(&colour);
        }
    }

    /// Mixes `colour` into one pixel with opacity `alpha` (0 = unchanged, 1 = replaced). Overlapping
    /// semi-transparent marks (dense scatter plots, overlaid histograms) stay readable this way.
    pub fn blend_pixel(&mut self, x: i64, y: i64, colour: Rgb, alpha: f32) {
        if let Some(i) = self.index(x, y) {
            blend(&mut self.data[i..i + 3], colour, alpha);
        }
    }

    /// Paints the whole canvas with one colour.
    pub fn fill(&mut self, colour: Rgb) {
        for px in self.data.chunks_exact_mut(3) {
            px.copy_from_slice(&colour);
        }
    }

    /// Paints the `w x h` rectangle whose top-left corner is (`x`, `y`), clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, colour: Rgb) {
        self.fill_rect_alpha(x, y, w, h, colour, 1.0);
    }

    /// Like [`Canvas::fill_rect`], but blends with opacity `alpha` (see [`Canvas::blend_pixel`]).
    pub fn fill_rect_alpha(&mut self, x: i64, y: i64, w: u32, h: u32, colour: Rgb, alpha: f32) {
        let x0 = x.clamp(0, i64::from(self.width)) as usize;
        let x1 = x.saturating_add(i64::from(w)).clamp(0, i64::from(self.width)) as usize;
        let y0 = y.clamp(0, i64::from(self.height)) as usize;
        let y1 = y.saturating_add(i64::from(h)).clamp(0, i64::from(self.height)) as usize;
        let stride = self.width as usize * 3;
        for row in y0..y1 {
            let line = &mut self.data[row * stride + x0 * 3..row * stride + x1 * 3];
            for px in line.chunks_exact_mut(3) {
                if alpha >= 1.0 {
                    px.copy_from_slice(&colour);
                } else {
                    blend(px, colour, alpha);
                }
            }
        }
    }

    /// Outlines the `w x h` rectangle at (`x`, `y`) with a border `thickness` pixels wide, drawn inside it.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: u32, h: u32, colour: Rgb, thickness: u32) {
        let t = thickness.max(1);
        if 2 * t >= w || 2 * t >= h {
            self.fill_rect(x, y, w, h, colour);
            return;
        }
        self.fill_rect(x, y, w, t, colour);
        self.fill_rect(x, y + i64::from(h - t), w, t, colour);
        self.fill_rect(x, y, t, h, colour);
        self.fill_rect(x + i64::from(w - t), y, t, h, colour);
    }

    /// Draws a straight line from (`x0`, `y0`) to (`x1`, `y1`), both ends included, with Bresenham's algorithm.
    /// A `thickness` above 1 stamps a square brush of that size on every step. The segment is first clipped to
    /// the canvas, so far-away endpoints cost nothing.
    pub fn draw_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb, thickness: u32) {
        let t = i64::from(thickness.max(1));
        let m = t as f64;
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let Some([ax, ay, bx, by]) = clip_segment([x0 as f64, y0 as f64, x1 as f64, y1 as f64], [-m, -m, w + m, h + m])
        else {
            return;
        };
        let (mut x, mut y, x1, y1) = (ax.round() as i64, ay.round() as i64, bx.round() as i64, by.round() as i64);
        let (dx, sx) = ((x1 - x).abs(), if x < x1 { 1 } else { -1 });
        let (dy, sy) = (-(y1 - y).abs(), if y < y1 { 1 } else { -1 });
        let offset = (t - 1) / 2;
        let mut err = dx + dy;
        loop {
            if t == 1 {
                self.set_pixel(x, y, colour);
            } else {
                self.fill_rect(x - offset, y - offset, t as u32, t as u32, colour);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Fills a disc of `radius` pixels centred on (`cx`, `cy`) with opacity `alpha`; radius 0 is one pixel.
    /// Used for scatter markers and legend swatches.
    pub fn fill_disc(&mut self, cx: i64, cy: i64, radius: u32, colour: Rgb, alpha: f32) {
        let r = i64::from(radius);
        let limit = (radius as f32 + 0.35).powi(2);
        for dy in -r..=r {
            for dx in -r..=r {
                if ((dx * dx + dy * dy) as f32) <= limit {
                    self.blend_pixel(cx + dx, cy + dy, colour, alpha);
                }
            }
        }
    }

    /// Writes `text` with the embedded bitmap font, each font pixel a `scale x scale` block. `y` is the top of
    /// the first line; `anchor` says whether `x` is where each line starts, its centre or its end. `\n` starts
    /// a new line; characters outside printable ASCII show as a hollow box.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, scale: u32, colour: Rgb, anchor: Anchor) {
        let s = scale.max(1);
        for (i, line) in text.split('\n').enumerate() {
            let left = anchor.start(x, font::text_width(line, s));
            let top = y + i as i64 * i64::from(font::LINE_HEIGHT * s);
            self.glyph_run(line, s, colour, |u, v| (left + u, top + v));
        }
    }

    /// Writes `text` turned 90 degrees counter-clockwise, reading from bottom to top, as on a y-axis label.
    /// `x` is the left edge of the turned text; `anchor` places it along the vertical: `Left` makes the text
    /// start at `y` and run upwards, `Centre` centres it on `y`, `Right` makes it end (at the top) at `y`.
    pub fn draw_text_vertical(&mut self, x: i64, y: i64, text: &str, scale: u32, colour: Rgb, anchor: Anchor) {
        let s = scale.max(1);
        for (i, line) in text.split('\n').enumerate() {
            let len = i64::from(font::text_width(line, s));
            let bottom = match anchor {
                Anchor::Left => y,
                Anchor::Centre => y - len / 2 + len,
                Anchor::Right => y + len,
            };
            let left = x + i as i64 * i64::from(font::LINE_HEIGHT * s);
            // Font position (u along the reading direction, v downwards in the glyph) turns into
            // (x + v, bottom - u): the glyph tops face left. A block starting at u covers rows up to bottom - u.
            self.glyph_run(line, s, colour, |u, v| (left + v, bottom - u - i64::from(s)));
        }
    }

    /// Paints the inked pixels of one line of text; `place(u, v)` turns the offset of a font block from the
    /// line's start (u along the text, v down the glyph) into the canvas position of the block's corner.
    fn glyph_run(&mut self, line: &str, s: u32, colour: Rgb, place: impl Fn(i64, i64) -> (i64, i64)) {
        let step = i64::from(s);
        for (k, c) in line.chars().enumerate() {
            let origin = k as i64 * i64::from(font::ADVANCE) * step;
            for (row, bits) in font::glyph(c).iter().enumerate() {
                for col in 0..font::GLYPH_WIDTH {
                    if bits & (1 << (font::GLYPH_WIDTH - 1 - col)) != 0 {
                        let (px, py) = place(origin + i64::from(col) * step, row as i64 * step);
                        self.fill_rect(px, py, s, s, colour);
                    }
                }
            }
        }
    }

    /// Copies `src` onto this canvas with its top-left corner at (`x`, `y`), clipped to this canvas. This is
    /// how panels, heatmaps and sample images are assembled into figures.
    pub fn blit(&mut self, src: &Canvas, x: i64, y: i64) {
        let sx0 = (-x).clamp(0, i64::from(src.width)) as usize;
        let sx1 = (i64::from(self.width) - x).clamp(0, i64::from(src.width)) as usize;
        if sx0 >= sx1 {
            return;
        }
        let (sw, dw) = (src.width as usize * 3, self.width as usize * 3);
        for sy in 0..src.height as usize {
            let dy = y + sy as i64;
            if dy < 0 || dy >= i64::from(self.height) {
                continue;
            }
            let dx0 = (x + sx0 as i64) as usize;
            let dst = dy as usize * dw + dx0 * 3;
            self.data[dst..dst + (sx1 - sx0) * 3].copy_from_slice(&src.data[sy * sw + sx0 * 3..sy * sw + sx1 * 3]);
        }
    }

    /// A copy enlarged `factor` times with nearest-neighbour sampling, so each pixel becomes a crisp block
    /// (small heatmaps and 28x28 samples stay sharp instead of blurry). A factor of 0 counts as 1.
    pub fn upscale(&self, factor: u32) -> Canvas {
        let f = factor.max(1);
        self.resize_nearest(self.width * f, self.height * f)
    }

    /// A copy resampled to `width x height` with nearest-neighbour sampling.
    pub fn resize_nearest(&self, width: u32, height: u32) -> Canvas {
        let mut out = Canvas::new(width, height, [0, 0, 0]);
        if self.width == 0 || self.height == 0 {
            return out;
        }
        for y in 0..height as usize {
            let sy = y * self.height as usize / height as usize;
            for x in 0..width as usize {
                let sx = x * self.width as usize / width as usize;
                let (s, d) = ((sy * self.width as usize + sx) * 3, (y * width as usize + x) * 3);
                out.data[d..d + 3].copy_from_slice(&self.data[s..s + 3]);
            }
        }
        out
    }

    /// The canvas as an `image` crate buffer, for callers that want other encoders or further processing.
    pub fn to_rgb_image(&self) -> image::RgbImage {
        image::RgbImage::from_raw(self.width, self.height, self.data.clone()).expect("canvas buffer has w*h*3 bytes")
    }

    /// The canvas encoded as a PNG file in memory (for embedding in reports or sending elsewhere).
    /// Fails for a canvas with zero width or height, which PNG cannot represent.
    pub fn to_png_bytes(&self) -> Result<Vec<u8>> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(
            &self.data,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(out)
    }

    /// Encodes the canvas as PNG and writes it to `path` atomically: the bytes go to a temporary file in the
    /// same folder, are flushed, and only then renamed over `path`. A viewer polling the file during training
    /// never sees a half-written image, and a failed write leaves neither a broken file nor a temporary one.
    /// The folder must exist; errors name `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_png_bytes()?)
    }
}

impl From<image::RgbImage> for Canvas {
    /// Takes over an `image` crate RGB buffer, e.g. a decoded photo or dataset image to place in a figure.
    fn from(img: image::RgbImage) -> Self {
        let (width, height) = img.dimensions();
        Self { width, height, data: img.into_raw() }
    }
}

fn blend(px: &mut [u8], colour: Rgb, alpha: f32) {
    let a = if alpha.is_nan() { 0.0 } else { alpha.clamp(0.0, 1.0) };
    for (d, s) in px.iter_mut().zip(colour) {
        *d = (f32::from(*d) * (1.0 - a) + f32::from(s) * a).round() as u8;
    }
}

/// Liang-Barsky clipping of segment `[x0, y0, x1, y1]` to the box `[xmin, ymin, xmax, ymax]`.
fn clip_segment(seg: [f64; 4], bounds: [f64; 4]) -> Option<[f64; 4]> {
    let [x0, y0, x1, y1] = seg;
    let [xmin, ymin, xmax, ymax] = bounds;
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, x0 - xmin), (dx, xmax - x0), (-dy, y0 - ymin), (dy, ymax - y0)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
            continue;
        }
        let r = q / p;
        if p < 0.0 {
            t0 = t0.max(r);
        } else {
            t1 = t1.min(r);
        }
        if t0 > t1 {
            return None;
        }
    }
    Some([x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy])
}

/// [`ebm_io::write_atomic`], with the plotting crate's error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ebm_io::write_atomic(path, bytes).map_err(|e| match e {
        ebm_io::IoError::Io { path, source } => PlotError::Io { path, source },
        other => PlotError::Io { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Rgb = [255, 255, 255];
    const K: Rgb = [0, 0, 0];
    const R: Rgb = [255, 0, 0];

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-plot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn count(c: &Canvas, colour: Rgb) -> usize {
        c.as_rgb8().chunks_exact(3).filter(|p| *p == colour).count()
    }

    #[test]
    fn png_round_trip_keeps_size_and_pixels() {
        let mut c = Canvas::new(37, 21, W);
        c.set_pixel(3, 4, R);
        c.fill_rect(10, 10, 5, 5, [1, 2, 3]);
        let img = image::load_from_memory(&c.to_png_bytes().unwrap()).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (37, 21));
        assert_eq!(img.get_pixel(3, 4).0, R);
        assert_eq!(img.get_pixel(12, 12).0, [1, 2, 3]);
        assert_eq!(Canvas::from(img), c);
    }

    #[test]
    fn save_png_writes_a_decodable_file_and_replaces_atomically() {
        let d = temp_dir("save");
        let p = d.join("fig.png");
        Canvas::new(8, 6, R).save_png(&p).unwrap();
        Canvas::new(9, 7, K).save_png(&p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (9, 7));
        assert_eq!(img.get_pixel(0, 0).0, K);
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("fig.png")], "no temporary file may remain");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn save_png_into_missing_folder_fails_naming_the_path_and_leaves_nothing() {
        let d = temp_dir("missing");
        let p = d.join("no-such-folder").join("fig.png");
        let err = Canvas::new(4, 4, W).save_png(&p).unwrap_err();
        assert!(matches!(&err, PlotError::Io { path, .. } if path == &p), "{err:?}");
        assert!(err.to_string().contains(&*p.to_string_lossy()), "{err}");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "no temporary file may remain");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn zero_sized_canvas_fails_to_encode_instead_of_panicking() {
        assert!(matches!(Canvas::new(0, 5, W).to_png_bytes(), Err(PlotError::Encode(_))));
        assert!(Canvas::from_rgb8(2, 2, vec![0; 11]).is_err());
        assert_eq!(Canvas::from_rgb8(2, 2, vec![7; 12]).unwrap().pixel(1, 1), Some([7, 7, 7]));
    }

    #[test]
    fn drawing_is_clipped_at_the_edges() {
        let mut c = Canvas::new(10, 10, W);
        c.set_pixel(-1, 0, K);
        c.set_pixel(10, 3, K);
        c.fill_rect(-5, -5, 7, 7, K);
        assert_eq!(count(&c, K), 4);
        c.draw_line(-1_000_000_000, 5, 1_000_000_000, 5, R, 1);
        assert_eq!(count(&c, R), 10, "a huge horizontal line covers exactly one row");
        assert_eq!(c.pixel(10, 0), None);
        c.draw_text(-30, -30, "clipped away", 4, R, Anchor::Left);
        c.blit(&Canvas::new(50, 50, K), 8, 8);
        assert_eq!(c.pixel(9, 9), Some(K));
        assert_eq!(c.pixel(7, 7), Some(W));
    }

    #[test]
    fn lines_hit_both_endpoints_and_thickness_widens_them() {
        let mut c = Canvas::new(20, 20, W);
        c.draw_line(2, 3, 15, 11, K, 1);
        assert_eq!(c.pixel(2, 3), Some(K));
        assert_eq!(c.pixel(15, 11), Some(K));
        assert_eq!(count(&c, K), 14, "a Bresenham line has one pixel per step of its longer axis");
        let mut v = Canvas::new(20, 20, W);
        v.draw_line(10, 2, 10, 17, K, 3);
        assert_eq!(count(&v, K), 3 * (16 + 2), "the 3x3 brush overhangs each end by one pixel");
        assert_eq!(v.pixel(9, 2), Some(K));
        assert_eq!(v.pixel(11, 17), Some(K));
    }

    #[test]
    fn rectangles_discs_and_blending() {
        let mut c = Canvas::new(20, 20, W);
        c.stroke_rect(2, 2, 10, 8, K, 1);
        assert_eq!(count(&c, K), 2 * 10 + 2 * 6);
        assert_eq!(c.pixel(5, 5), Some(W));
        c.fill_rect_alpha(0, 0, 1, 1, K, 0.5);
        assert_eq!(c.pixel(0, 0), Some([128, 128, 128]));
        let mut d = Canvas::new(9, 9, W);
        d.fill_disc(4, 4, 0, K, 1.0);
        assert_eq!(count(&d, K), 1);
        d.fill_disc(4, 4, 2, K, 1.0);
        assert_eq!(count(&d, K), 21);
        assert_eq!(d.pixel(6, 4), Some(K));
        assert_eq!(d.pixel(6, 6), Some(W));
    }

    #[test]
    fn text_lands_where_anchored() {
        let ink_columns = |c: &Canvas| {
            let cols: Vec<u32> =
                (0..c.width()).filter(|&x| (0..c.height()).any(|y| c.pixel(x, y) == Some(K))).collect();
            (cols[0], *cols.last().unwrap())
        };
        let w = font::text_width("EbM", 2);
        let mut left = Canvas::new(100, 30, W);
        left.draw_text(10, 5, "EbM", 2, K, Anchor::Left);
        assert_eq!(ink_columns(&left), (10, 10 + w - 1), "E and M fill their first and last columns");
        let mut right = Canvas::new(100, 30, W);
        right.draw_text(90, 5, "EbM", 2, K, Anchor::Right);
        assert_eq!(ink_columns(&right), (90 - w, 89));
        let mut centre = Canvas::new(100, 30, W);
        centre.draw_text(50, 5, "EbM", 2, K, Anchor::Centre);
        assert_eq!(ink_columns(&centre), (50 - w / 2, 50 - w / 2 + w - 1));
        // The top row of `E` is inked at y = 5 (scale 2: rows 5 and 6), nothing above.
        assert_eq!(left.pixel(10, 5), Some(K));
        assert_eq!(left.pixel(10, 4), Some(W));
    }

    #[test]
    fn vertical_text_is_the_horizontal_text_turned_left() {
        let text = "y:1";
        let (tw, th) = (font::text_width(text, 1), font::text_height(text, 1));
        let mut h = Canvas::new(tw, th, W);
        h.draw_text(0, 0, text, 1, K, Anchor::Left);
        let mut v = Canvas::new(th, tw, W);
        v.draw_text_vertical(0, i64::from(tw), text, 1, K, Anchor::Left);
        for u in 0..tw {
            for y in 0..th {
                assert_eq!(h.pixel(u, y), v.pixel(y, tw - 1 - u), "font pixel ({u}, {y})");
            }
        }
        let mut c = Canvas::new(th, tw, W);
        c.draw_text_vertical(0, i64::from(tw) / 2, text, 1, K, Anchor::Centre);
        assert_eq!(c, v, "centred on the middle of a box of the same height");
    }

    #[test]
    fn upscale_makes_blocks() {
        let mut c = Canvas::new(2, 1, W);
        c.set_pixel(1, 0, K);
        let u = c.upscale(3);
        assert_eq!((u.width(), u.height()), (6, 3));
        assert_eq!(u.pixel(2, 2), Some(W));
        assert_eq!(u.pixel(3, 0), Some(K));
        assert_eq!(count(&u, K), 9);
    }
}
