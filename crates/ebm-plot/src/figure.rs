//! [`Figure`]: titled panels laid out in a row or a grid, e.g. data / model density / samples side by side.

use crate::canvas::{Anchor, Canvas, Rgb};
use crate::font;
use std::borrow::Borrow;

/// Layout settings for a figure made of panels (any canvases: heatmaps, scatter plots, charts, sample grids).
///
/// Panels are placed left to right, `cols` per row, each under its own centred title. Every column is as wide
/// as its widest panel (or title) and every row as tall as its tallest panel; smaller panels are centred in
/// their cell, so panels of different sizes still line up.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Text above all panels (empty for none).
    pub title: String,
    /// Panels per row; `None` puts all panels in one row.
    pub cols: Option<usize>,
    /// Blank border around the whole figure, in pixels.
    pub margin: u32,
    /// Blank space between neighbouring cells, in pixels.
    pub gap: u32,
    /// Integer magnification of the bitmap font for titles.
    pub text_scale: u32,
    /// Colour behind and between the panels.
    pub background: Rgb,
    /// Colour of a 1-pixel frame drawn just outside each panel (`None` for no frame); it makes white panels
    /// such as scatter plots stand out from a white background.
    pub frame: Option<Rgb>,
}

impl Default for Figure {
    fn default() -> Self {
        Self {
            title: String::new(),
            cols: None,
            margin: 12,
            gap: 16,
            text_scale: 2,
            background: [255, 255, 255],
            frame: Some([170, 170, 170]),
        }
    }
}

impl Figure {
    /// One row, no overall title, 12-pixel margin, 16-pixel gaps, font scale 2, white background, grey frames.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same figure with an overall title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    /// The same figure with `cols` panels per row (a grid).
    pub fn cols(mut self, cols: usize) -> Self {
        self.cols = Some(cols.max(1));
        self
    }

    /// The same figure with another font magnification.
    pub fn text_scale(mut self, scale: u32) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    /// The same figure with or without panel frames.
    pub fn frame(mut self, frame: Option<Rgb>) -> Self {
        self.frame = frame;
        self
    }

    /// The same figure on another background colour.
    pub fn background(mut self, background: Rgb) -> Self {
        self.background = background;
        self
    }

    /// Assembles `(title, panel)` pairs into one canvas. Titles may be empty; panels may be owned canvases
    /// or references. With no panels the result only holds the overall title (or is a small blank canvas).
    pub fn render<S: AsRef<str>, C: Borrow<Canvas>>(&self, panels: &[(S, C)]) -> Canvas {
        let s = self.text_scale.max(1);
        let n = panels.len();
        let cols = self.cols.unwrap_or(n).clamp(1, n.max(1));
        let rows = n.div_ceil(cols);
        let line = font::text_height("", s);
        let title_gap = 2 * s;
        let has_titles = panels.iter().any(|(t, _)| !t.as_ref().is_empty());
        let cell_title = if has_titles { line + title_gap } else { 0 };

        let mut col_w = vec![0u32; cols];
        let mut row_h = vec![0u32; rows];
        for (i, (title, panel)) in panels.iter().enumerate() {
            let panel = panel.borrow();
            let (r, c) = (i / cols, i % cols);
            col_w[c] = col_w[c].max(panel.width()).max(font::text_width(title.as_ref(), s));
            row_h[r] = row_h[r].max(panel.height());
        }
        let fig_title = if self.title.is_empty() { 0 } else { line + 3 * title_gap };
        let width = 2 * self.margin + col_w.iter().sum::<u32>() + self.gap * (cols as u32 - 1);
        let width = width.max(font::text_width(&self.title, s) + 2 * self.margin).max(1);
        let height = 2 * self.margin
            + fig_title
            + row_h.iter().map(|h| h + cell_title).sum::<u32>()
            + self.gap * (rows.max(1) as u32 - 1);
        let mut canvas = Canvas::new(width, height.max(1), self.background);
        let ink = contrasting(self.background);
        if !self.title.is_empty() {
            canvas.draw_text(i64::from(width / 2), i64::from(self.margin), &self.title, s, ink, Anchor::Centre);
        }

        let mut y = i64::from(self.margin + fig_title);
        for (row, &row_height) in panels.chunks(cols).zip(&row_h) {
            let mut x = i64::from(self.margin);
            for ((title, panel), &col_width) in row.iter().zip(&col_w) {
                let panel = panel.borrow();
                canvas.draw_text(x + i64::from(col_width / 2), y, title.as_ref(), s, ink, Anchor::Centre);
                let px = x + i64::from((col_width - panel.width()) / 2);
                let py = y + i64::from(cell_title + (row_height - panel.height()) / 2);
                if let Some(frame) = self.frame {
                    canvas.stroke_rect(px - 1, py - 1, panel.width() + 2, panel.height() + 2, frame, 1);
                }
                canvas.blit(panel, px, py);
                x += i64::from(col_width + self.gap);
            }
            y += i64::from(row_height + cell_title + self.gap);
        }
        canvas
    }
}

