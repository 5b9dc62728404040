//! Hot per-step kernels for energy-based models, as candle custom ops.
//!
//! - [`philox`]: the counter-based generator (Philox 4x32-10) that keys every noise value by
//!   (seed, step, element), so CPU threads and GPU lanes draw identical numbers.
//! - [`rng`]: a seeded host-side stream built on it, whose state fits in a checkpoint.
//! - [`langevin`]: the fused Langevin update (noise, clipped gradient step, clamp, mask) in one pass.
//! - [`runtime`]: allocator and thread-count settings for programs that run the kernels.
//! - [`conv`]: fast f32 CPU convolutions (Winograd F(4x4, 3x3) and im2col on a packed GEMM microkernel) as
//!   custom ops whose backward pass computes only the gradients the graph needs.

pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod langevin;
pub mod philox;
pub mod rng;
pub mod runtime;

pub use conv::{conv2d, conv2d_with, ConvAlgo, ConvGeom, ConvPad};
pub use langevin::{add_noise_, langevin_update, langevin_update_, Clip, LangevinUpdate, NoiseOrder};
pub use rng::{Rng, RngState};
