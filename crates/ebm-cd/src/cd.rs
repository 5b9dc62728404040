//! One iteration of contrastive divergence, shared by every data kind: refresh the spectral norms, run the
//! negative chains with the weights frozen, then the loss `ml (mean E+ - mean E-) + l2 (mean E+^2 + mean E-^2)`
//! and one optimizer step.

use crate::optim::{grad_norm, Adam};
use candle_core::{Result, Tensor};
use ebm_models::EnergyNet;
use ebm_sampler::{Energy, Langevin};

/// What one iteration measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterStats {
    pub e_pos: f32,
    pub e_neg: f32,
    pub loss: f32,
    pub grad_norm: f32,
}

/// The loss of the official code (reference 1.1) on positive and negative energies `[B]`.
pub fn cd_loss(e_pos: &Tensor, e_neg: &Tensor, ml_coeff: f64, l2_coeff: f64) -> Result<Tensor> {
    let ml = (e_pos.mean_all()? - e_neg.mean_all()?)?;
    let l2 = (e_pos.sqr()?.mean_all()? + e_neg.sqr()?.mean_all()?)?;
    (ml * ml_coeff)? + (l2 * l2_coeff)?
}

/// Runs the negative chains: weights frozen (input gradients only), one power iteration done beforehand.
pub fn negatives(
    model: &mut EnergyNet,
    sampler: &Langevin,
    x_init: &Tensor,
    cond: Option<&Tensor>,
    seed: u64,
) -> Result<Tensor> {
    model.refresh()?;
    model.set_frozen(true);
    let chain = sampler.run(&*model, x_init, cond, None, seed);
    model.set_frozen(false);
    Ok(chain?.x)
}

/// The mean cross-entropy of `softmax(-E(x, .) / temperature)` against the labels `y` (`[B]`, integers below
/// `classes`): the conditional energies read as logits (JEM's `p(y | x)` at temperature 1; the hybrid's
/// `train.classify_temperature`). Differentiable in the energy's parameters.
pub fn cross_entropy<E: Energy + ?Sized>(
    energy: &E,
    x: &Tensor,
    y: &Tensor,
    classes: usize,
    temperature: f64,
) -> Result<Tensor> {
    let e = ebm_eval::classify::class_energies(energy, x, classes)?;
    cross_entropy_of(&(e / temperature)?, y)
}

/// The mean cross-entropy of `softmax(-energies)` (`[B, C]`) against the labels `y` (`[B]`).
pub fn cross_entropy_of(energies: &Tensor, y: &Tensor) -> Result<Tensor> {
    let logits = energies.neg()?;
    let m = logits.max_keepdim(1)?.detach();
    let lse = (logits.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + &m)?; // [B, 1]
    let onehot = ebm_sampler::one_hot(y, energies.dims()[1])?.to_dtype(lse.dtype())?;
    (lse - (logits * onehot)?.sum_keepdim(1)?)?.mean_all()
}

/// One backward pass of `loss` and a step of each optimizer in `opts`; returns the gradient norm over all of
/// their parameters.
pub fn step(loss: &Tensor, opts: &mut [&mut Adam]) -> Result<f32> {
    let grads = loss.backward()?;
    let params: Vec<_> = opts.iter().flat_map(|o| o.params().iter().cloned()).collect();
    let gn = grad_norm(&grads, &params)?;
    for opt in opts.iter_mut() {
        opt.step(&grads)?;
    }
    Ok(gn)
}

fn scalar(t: &Tensor) -> Result<f32> {
    t.mean_all()?.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()
}

/// The parameter update from positives and (already sampled) negatives: the loss on `energy`'s values, one
/// backward pass, and a step of each optimizer in `opts` (one per model the energy is made of; each steps its own
/// parameters). A model uses the normalised weights of its last refresh, with their gradient paths to the raw
/// weights. The gradient norm is over the parameters of all `opts` together. `extra` is a loss term added before
/// the backward pass (the hybrid's cross-entropy).
#[allow(clippy::too_many_arguments)] // positives, negatives and the two loss coefficients, each named at the call
pub fn update<E: Energy + ?Sized>(
    energy: &E,
    opts: &mut [&mut Adam],
    x_pos: &Tensor,
    cond_pos: Option<&Tensor>,
    x_neg: &Tensor,
    cond_neg: Option<&Tensor>,
    ml_coeff: f64,
    l2_coeff: f64,
    extra: Option<Tensor>,
) -> Result<IterStats> {
    let e_pos = energy.energy(x_pos, cond_pos)?;
    let e_neg = energy.energy(&x_neg.detach(), cond_neg)?;
    let loss = cd_loss(&e_pos, &e_neg, ml_coeff, l2_coeff)?;
    let loss = match extra {
        Some(t) => (loss + t)?,
        None => loss,
    };
    let gn = step(&loss, opts)?;
    Ok(IterStats { e_pos: scalar(&e_pos)?, e_neg: scalar(&e_neg)?, loss: scalar(&loss)?, grad_norm: gn })
}
