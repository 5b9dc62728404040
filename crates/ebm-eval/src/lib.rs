//! Measurements of energy-based models.
//!
//! - [`classify`]: energy-based classification (`argmin_y E(x, y)`), accuracy, confusion.
//! - [`classifier`]: a small pixel classifier the project trains itself, to judge conditional samples.
//! - [`mmd`]: maximum mean discrepancy for low-dimensional samples.

pub mod classifier;
pub mod classify;
pub mod mmd;

pub use classifier::{ClassifierConfig, PixelClassifier};
pub use mmd::{mmd2, MmdEstimator};
