//! Data for energy-based models: toy 2D densities, labelled image sets and their file formats, and a
//! reproducible batch order.
//!
//! - [`images`]: [`ImageSet`], an in-memory labelled set of quantised images, and its conversion to `[0, 1]` batches
//!   with or without dequantisation noise.
//! - [`digits`]: the UCI optical digits (sklearn's "digits", 8x8, 17 grey levels), embedded in the crate, with a fixed
//!   train/test split.
//! - [`dataset`]: the [`Dataset`] trait that every image source implements.
//!
//! All randomness comes from [`ebm_kernels::Rng`]; nothing here calls candle's random constructors. Every batch is
//! returned as CPU tensors: callers move them to their device.

pub mod dataset;
pub mod digits;
pub mod error;
mod file;
pub mod images;

pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use images::{Dequant, ImageSet};
