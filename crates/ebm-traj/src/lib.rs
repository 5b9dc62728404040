//! Trajectory modelling with energy-based models: the seed paper's claim that an EBM over transitions generates
//! diverse, feasible futures where a feed-forward predictor collapses to the mean, on a real physics engine.
//!
//! - [`scene`]: the planar pushing scene in rapier2d and its state vector;
//! - [`generate`]: the scripted policy with injected randomness, the seeded generator and its data file;
//! - [`judge`]: the simulator's feasibility check of any state (penetration, joint limits, speed bounds);
//! - [`feasible`]: the same constraints as a differentiable energy, added to the learned one at generation time;
//! - [`nets`]: the transition energy, the FC and Gaussian predictors, the normalisation they share;
//! - [`train`]: contrastive divergence for the energy (replay buffer, Langevin on the next state), likelihood
//!   training for the predictors;
//! - [`dagger`]: on-policy relabelling, the simulator's answers at states the energy's own rollouts visit;
//! - [`futures`]: rollouts from start states by each model and by the simulator, and the measures;
//! - [`figure`]: the top-down picture of futures;
//! - [`experiment`]: the config, the presets and the one-call experiment writing `trajectories.json`.

pub mod dagger;
pub mod experiment;
pub mod feasible;
pub mod figure;
pub mod futures;
pub mod generate;
pub mod judge;
pub mod nets;
pub mod scene;
pub mod train;

pub use generate::{generate, GenConfig, Trajectories};
pub use judge::{Judge, Violation, ViolationRates};
pub use scene::{Scene, SceneConfig, State, ACTION_DIM, STATE_DIM};

/// What can go wrong in a trajectory experiment; file errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum TrajError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] ebm_io::IoError),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Run(#[from] ebm_cd::CdError),
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, TrajError>;
