//! Measurements of energy-based models: every evaluation the IGEBM paper reports.
//!
//! - [`classify`]: energy-based classification (`argmin_y E(x, y)`), accuracy, confusion.
//! - [`robust`]: the same classifier with the paper's Langevin refinement of each class copy, and PGD attacks on it
//!   (L-infinity and L2, projected onto the ball around the clean input, also through the refinement).
//! - [`ood`]: out-of-distribution scores `-E(x)` (or `-min_y E(x, y)`), AUROC with ties, and the paper's synthetic
//!   negative sets (uniform noise, constant images, interpolations).
//! - [`complete`]: masked Langevin completion of boxes, halves, random pixels and salt-and-pepper, with the
//!   masked-region error against the original and against a trivial fill.
//! - [`inception`]: the FID Inception-v3 of pytorch-fid, in candle; the Inception Score.
//! - [`frechet`]: the Fréchet distance between Gaussians fitted to features (FID, classifier-feature distance),
//!   computed through symmetric eigenproblems ([`linalg`]).
//! - [`classifier`]: a small pixel classifier the project trains itself, to judge conditional samples and give
//!   features where no pretrained network can be had.
//! - [`ais`]: annealed importance sampling for `log Z`, with the forward (lower) and reverse (upper) estimates.
//! - [`probe`]: scale, position, shape and orientation of a sprite from the moments of its foreground (judges the
//!   samples of models conditioned on dSprites-like factors).
//! - [`mmd`]: maximum mean discrepancy for low-dimensional samples.
//! - [`convert`]: resizing and channel conversion of image batches.
//! - [`factors`]: the probe's verdict on samples of models conditioned on continuous factors.
//! - [`end_of_run`]: what a training run measures when it ends (held-out accuracy, judged samples, MMD).
//! - [`pipelines`]: every evaluation of a trained image model as a typed report with its picture (what
//!   `ebm-train eval` runs).
//! - [`figures`]: pictures of tensors (image grids, 2D densities, histograms).

pub mod ais;
pub mod classifier;
pub mod classify;
pub mod complete;
pub mod convert;
pub mod end_of_run;
pub mod error;
pub mod factors;
pub mod figures;
pub mod frechet;
pub mod inception;
pub mod linalg;
pub mod mmd;
pub mod ood;
pub mod pipelines;
pub mod probe;
pub mod robust;

pub use classifier::{ClassifierConfig, ClassifierInfo, PixelClassifier};
pub use error::{EvalError, Result};
pub use frechet::{frechet_distance, frechet_from_features, FrechetStats, Gaussian};
pub use mmd::{mmd2, MmdEstimator};
pub use ood::auroc;
pub use robust::{EnergyClassifier, Norm, Pgd, Refinement, Through};
