//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong producing a figure. Plotting is a side job of a training run, so nothing in this crate
/// panics on bad input: inconsistent shapes and failed writes come back as values the caller may log and ignore.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Writing the PNG file failed; `path` is the file that was asked for (not the temporary file).
    #[error("cannot write PNG {}: {source}", path.display())]
    Io {
        /// The destination passed to [`crate::Canvas::save_png`].
        path: PathBuf,
        /// The underlying operating-system error.
        source: std::io::Error,
    },
    /// The PNG encoder rejected the image (for instance a canvas with zero width or height).
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] image::ImageError),
    /// Inputs that do not fit together, such as a value buffer whose length is not `width * height`.
    #[error("invalid plot input: {0}")]
    Input(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, PlotError>;
