//! Dependency-light PNG figures for energy-based-model training runs.
//!
//! Everything is drawn by plain Rust onto an RGB8 [`Canvas`] and encoded with the `image` crate, with text from
//! an embedded bitmap font (see [`font`]), so figures render identically on a laptop and on a CI machine with no
//! fonts installed. Nothing here panics on bad data: NaN and infinite values are skipped or painted magenta,
//! and inconsistent shapes come back as [`PlotError`], so a figure can never take a training run down.
//!
//! | Need | Function |
//! |------|----------|
//! | density `exp(-E)` on a grid, 2D histogram of samples | [`grid_points`], [`heatmap`], [`hist2d`], [`colorbar`] |
//! | 2D point clouds | [`scatter`], [`Canvas::draw_points`] |
//! | titled panels side by side or in a grid | [`panels`], [`panel_grid`], [`Figure`] |
//! | batches of sample images, with class labels per row | [`image_grid`], [`GridLayout`] |
//! | training curves (E+, E-, loss vs iteration) | [`line_chart`], [`LineChart`], [`Series`] |
//! | in- vs out-of-distribution scores | [`histogram_chart`], [`HistogramChart`] |
//! | anything else | [`Canvas`] primitives and the [`font`] |
//!
//! ```
//! use ebm_plot::{grid_points, heatmap, hist2d, panels, scatter, viridis, Bounds, ValueRange};
//!
//! let bounds = Bounds::square(-3.0, 3.0);
//! let samples = vec![[0.5f32, 1.0], [-1.0, -2.0], [0.4, 1.1]];
//! // Model density exp(-E) on a 64x64 grid, here for E(x) = |x|^2 / 2.
//! let density: Vec<f32> =
//!     grid_points(bounds, 64, 64).iter().map(|p| (-(p[0] * p[0] + p[1] * p[1]) / 2.0).exp()).collect();
//! let figure = panels(&[
//!     ("model density", heatmap(&density, 64, 64, viridis, ValueRange::Auto)?.upscale(4)),
//!     ("samples", heatmap(&hist2d(&samples, 32, bounds), 32, 32, viridis, ValueRange::Auto)?.upscale(8)),
//!     ("scatter", scatter(&samples, bounds, [200, 30, 30], 256)),
//! ]);
//! let png = figure.to_png_bytes()?; // or figure.save_png("figures/step_1000.png")?
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), ebm_plot::PlotError>(())
//! ```
#![warn(missing_docs)]

pub mod canvas;
pub mod chart;
pub mod colormap;
pub mod error;
pub mod figure;
pub mod font;
pub mod grid;
pub mod plane;
pub mod ticks;

pub use canvas::{Anchor, Canvas, Rgb};
pub use chart::{histogram_chart, line_chart, HistogramChart, LineChart, Series};
pub use colormap::{diverging, greys, palette, viridis};
pub use error::{PlotError, Result};
pub use figure::{panel_grid, panels, Figure};
pub use grid::{image_grid, GridLayout};
pub use plane::{colorbar, grid_points, heatmap, hist2d, scatter, Bounds, ValueRange};
pub use ticks::{format_tick, nice_ticks, Scale};
