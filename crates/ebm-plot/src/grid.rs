//! Sample grids: a batch of images (e.g. Langevin samples, replay-buffer contents) tiled into one picture.

use crate::canvas::{Anchor, Canvas, Rgb};
use crate::colormap::BAD;
use crate::error::{PlotError, Result};
use crate::font;

/// How [`image_grid`] tiles a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct GridLayout {
    /// Images per row; image `k` goes to row `k / cols`, column `k % cols`.
    pub cols: usize,
    /// Each image pixel becomes an `upscale x upscale` block (nearest neighbour, so digits stay crisp).
    pub upscale: u32,
    /// Pixels of background between images and around the grid.
    pub pad: u32,
    /// Colour of the padding and of the label column.
    pub background: Rgb,
    /// Optional text left of each row (e.g. the class of a class-conditional row); row `r` gets label `r`.
    /// Missing labels leave the row unlabelled, extra ones are ignored. Empty: no label column at all.
    pub row_labels: Vec<String>,
    /// Integer magnification of the bitmap font for the row labels.
    pub label_scale: u32,
}

impl GridLayout {
    /// `cols` images per row, no enlargement, 2 pixels of white padding, no row labels.
    pub fn new(cols: usize) -> Self {
        Self { cols, upscale: 1, pad: 2, background: [255, 255, 255], row_labels: Vec::new(), label_scale: 2 }
    }

    /// The same layout with images enlarged `factor` times.
    pub fn upscale(mut self, factor: u32) -> Self {
        self.upscale = factor.max(1);
        self
    }

    /// The same layout with another padding.
    pub fn pad(mut self, pad: u32) -> Self {
        self.pad = pad;
        self
    }

    /// The same layout with another padding colour.
    pub fn background(mut self, colour: Rgb) -> Self {
        self.background = colour;
        self
    }

    /// The same layout with a label left of each row.
    pub fn row_labels<S: ToString>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.row_labels = labels.into_iter().map(|l| l.to_string()).collect();
        self
    }

    /// The same layout with row labels drawn at another font magnification.
    pub fn label_scale(mut self, scale: u32) -> Self {
        self.label_scale = scale.max(1);
        self
    }
}

/// Tiles `n` images of `c` channels and `h x w` pixels, stored as `shape = [n, c, h, w]` (NCHW, the layout of
/// a candle batch flattened with `flatten_all()?.to_vec1::<f32>()`), into one canvas laid out by `layout`.
///
/// `c` is 1 (greyscale) or 3 (RGB). Values are intensities in `[0, 1]`; values outside are clamped and NaN
/// pixels are painted magenta ([`BAD`]) so diverged samples are obvious. Fails (instead of panicking) when the
/// buffer does not hold `n * c * h * w` values, when `c` is neither 1 nor 3, or when there is nothing to draw.
pub fn image_grid(images: &[f32], shape: [usize; 4], layout: &GridLayout) -> Result<Canvas> {
    let [n, c, h, w] = shape;
    let fail = |why: String| Err(PlotError::Input(format!("image_grid of shape {shape:?}: {why}")));
    if c != 1 && c != 3 {
        return fail("channels must be 1 (grey) or 3 (RGB)".into());
    }
    if images.len() != n * c * h * w {
        return fail(format!("expected {} values, got {}", n * c * h * w, images.len()));
    }
    if n == 0 || h == 0 || w == 0 || layout.cols == 0 {
        return fail("nothing to draw (no images, empty images or zero columns)".into());
    }
    let cols = layout.cols.min(n);
    let rows = n.div_ceil(cols);
    let up = layout.upscale.max(1) as usize;
    let pad = layout.pad as usize;
    let (cell_w, cell_h) = (w * up, h * up);

    let s = layout.label_scale.max(1);
    let labels = &layout.row_labels[..layout.row_labels.len().min(rows)];
    let label_w = labels.iter().map(|l| font::text_width(l, s)).max().unwrap_or(0) as usize;
    let label_col = if labels.is_empty() { 0 } else { label_w + 2 * font::ADVANCE as usize * s as usize };

    let width = label_col + pad + cols * (cell_w + pad);
    let height = pad + rows * (cell_h + pad);
    let (width, height) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return fail("grid too large".into()),
    };
    let mut canvas = Canvas::new(width, height, layout.background);
    let plane = h * w;
    for k in 0..n {
        let img = &images[k * c * plane..(k + 1) * c * plane];
        let mut rgb = Vec::with_capacity(plane * 3);
        for p in 0..plane {
            let colour = if c == 1 {
                intensity(img[p]).map_or(BAD, |v| [v, v, v])
            } else {
                match (intensity(img[p]), intensity(img[plane + p]), intensity(img[2 * plane + p])) {
                    (Some(r), Some(g), Some(b)) => [r, g, b],
                    _ => BAD,
                }
            };
            rgb.extend_from_slice(&colour);
        }
        let tile = Canvas::from_rgb8(w as u32, h as u32, rgb)?;
        let (row, col) = (k / cols, k % cols);
        let x = label_col + pad + col * (cell_w + pad);
        let y = pad + row * (cell_h + pad);
        canvas.blit(&tile.upscale(up as u32), x as i64, y as i64);
    }
    let ink = if layout.background.iter().map(|&v| u32::from(v)).sum::<u32>() > 3 * 128 { [20; 3] } else { [235; 3] };
    let cap = 7 * s as usize;
    for (row, label) in labels.iter().enumerate() {
        let y = pad + row * (cell_h + pad) + cell_h.saturating_sub(cap) / 2;
        let x = label_col - font::ADVANCE as usize * s as usize;
        canvas.draw_text(x as i64, y as i64, label, s, ink, Anchor::Right);
    }
    Ok(canvas)
}

