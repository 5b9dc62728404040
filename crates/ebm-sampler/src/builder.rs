//! The builder of composed energies: several energies, each with a weight and a condition of its own, combined
//! into one [`Sum`]: the positive-weight parts by AND ([`Sum`]) or OR ([`LogSumExp`]), each negative-weight part
//! added as `|w| * BoundedNot(E)`.
//!
//! Why a bounded NOT: `E_A - w E_B` for a plain negation is unbounded below whenever B is sharper than A, and a
//! network's energy is unbounded over the pixel box, so a sampler would gain by driving `E_B` ever higher, into
//! inputs B finds absurd rather than inputs A likes that B does not. [`BoundedNot`] is never negative, so the
//! composed density is at most the positive part's. Its margin defaults to B's mean energy on the chains' starts
//! ("no more likely under B than noise") and its softness to the standard deviation of those energies, both in
//! B's own energy units.

use crate::{BoundedNot, Energy, LogSumExp, Sum, Term};
use candle_core::{Result, Tensor};
use std::sync::Arc;

/// How the positive-weight parts of a composition combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeOp {
    /// `sum_i w_i E_i`: samples all parts agree on.
    And,
    /// `-log sum_i w_i exp(-E_i)`: samples any of the parts likes.
    Or,
}

impl ComposeOp {
    /// `and` or `or`.
    pub fn name(self) -> &'static str {
        match self {
            ComposeOp::And => "and",
            ComposeOp::Or => "or",
        }
    }
}

/// One energy of a composition.
#[derive(Clone)]
pub struct Part {
    pub energy: Arc<dyn Energy + Send + Sync>,
    /// Positive: an AND/OR part; negative: a NOT term of weight `|weight|`.
    pub weight: f64,
    /// The condition this part always sees, `[B, D]`, if any.
    pub cond: Option<Tensor>,
    /// For NOT terms: the energy above which the term stops acting (default: the mean on the starts).
    pub margin: Option<f64>,
}

/// The margin and softness of one NOT term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotBound {
    pub margin: f64,
    pub softness: f64,
}

/// The composed energy of `parts` and, per part, the bound its NOT term uses (`None` for positive parts): the
/// margin given or the part's mean energy on `x0`, the softness `not_softness` or the standard deviation of those
/// energies (at least 1e-6).
pub fn compose(
    parts: &[Part],
    op: ComposeOp,
    not_softness: Option<f64>,
    x0: &Tensor,
) -> Result<(Sum, Vec<Option<NotBound>>)> {
    if let Some(t) = not_softness {
        if !(t > 0.0 && t.is_finite()) {
            candle_core::bail!("the softness of NOT terms must be positive, got {t}");
        }
    }
    let term = |p: &Part, energy: Arc<dyn Energy + Send + Sync>, w: f64| {
        let t = Term::new(energy, w);
        match &p.cond {
            Some(c) => t.with_cond(c.clone()),
            None => t,
        }
    };
    let positive: Vec<Term> =
        parts.iter().filter(|p| p.weight > 0.0).map(|p| term(p, p.energy.clone(), p.weight)).collect();
    if positive.is_empty() {
        candle_core::bail!("a composition needs at least one model with a positive weight");
    }
    let pos: Arc<dyn Energy + Send + Sync> = match op {
        ComposeOp::And => Arc::new(Sum::new(positive)),
        ComposeOp::Or => Arc::new(LogSumExp::new(positive)),
    };
    let mut terms = vec![Term::new(pos, 1.0)];
    let mut bounds = Vec::new();
    for p in parts {
        if p.weight > 0.0 {
            bounds.push(None);
            continue;
        }
        let e0: Vec<f64> = p.energy.energy(x0, p.cond.as_ref())?.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
        let m0 = e0.iter().sum::<f64>() / e0.len() as f64;
        let sd = (e0.iter().map(|e| (e - m0).powi(2)).sum::<f64>() / e0.len() as f64).sqrt();
        let b = NotBound { margin: p.margin.unwrap_or(m0), softness: not_softness.unwrap_or(sd.max(1e-6)) };
        bounds.push(Some(b));
        terms.push(term(p, Arc::new(BoundedNot::new(p.energy.clone(), b.margin, b.softness)), -p.weight));
    }
    Ok((Sum::new(terms), bounds))
}
