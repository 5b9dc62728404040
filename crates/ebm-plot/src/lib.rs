//! Dependency-light PNG figures for energy-based-model training runs.
//!
//! Everything is drawn by plain Rust onto an RGB8 [`Canvas`] and encoded with the `image` crate, with text from
//! an embedded bitmap font (see [`font`]), so figures render identically on a laptop and on a CI machine with no
//! fonts installed.
#![warn(missing_docs)]

pub mod canvas;
pub mod colormap;
pub mod error;
pub mod font;
pub mod plane;
pub mod ticks;

pub use canvas::{Anchor, Canvas, Rgb};
pub use colormap::{diverging, greys, palette, viridis};
pub use error::{PlotError, Result};
pub use plane::{colorbar, grid_points, heatmap, hist2d, scatter, Bounds, ValueRange};
pub use ticks::{format_tick, nice_ticks, Scale};
