//! Composition of energies: weighted sums (products of experts, "AND"), negation ("NOT") and log-sum-exp
//! mixtures ("OR"). Each composite is itself an [`Energy`] and computes its gradient from its parts' own
//! `energy_and_grad`, so fast paths of the parts carry over.

use crate::Energy;
use candle_core::{Result, Tensor, D};
use std::sync::Arc;

/// One part of a composite: an energy, its weight, and optionally a condition of its own (which overrides the
/// condition the composite is called with).
#[derive(Clone)]
pub struct Term {
    pub energy: Arc<dyn Energy + Send + Sync>,
    pub weight: f64,
    pub cond: Option<Tensor>,
}

impl Term {
    pub fn new(energy: Arc<dyn Energy + Send + Sync>, weight: f64) -> Self {
        Self { energy, weight, cond: None }
    }

    /// This term always sees `cond`, whatever the composite is called with.
    pub fn with_cond(mut self, cond: Tensor) -> Self {
        self.cond = Some(cond);
        self
    }

    fn cond<'a>(&'a self, outer: Option<&'a Tensor>) -> Option<&'a Tensor> {
        self.cond.as_ref().or(outer)
    }
}

/// `E(x) = sum_i w_i E_i(x)`: the product of experts `prod_i p_i(x)^{w_i}` (the paper's "Energy A + Energy B").
#[derive(Clone, Default)]
pub struct Sum {
    pub terms: Vec<Term>,
}

impl Sum {
    pub fn new(terms: Vec<Term>) -> Self {
        Self { terms }
    }
}

impl Energy for Sum {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let mut acc: Option<Tensor> = None;
        for t in &self.terms {
            let e = (t.energy.energy(x, t.cond(cond))? * t.weight)?;
            acc = Some(match acc {
                None => e,
                Some(a) => (a + e)?,
            });
        }
        match acc {
            Some(a) => Ok(a),
            None => Tensor::zeros(x.dims()[0], x.dtype(), x.device()),
        }
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let mut e_acc = Tensor::zeros(x.dims()[0], x.dtype(), x.device())?;
        let mut g_acc = x.zeros_like()?;
        for t in &self.terms {
            let (e, g) = t.energy.energy_and_grad(x, t.cond(cond))?;
            e_acc = (e_acc + (e * t.weight)?)?;
            g_acc = (g_acc + (g * t.weight)?)?;
        }
        Ok((e_acc, g_acc))
    }
}

/// `-E(x)`. On its own it is not normalisable for most energies; use it inside a [`Sum`] with a weight below the
/// other terms' (or on a bounded energy) so that the composite stays bounded below.
#[derive(Clone)]
pub struct Neg<E>(pub E);

impl<E: Energy> Energy for Neg<E> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.0.energy(x, cond)?.neg()
    }
    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (e, g) = self.0.energy_and_grad(x, cond)?;
        Ok((e.neg()?, g.neg()?))
    }
}

/// A bounded negation for "A AND NOT B": `E(x) = tau * softplus((margin - E_B(x)) / tau)`.
///
/// Where `E_B` is well below `margin` (B is confident) this is `margin - E_B(x)` up to `tau * ln 2`, so with weight
/// `w` in a [`Sum`] it contributes `-w dE_B/dx` to the gradient, as [`Neg`] would, and pushes samples out of B's
/// high-density region. Where `E_B` rises above `margin` it fades to 0 with its gradient (the factor is
/// `sigmoid((margin - E_B)/tau)`), so the sampler gains nothing by making B's energy ever larger: it cannot run off to
/// inputs that B merely finds absurd. The term is never negative, so `exp(-E_A - w * NotB) <= exp(-E_A)`: the
/// composite is normalisable whenever the positive part is, whatever `w > 0`.
#[derive(Clone)]
pub struct BoundedNot {
    pub energy: Arc<dyn Energy + Send + Sync>,
    /// The energy of B above which B is no longer "confident" and the term stops acting.
    pub margin: f64,
    /// The width `tau > 0` of the soft transition (in energy units); as it goes to 0 the term becomes the hinge
    /// `max(0, margin - E_B)`.
    pub softness: f64,
}

