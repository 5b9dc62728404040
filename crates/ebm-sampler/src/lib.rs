//! Langevin sampling for energy-based models on candle.
//!
//! An energy-based model assigns a scalar energy `E(x)` to each input; its samples come from Langevin dynamics,
//! noisy gradient descent on the energy. This crate gives you:
//!
//! - [`Energy`]: the one trait a model implements (closures implement it too);
//! - [`Langevin`] (unadjusted, with the IGEBM knobs: step size, noise, gradient clipping, clamping, temperature,
//!   masks for inpainting, early stopping, trajectories and per-step diagnostics) and [`Mala`]
//!   (Metropolis-adjusted, exact for the target, reporting its acceptance rate);
//! - composition: [`Sum`] (product of experts), [`Neg`], [`BoundedNot`] (negation that stays bounded below) and
//!   [`LogSumExp`] (mixture), each itself an [`Energy`]; [`builder::compose`] builds AND/OR/NOT of weighted,
//!   conditioned parts;
//! - chain starts ([`starts`]): uniform noise, replay-buffer mixing ([`starts::ChainPool`]), chains under every
//!   class label, long runs in chunks.
//!
//! Noise is drawn by a counter-based generator keyed by (seed, step, element), so a chain is reproducible from its
//! seed whatever the number of threads.
//!
//! ```
//! use candle_core::{Device, Result, Tensor};
//! use ebm_sampler::{Energy, Mala};
//!
//! # fn main() -> Result<()> {
//! // A standard 2D Gaussian: E(x) = |x|^2 / 2.
//! let gauss = |x: &Tensor, _c: Option<&Tensor>| -> Result<Tensor> { (x.sqr()?.sum(1)? * 0.5) };
//! let x0 = Tensor::zeros((2000, 2), candle_core::DType::F32, &Device::Cpu)?;
//! let chain = Mala::new(0.5, 100).run(&gauss, &x0, None, None, 42)?;
//! let var = chain.x.sqr()?.mean_all()?.to_scalar::<f32>()?;
//! assert!((var - 1.0).abs() < 0.15, "variance {var}");
//! assert!(chain.accept_rate.unwrap() > 0.5);
//! # Ok(())
//! # }
//! ```

pub mod builder;
mod compose;
mod energy;
mod sampler;
pub mod starts;

pub use compose::{BoundedNot, LogSumExp, Neg, Sum, Term};
pub use ebm_kernels::{Clip, NoiseOrder};
pub use energy::{autograd_energy_and_grad, check_energy_shape, Energy};
pub use sampler::{Chain, EarlyStop, Langevin, Mala, Record, StepStats};
pub use starts::{one_hot, Borrowed, ChainPool};
