//! The [`Energy`] trait: anything that maps a batch (and an optional condition) to one scalar energy per sample.

use candle_core::{Result, Tensor, Var};

/// An energy function `E(x, c)`: low energy means likely. `x` is a batch `[B, ...]`; the result is `[B]`.
///
/// Implement [`Energy::energy`]; override [`Energy::energy_and_grad`] when a faster input gradient than candle's
/// autograd is available (an analytic one, or a network with a gradient-only backward pass).
pub trait Energy {
    /// Per-sample energies, shape `[B]`.
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor>;

    /// Per-sample energies `[B]` and their gradient with respect to `x` (the gradient of the *sum*, so each
    /// sample's slice is the gradient of its own energy). The default uses candle's autograd.
    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        autograd_energy_and_grad(self, x, cond)
    }

    /// The energies `[B, classes]` of every input under every class from a single pass, for a model whose
    /// classes share one (a network with a logit head, `E(x, y) = -logit_y(x)`). `None`: the classes need one
    /// conditioned pass each, which the caller then runs.
    fn class_energies_at_once(&self, _x: &Tensor, _classes: usize) -> Option<Result<Tensor>> {
        None
    }
}

/// The input gradient by candle's autograd, for any [`Energy`].
pub fn autograd_energy_and_grad<E: Energy + ?Sized>(
    e: &E,
    x: &Tensor,
    cond: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let v = Var::from_tensor(&x.detach())?;
    let energies = e.energy(v.as_tensor(), cond)?;
    check_energy_shape(&energies, x)?;
    let grads = energies.sum_all()?.backward()?;
    let g = match grads.get(v.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?, // the energy does not depend on x
    };
    Ok((energies.detach(), g))
}

/// `v`, one value per sample (`[B]` or `[B, 1]`), shaped `[B, 1, ..., 1]` to broadcast over the batch `like`.
pub(crate) fn per_sample(v: &Tensor, like: &Tensor) -> Result<Tensor> {
    let shape: Vec<usize> = std::iter::once(like.dims()[0]).chain(std::iter::repeat_n(1, like.rank() - 1)).collect();
    v.reshape(shape.as_slice())
}

/// Errors unless `energies` is `[B]` for a batch `x` of `B` samples.
pub fn check_energy_shape(energies: &Tensor, x: &Tensor) -> Result<()> {
    let b = x.dims().first().copied().unwrap_or(0);
    if energies.dims() != [b] {
        candle_core::bail!("an energy must return shape [{b}] for a batch of {b}, got {:?}", energies.dims());
    }
    Ok(())
}

impl<F> Energy for F
where
    F: Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
{
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self(x, cond)
    }
}

impl<E: Energy + ?Sized> Energy for std::sync::Arc<E> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        (**self).energy(x, cond)
    }
    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        (**self).energy_and_grad(x, cond)
    }
    fn class_energies_at_once(&self, x: &Tensor, classes: usize) -> Option<Result<Tensor>> {
        (**self).class_energies_at_once(x, classes)
    }
}
