//! Hot per-step kernels for energy-based models, as candle custom ops.
//!
//! - [`philox`]: the counter-based generator (Philox 4x32-10) that keys every noise value by
//!   (seed, step, element), so CPU threads and GPU lanes draw identical numbers.
//! - [`rng`]: a seeded host-side stream built on it, whose state fits in a checkpoint.
//! - [`langevin`]: the fused Langevin update (noise, clipped gradient step, clamp, mask) in one pass.

pub mod langevin;
pub mod philox;
pub mod rng;

pub use langevin::{add_noise_, langevin_update, langevin_update_, Clip, LangevinUpdate, NoiseOrder};
pub use rng::{Rng, RngState};
