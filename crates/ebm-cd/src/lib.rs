//! Training energy-based models by contrastive divergence, as the IGEBM does: run configs and their presets, the
//! CD + L2 step, the official Adam, the complete training state and its checkpoint, run folders, and the one
//! training loop every run goes through ([`driver::run`]).
//!
//! - [`config`]: [`RunConfig`], one TOML file that says everything a run does; [`presets`]: the built-in ones.
//! - [`cd`]: one contrastive-divergence iteration's parts (negatives with the weights frozen, the loss, the update).
//! - [`optim`]: the official Adam (beta1 0, per-element clip) with a state that can be saved.
//! - [`state`]: [`TrainState`], everything a run needs to continue exactly, saved atomically.
//! - [`driver`]: the loop (divergence rollback, metrics, figures, checkpoints) over any [`driver::Trainer`].
//! - [`image`], [`toy`]: the image and 2D iterations.
//! - [`run_dir`]: the run folder; [`run`]: a run from start to end, and opening a finished one ([`Run`]).
//! - [`figures`]: curves, replay-buffer grids, 2D densities.
//!
//! Errors are [`CdError`]s: typed where a caller acts on the case (config, checkpoint, run folder, divergence).

pub mod cd;
pub mod config;
pub mod driver;
pub mod error;
pub mod figures;
pub mod image;
pub mod optim;
pub mod presets;
pub mod progress;
pub mod run;
pub mod run_dir;
pub mod state;
pub mod toy;

pub use config::RunConfig;
pub use error::{CdError, Context, Result};
pub use run::{Run, Start};
pub use state::TrainState;