impl BoundedNot {
    /// Bounded negation of `energy` with the given margin and softness.
    pub fn new(energy: Arc<dyn Energy + Send + Sync>, margin: f64, softness: f64) -> Self {
        Self { energy, margin, softness }
    }

    /// `z = (margin - E_B) / tau`, checking the softness.
    fn z(&self, e: &Tensor) -> Result<Tensor> {
        if !(self.softness > 0.0 && self.softness.is_finite() && self.margin.is_finite()) {
            candle_core::bail!(
                "BoundedNot needs a finite margin and a positive softness, got margin {} and softness {}",
                self.margin,
                self.softness
            );
        }
        (e.neg()? + self.margin)? / self.softness
    }

    /// `tau * softplus(z)`, computed without overflow as `tau * (max(z, 0) + ln(1 + exp(-|z|)))`.
    fn value(&self, z: &Tensor) -> Result<Tensor> {
        let sp = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        sp * self.softness
    }
}

impl Energy for BoundedNot {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let z = self.z(&self.energy.energy(x, cond)?)?;
        self.value(&z)
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (e, g) = self.energy.energy_and_grad(x, cond)?;
        let z = self.z(&e)?;
        // d/dx tau softplus((m - E)/tau) = -sigmoid(z) dE/dx; 1 / (1 + exp(-z)) saturates cleanly at 0 and 1
        let s = (z.neg()?.exp()? + 1.0)?.recip()?;
        let grad = g.broadcast_mul(&crate::energy::per_sample(&s.neg()?, x)?.to_dtype(g.dtype())?)?;
        Ok((self.value(&z)?, grad))
    }
}

/// `E(x) = -log sum_i w_i exp(-E_i(x))`: the mixture with weights `w_i` of the parts' densities ("OR").
/// Weights must be positive; they need not sum to one (that only shifts the energy).
#[derive(Clone, Default)]
pub struct LogSumExp {
    pub terms: Vec<Term>,
}

impl LogSumExp {
    pub fn new(terms: Vec<Term>) -> Self {
        Self { terms }
    }

    /// `[B, n]` of `log w_i - E_i(x)`, and each part's gradient when asked for.
    fn parts(&self, x: &Tensor, cond: Option<&Tensor>, grads: bool) -> Result<(Tensor, Vec<Tensor>)> {
        if self.terms.is_empty() {
            candle_core::bail!("LogSumExp needs at least one term");
        }
        let mut cols = Vec::with_capacity(self.terms.len());
        let mut gs = Vec::new();
        for t in &self.terms {
            if t.weight <= 0.0 {
                candle_core::bail!("LogSumExp weights must be positive, got {}", t.weight);
            }
            let e = if grads {
                let (e, g) = t.energy.energy_and_grad(x, t.cond(cond))?;
                gs.push(g);
                e
            } else {
                t.energy.energy(x, t.cond(cond))?
            };
            cols.push((e.neg()? + t.weight.ln())?);
        }
        Ok((Tensor::stack(&cols, 1)?, gs))
    }
}

fn logsumexp_rows(a: &Tensor) -> Result<Tensor> {
    let m = a.max_keepdim(D::Minus1)?;
    let s = a.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()?;
    (s + m)?.squeeze(D::Minus1)
}

impl Energy for LogSumExp {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let (a, _) = self.parts(x, cond, false)?;
        logsumexp_rows(&a)?.neg()
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (a, gs) = self.parts(x, cond, true)?;
        let lse = logsumexp_rows(&a)?;
        // dE/dx = sum_i softmax_i(a) dE_i/dx
        let resp = a.broadcast_sub(&lse.unsqueeze(1)?)?.exp()?;
        let mut g = x.zeros_like()?;
        for (i, gi) in gs.iter().enumerate() {
            let r = crate::energy::per_sample(&resp.narrow(1, i, 1)?, x)?;
            g = (g + gi.broadcast_mul(&r)?)?;
        }
        Ok((lse.neg()?, g))
    }
}