/// `[0, 1]` to a byte, clamping; `None` for NaN.
fn intensity(v: f32) -> Option<u8> {
    (!v.is_nan()).then(|| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Image `k` of a grey batch is the constant `k / 10`.
    fn grey_batch(n: usize, h: usize, w: usize) -> Vec<f32> {
        (0..n).flat_map(|k| std::iter::repeat_n(k as f32 / 10.0, h * w)).collect()
    }

    #[test]
    fn image_k_lands_in_its_cell() {
        let (n, h, w) = (7, 3, 2);
        let layout = GridLayout::new(3).upscale(4).pad(1).background([0, 0, 255]);
        let c = image_grid(&grey_batch(n, h, w), [n, 1, h, w], &layout).unwrap();
        let (cw, ch) = (w as u32 * 4, h as u32 * 4);
        assert_eq!((c.width(), c.height()), (1 + 3 * (cw + 1), 1 + 3 * (ch + 1)));
        for k in 0..n as u32 {
            let (x, y) = (1 + (k % 3) * (cw + 1), 1 + (k / 3) * (ch + 1));
            let v = (k as f32 / 10.0 * 255.0).round() as u8;
            for (dx, dy) in [(0, 0), (cw - 1, ch - 1), (cw / 2, ch / 2)] {
                assert_eq!(c.pixel(x + dx, y + dy), Some([v, v, v]), "image {k} at ({dx}, {dy})");
            }
            assert_eq!(c.pixel(x + cw, y), Some([0, 0, 255]), "padding right of image {k}");
        }
        // The last row has one image; the rest of it is background.
        assert_eq!(c.pixel(1 + (cw + 1) + 2, 1 + 2 * (ch + 1) + 2), Some([0, 0, 255]));
    }

    #[test]
    fn rgb_channels_and_pixel_positions() {
        // Two 2x2 RGB images; image 1 has a red top-right pixel and a NaN bottom-left one.
        let mut data = vec![0.0f32; 2 * 3 * 4];
        let at = |k: usize, ch: usize, y: usize, x: usize| ((k * 3 + ch) * 2 + y) * 2 + x;
        data[at(1, 0, 0, 1)] = 1.0;
        data[at(1, 1, 1, 0)] = f32::NAN;
        data[at(0, 2, 1, 1)] = 2.0; // clamped to 1: a blue pixel
        let c = image_grid(&data, [2, 3, 2, 2], &GridLayout::new(2).pad(0)).unwrap();
        assert_eq!((c.width(), c.height()), (4, 2));
        assert_eq!(c.pixel(1, 1), Some([0, 0, 255]));
        assert_eq!(c.pixel(3, 0), Some([255, 0, 0]));
        assert_eq!(c.pixel(2, 1), Some(BAD));
        assert_eq!(c.pixel(2, 0), Some([0, 0, 0]));
    }

    #[test]
    fn row_labels_sit_left_of_their_rows() {
        let (n, h, w) = (4, 8, 8);
        let layout = GridLayout::new(2).upscale(2).pad(2).row_labels(["0", "7", "unused"]).label_scale(1);
        let c = image_grid(&grey_batch(n, h, w), [n, 1, h, w], &layout).unwrap();
        let label_col = font::text_width("7", 1) + 2 * font::ADVANCE;
        assert_eq!(c.width(), label_col + 2 + 2 * (16 + 2));
        // The first image now starts right of the label column.
        assert_eq!(c.pixel(label_col + 2, 2), Some([0, 0, 0]));
        let ink_rows = |y0: u32, y1: u32| (y0..y1).any(|y| (0..label_col).any(|x| c.pixel(x, y) == Some([20, 20, 20])));
        assert!(ink_rows(2, 18) && ink_rows(20, 36), "each row has its label");
        let unlabelled = GridLayout::new(2).upscale(2).pad(2);
        assert_eq!(image_grid(&grey_batch(n, h, w), [n, 1, h, w], &unlabelled).unwrap().width(), 2 + 2 * 18);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let l = GridLayout::new(4);
        assert!(image_grid(&[0.0; 12], [1, 3, 2, 3], &l).is_err());
        assert!(image_grid(&[0.0; 8], [2, 2, 2, 1], &l).is_err(), "two channels");
        assert!(image_grid(&[], [0, 1, 2, 2], &l).is_err());
        assert!(image_grid(&[0.0; 4], [1, 1, 2, 2], &GridLayout::new(0)).is_err());
    }
}