/// Black or white, whichever reads better on `background`.
fn contrasting(background: Rgb) -> Rgb {
    let luma = 0.299 * f32::from(background[0]) + 0.587 * f32::from(background[1]) + 0.114 * f32::from(background[2]);
    if luma > 128.0 {
        [20, 20, 20]
    } else {
        [235, 235, 235]
    }
}

/// Puts titled panels side by side in one row with the default [`Figure`] settings, e.g.
/// `panels(&[("data", data), ("model density", density), ("samples", samples)])`.
pub fn panels<S: AsRef<str>, C: Borrow<Canvas>>(items: &[(S, C)]) -> Canvas {
    Figure::new().render(items)
}

/// Puts titled panels in a grid of `cols` columns with the default [`Figure`] settings.
pub fn panel_grid<S: AsRef<str>, C: Borrow<Canvas>>(items: &[(S, C)], cols: usize) -> Canvas {
    Figure::new().cols(cols).render(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_of_panels_places_each_under_its_title() {
        let a = Canvas::new(40, 30, [255, 0, 0]);
        let b = Canvas::new(20, 50, [0, 255, 0]);
        let fig = panels(&[("red", &a), ("green", &b)]);
        let f = Figure::new();
        let title = font::text_height("", 2) + 4;
        assert_eq!(fig.width(), 2 * f.margin + 40 + f.gap + font::text_width("green", 2).max(20));
        assert_eq!(fig.height(), 2 * f.margin + title + 50);
        // The shorter red panel is centred vertically in its cell; the green one fills its cell.
        let (m, top) = (f.margin, f.margin + title);
        assert_eq!(fig.pixel(m, top + 10), Some([255, 0, 0]));
        assert_eq!(fig.pixel(m + 39, top + 39), Some([255, 0, 0]));
        assert_eq!(fig.pixel(m, top + 9), Some([170, 170, 170]), "frame just above the red panel");
        let green_x = m + 40 + f.gap + (font::text_width("green", 2) - 20) / 2;
        assert_eq!(fig.pixel(green_x, top), Some([0, 255, 0]));
        assert_eq!(fig.pixel(green_x + 19, top + 49), Some([0, 255, 0]));
    }

    #[test]
    fn grid_wraps_rows_and_accepts_owned_panels() {
        let items: Vec<(String, Canvas)> =
            (0..5).map(|i| (format!("p{i}"), Canvas::new(10, 10, [i * 40, 0, 0]))).collect();
        let fig = Figure::new().cols(2).title("grid").frame(None).render(&items);
        let single = Figure::new().cols(2).frame(None).render(&items[..1]);
        assert!(fig.height() > 3 * 10 && fig.width() < 3 * 10 + 2 * 12 + 2 * 16);
        assert!(single.width() < fig.width());
        assert_eq!(Figure::new().render::<&str, Canvas>(&[]).width(), 24);
    }
}
