//! Energy-based classification under attack (reference 4.3): the classifier `argmax_y -E(x~_y, y)`, optionally
//! with each class copy `x~_y` refined by a few Langevin steps under its own class (the paper's defence), and PGD
//! attacks on it under L-infinity or L2.
//!
//! # The attack, done right
//! - Every iterate is projected onto the intersection of the epsilon ball around the **clean** input and `[0, 1]`
//!   (the official L2 attack bounds only each step's change, reference 8.11). For L-infinity the clamp to
//!   `[max(0, x0 - eps), min(1, x0 + eps)]` is the exact projection; for L2 the step is projected onto the ball and
//!   then clamped to `[0, 1]`, which can only shorten the perturbation, so the iterate stays feasible.
//! - Random start: uniform in the L-infinity cube, or uniform in the L2 ball (direction `N(0, I)` normalised, radius
//!   `eps * U^(1/d)`).
//! - Steps: `x += alpha sign(g)` (L-infinity) or `x += alpha g / |g|` (L2) on the cross-entropy of the softmax of the
//!   logits `-E`.
//!
//! # Attacking the defence ([`Through`])
//! The official attack differentiates the classifier **without** the refinement ([`Through::Ignore`]), so a defence
//! could be credited for gradients that do not describe the function it computes (obfuscated gradients, Athalye et
//! al. 2018). [`Through::Bpda`] takes the gradient of the loss at the refined copies and passes it straight back to
//! the input (the backward pass of the refinement approximated by the identity). [`Through::Unroll`] differentiates
//! through the unrolled Langevin steps: each step `y = x~ + noise`, `z = y - lambda clip(grad E(y))`,
//! `x~' = clamp(z, lo, hi)` has the vector-Jacobian product `v -> u - lambda H(y) (D u)` with `u = v` where the
//! clamp is inactive, `D` the mask of unclipped gradient entries and `H` the Hessian of the energy; the
//! Hessian-vector product is a central difference of two input gradients, `H w ~ (g(y + h w^) - g(y - h w^)) /
//! 2h |w|`, which needs no second-order autograd. (For piecewise-linear networks, leaky-ReLU ones included, `H` is
//! zero almost everywhere and the exact unrolled Jacobian is the clamp mask alone; the difference quotient then
//! measures the curvature smoothed over `h`.) Entries clamped to the box bounds `x0 +- r` pass their gradient to the
//! input, which those bounds depend on.
//!
//! The attacker's refinement noise is drawn from seeds other than the defender's, which is realistic (the
//! defender's randomness is not known in advance); evaluation always uses the defender's seed.

use candle_core::{DType, Device, Result, Tensor, Var};
use ebm_kernels::{Clip, Rng};
use ebm_sampler::Energy;
use serde::Serialize;

/// Which norm bounds the perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    Linf,
    L2,
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "linf" | "l-inf" | "inf" | "li" => Ok(Norm::Linf),
            "l2" => Ok(Norm::L2),
            _ => Err(format!("unknown norm `{s}` (use linf or l2)")),
        }
    }
}

/// What the attacker ascends: the cross-entropy of `softmax(-E(x, .))`, or the margin `E(x, y) - min_{c != y}
/// E(x, c)` (Carlini and Wagner's), which does not depend on the scale of the energies: a classifier whose
/// softmax is nearly flat or saturated cannot hide its gradient from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttackLoss {
    #[default]
    Ce,
    Margin,
}

impl std::str::FromStr for AttackLoss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ce" | "cross-entropy" => Ok(AttackLoss::Ce),
            "margin" | "cw" => Ok(AttackLoss::Margin),
            _ => Err(format!("unknown attack loss `{s}` (use ce or margin)")),
        }
    }
}

/// The Langevin refinement of each class copy before scoring (the paper's defence).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Refinement {
    pub steps: usize,
    pub step_size: f32,
    pub noise_std: f32,
    #[serde(skip)]
    pub clip: Clip,
    /// Each refined copy stays within `[x - radius, x + radius]` (and `[0, 1]`); the official code uses 8/255.
    pub radius: f32,
}

impl Refinement {
    /// The official settings: step 10 on the gradient clipped to +-0.01, noise 0.005, box of 8/255.
    pub fn official(steps: usize) -> Self {
        Self { steps, step_size: 10.0, noise_std: 0.005, clip: Clip::Elementwise(0.01), radius: 8.0 / 255.0 }
    }
}

/// How an attack differentiates a classifier that refines its input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Through {
    /// The gradient of the classifier without refinement (the official attack).
    Ignore,
    /// The gradient at the refined copies, passed back as if the refinement were the identity.
    Bpda,
    /// The gradient through the unrolled refinement, Hessian-vector products by central differences of step `h`.
    Unroll { h: f32 },
    /// [`Through::Bpda`] averaged over `samples` draws of the refinement's noise (expectation over transformation,
    /// Athalye et al. 2018): the attack on a randomised defence.
    BpdaEot { samples: usize },
}

/// `argmax_y -E(x~_y, y)` over `classes` classes, with optional [`Refinement`].
pub struct EnergyClassifier<'a, E: Energy + ?Sized> {
    pub energy: &'a E,
    pub classes: usize,
    pub refine: Option<Refinement>,
}

/// What the unrolled backward pass needs of one refinement step.
struct StepTrace {
    y: Tensor,
    /// 1 where the gradient was not clipped.
    unclipped: Tensor,
    /// 1 where `z` lay strictly inside the box.
    inside: Tensor,
    /// 1 where `z` was clamped to a bound `x0 +- r` (not to 0 or 1): the gradient there flows to `x0`.
    to_input: Tensor,
}

fn one_hot(b: usize, c: usize, classes: usize, dev: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; b * classes];
    for i in 0..b {
        v[i * classes + c] = 1.0;
    }
    Tensor::from_vec(v, (b, classes), dev)
}

/// Per-sample `[B, 1, ...]` view of a `[B]` vector, for broadcasting over an image batch.
fn per_sample(v: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![like.dims()[0]];
    shape.extend(std::iter::repeat_n(1, like.rank() - 1));
    v.reshape(shape.as_slice())?.broadcast_as(like.shape())
}

fn clip_grad(g: &Tensor, clip: Clip) -> Result<(Tensor, Tensor)> {
    match clip {
        Clip::None => Ok((g.clone(), g.ones_like()?)),
        Clip::Elementwise(c) => {
            let c = c as f64;
            Ok((g.clamp(-c, c)?, g.abs()?.lt(c)?.to_dtype(g.dtype())?))
        }
        Clip::SampleL2(c) => {
            let n = g.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?;
            let s = (n / c as f64)?.maximum(1.0)?.recip()?;
            // the Jacobian of the per-sample rescaling is not modelled: treated as a constant factor
            Ok((g.broadcast_mul(&per_sample(&s, g)?)?, per_sample(&s, g)?))
        }
    }
}

impl<E: Energy + ?Sized> EnergyClassifier<'_, E> {
    /// The refined copy of `x` under class `c` (and its trace when `keep`).
    fn refine_class(
        &self,
        x: &Tensor,
        c: usize,
        r: &Refinement,
        seed: u64,
        keep: bool,
    ) -> Result<(Tensor, Vec<StepTrace>)> {
        let b = x.dims()[0];
        let cond = one_hot(b, c, self.classes, x.device())?;
        let lo = (x - r.radius as f64)?.maximum(0.0)?;
        let hi = (x + r.radius as f64)?.minimum(1.0)?;
        let lo_from_x = (x - r.radius as f64)?.gt(0.0)?.to_dtype(DType::F32)?;
        let hi_from_x = (x + r.radius as f64)?.lt(1.0)?.to_dtype(DType::F32)?;
        let mut xt = x.clone();
        let mut trace = Vec::new();
        let chain_seed = seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..r.steps {
            let y = if r.noise_std != 0.0 {
                let n = ebm_kernels::langevin::noise_tensor(x.dims(), chain_seed, k as u64, x.device())?;
                (&xt + (n * r.noise_std as f64)?)?
            } else {
                xt.clone()
            };
            let (_, g) = self.energy.energy_and_grad(&y, Some(&cond))?;
            let g = g.to_dtype(DType::F32)?;
            let (gc, unclipped) = clip_grad(&g, r.clip)?;
            let z = (&y - (gc * r.step_size as f64)?)?;
            xt = z.maximum(&lo)?.minimum(&hi)?;
            if keep {
                let inside = z.gt(&lo)?.mul(&z.lt(&hi)?)?.to_dtype(DType::F32)?;
                let at_lo = z.le(&lo)?.to_dtype(DType::F32)?.mul(&lo_from_x)?;
                let at_hi = z.ge(&hi)?.to_dtype(DType::F32)?.mul(&hi_from_x)?;
                trace.push(StepTrace { y, unclipped, inside, to_input: (at_lo + at_hi)? });
            }
        }
        Ok((xt, trace))
    }

    /// Per-class energies `[B, classes]` of the (refined) copies of `x`.
    pub fn energies(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let b = x.dims()[0];
        let mut cols = Vec::with_capacity(self.classes);
        for c in 0..self.classes {
            let xc = match &self.refine {
                Some(r) if r.steps > 0 => self.refine_class(x, c, r, seed, false)?.0,
                _ => x.clone(),
            };
            let cond = one_hot(b, c, self.classes, x.device())?;
            cols.push(self.energy.energy(&xc, Some(&cond))?.to_dtype(DType::F32)?);
        }
        Tensor::stack(&cols, 1)
    }

    /// Predictions in batches of `batch`, with the refinement noise of `seed`.
    pub fn predict(&self, x: &Tensor, seed: u64, batch: usize) -> Result<Vec<u32>> {
        let n = x.dims()[0];
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let len = batch.max(1).min(n - start);
            out.extend(self.energies(&x.narrow(0, start, len)?, seed ^ start as u64)?.argmin(1)?.to_vec1::<u32>()?);
            start += len;
        }
        Ok(out)
    }

    /// `H(y) w` per sample by a central difference of input gradients.
    fn hvp(&self, y: &Tensor, w: &Tensor, cond: &Tensor, h: f32) -> Result<Tensor> {
        let norms = w.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?; // [B]
        let safe = norms.maximum(1e-30)?;
        let unit = w.broadcast_div(&per_sample(&safe, w)?)?;
        let step = (unit * h as f64)?;
        let (_, gp) = self.energy.energy_and_grad(&(y + &step)?, Some(cond))?;
        let (_, gm) = self.energy.energy_and_grad(&(y - &step)?, Some(cond))?;
        let d = ((gp.to_dtype(DType::F32)? - gm.to_dtype(DType::F32)?)? / (2.0 * h as f64))?;
        d.broadcast_mul(&per_sample(&norms, w)?)
    }

    /// `x` as a variable and its energies `[B, classes]` from one pass, for a model whose classes share one.
    fn shared_pass(&self, x: &Tensor) -> Result<Option<(Var, Tensor)>> {
        let v = Var::from_tensor(&x.detach())?;
        let e = self.energy.class_energies_at_once(v.as_tensor(), self.classes).transpose()?;
        Ok(e.map(|e| (v, e)))
    }

    /// The gradient of the summed cross-entropy `sum_i CE(softmax(-E(x~_i, .)), y_i)` with respect to `x`, the
    /// per-sample losses, and the predictions at `x` (of the classifier the gradient describes).
    pub fn loss_grad(
        &self,
        x: &Tensor,
        labels: &[u32],
        through: Through,
        loss: AttackLoss,
        seed: u64,
    ) -> Result<(Tensor, Vec<f64>, Vec<u32>)> {
        let b = x.dims()[0];
        if labels.len() != b {
            candle_core::bail!("{b} inputs but {} labels", labels.len());
        }
        let refine = match (&self.refine, through) {
            (Some(r), Through::Bpda | Through::BpdaEot { .. } | Through::Unroll { .. }) if r.steps > 0 => Some(*r),
            _ => None,
        };
        let keep = matches!(through, Through::Unroll { .. });
        // a logit-head model scores every class in one pass: one backward pass of the weighted energies below
        let shared = if refine.is_none() { self.shared_pass(x)? } else { None };
        let mut energies = Vec::with_capacity(self.classes);
        let mut grads = Vec::with_capacity(self.classes);
        let mut traces = Vec::with_capacity(self.classes);
        match &shared {
            Some((_, e)) => energies = e.t()?.to_dtype(DType::F64)?.to_vec2::<f64>()?,
            None => {
                for c in 0..self.classes {
                    let (xc, tr) = match &refine {
                        Some(r) => self.refine_class(x, c, r, seed, keep)?,
                        None => (x.clone(), vec![]),
                    };
                    let cond = one_hot(b, c, self.classes, x.device())?;
                    let (e, g) = self.energy.energy_and_grad(&xc, Some(&cond))?;
                    energies.push(e.to_dtype(DType::F64)?.to_vec1::<f64>()?);
                    grads.push(g.to_dtype(DType::F32)?);
                    traces.push(tr);
                }
            }
        }
        // softmax of -E per sample, in f64; d CE / d E_c = -(p_c - [c = y]), with 1 - p_y summed from the others
        let mut coef = vec![vec![0f32; b]; self.classes];
        let mut losses = vec![0f64; b];
        let mut pred = vec![0u32; b];
        for i in 0..b {
            let y = labels[i] as usize;
            if y >= self.classes {
                candle_core::bail!("label {y} at position {i} is outside 0..{}", self.classes);
            }
            let l: Vec<f64> = (0..self.classes).map(|c| -energies[c][i]).collect();
            pred[i] = (0..self.classes).max_by(|&a, &c| l[a].total_cmp(&l[c])).unwrap_or(0) as u32;
            match loss {
                AttackLoss::Ce => {
                    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = l.iter().map(|v| (v - m).exp()).sum();
                    let p: Vec<f64> = l.iter().map(|v| (v - m).exp() / z).collect();
                    losses[i] = m + z.ln() - l[y];
                    let others: f64 = (0..self.classes).filter(|&c| c != y).map(|c| p[c]).sum();
                    for c in 0..self.classes {
                        // d CE / d x = sum_c (p_c - [c = y]) * d(-E_c)/dx = sum_c coef_c * grad E_c
                        coef[c][i] = if c == y { others as f32 } else { -(p[c] as f32) };
                    }
                }
                AttackLoss::Margin => {
                    // the strongest other class: the lowest energy among c != y
                    let rival = (0..self.classes).filter(|&c| c != y).max_by(|&a, &c| l[a].total_cmp(&l[c]));
                    let rival = rival.unwrap_or(y);
                    losses[i] = l[rival] - l[y];
                    if rival != y {
                        coef[y][i] = 1.0;
                        coef[rival][i] = -1.0;
                    }
                }
            }
        }
        if let Some((v, e)) = shared {
            let flat: Vec<f32> = coef.concat();
            let w = Tensor::from_vec(flat, (self.classes, b), x.device())?.t()?.to_dtype(e.dtype())?;
            let grads = (e * w)?.sum_all()?.backward()?;
            let g = grads.get(v.as_tensor()).cloned().unwrap_or(x.zeros_like()?);
            return Ok((g.to_dtype(DType::F32)?, losses, pred));
        }
        let mut total: Option<Tensor> = None;
        for c in 0..self.classes {
            let a = Tensor::from_slice(&coef[c], b, x.device())?;
            let mut v = grads[c].broadcast_mul(&per_sample(&a, &grads[c])?)?;
            if let (Through::Unroll { h }, Some(r)) = (through, &refine) {
                let cond = one_hot(b, c, self.classes, x.device())?;
                let mut gx = v.zeros_like()?;
                for st in traces[c].iter().rev() {
                    gx = (gx + (&v * &st.to_input)?)?;
                    let u = (&v * &st.inside)?;
                    let w = (&u * &st.unclipped)?;
                    v = (&u - (self.hvp(&st.y, &w, &cond, h)? * r.step_size as f64)?)?;
                }
                v = (v + gx)?;
            }
            total = Some(match total {
                None => v,
                Some(t) => (t + v)?,
            });
        }
        let total = total.unwrap_or(x.zeros_like()?);
        Ok((total, losses, pred))
    }
}

/// One PGD attack's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pgd {
    pub norm: Norm,
    pub eps: f32,
    pub steps: usize,
    pub step_size: f32,
    pub random_start: bool,
    pub loss: AttackLoss,
}

fn norms(d: &[f32], per: usize, norm: Norm) -> Vec<f64> {
    d.chunks(per)
        .map(|s| match norm {
            Norm::Linf => s.iter().fold(0f64, |m, v| m.max(v.abs() as f64)),
            Norm::L2 => s.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt(),
        })
        .collect()
}

/// Projects `x` onto the `eps` ball (of `norm`) around `x0`, intersected with `[0, 1]`, sample by sample.
pub fn project(x: &mut [f32], x0: &[f32], per: usize, norm: Norm, eps: f32) {
    match norm {
        Norm::Linf => {
            for (v, o) in x.iter_mut().zip(x0) {
                *v = v.clamp((o - eps).max(0.0), (o + eps).min(1.0));
            }
        }
        Norm::L2 => {
            for (xs, os) in x.chunks_mut(per).zip(x0.chunks(per)) {
                let n = xs.iter().zip(os).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
                let s = if n > eps as f64 { eps as f64 / n } else { 1.0 };
                for (v, o) in xs.iter_mut().zip(os) {
                    *v = (o + ((*v - o) as f64 * s) as f32).clamp(0.0, 1.0);
                }
            }
        }
    }
}

/// PGD on `clf` from the clean images `x0` with true `labels`; returns the adversarial images. The attacker's
/// refinement noise (for [`Through::Bpda`] and [`Through::Unroll`]) is drawn from `seed`.
pub fn pgd<E: Energy + ?Sized>(
    clf: &EnergyClassifier<E>,
    x0: &Tensor,
    labels: &[u32],
    p: &Pgd,
    through: Through,
    seed: u64,
) -> Result<Tensor> {
    let shape = x0.dims().to_vec();
    let b = shape[0];
    let per = x0.elem_count() / b.max(1);
    let clean = x0.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if p.eps <= 0.0 || p.steps == 0 {
        return x0.to_dtype(DType::F32);
    }
    let mut rng = Rng::with_stream(seed, 0x9d6);
    let mut x = clean.clone();
    if p.random_start {
        match p.norm {
            Norm::Linf => {
                for v in x.iter_mut() {
                    *v += rng.uniform() * 2.0 * p.eps - p.eps;
                }
            }
            Norm::L2 => {
                for xs in x.chunks_mut(per) {
                    let dir: Vec<f64> = (0..per).map(|_| rng.normal_f64()).collect();
                    let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
                    let r = p.eps as f64 * rng.uniform_f64().powf(1.0 / per as f64);
                    for (v, d) in xs.iter_mut().zip(&dir) {
                        *v += (d / n * r) as f32;
                    }
                }
            }
        }
        project(&mut x, &clean, per, p.norm, p.eps);
    }
    for s in 0..p.steps {
        let xt = Tensor::from_slice(&x, shape.as_slice(), x0.device())?;
        let step_seed = seed.wrapping_add(1 + s as u64);
        let g = match through {
            Through::BpdaEot { samples } if samples > 1 => {
                // the mean gradient over independent draws of the refinement noise
                let mut acc: Option<Tensor> = None;
                for k in 0..samples as u64 {
                    let (g, _, _) = clf.loss_grad(&xt, labels, through, p.loss, step_seed ^ (k << 40))?;
                    acc = Some(match acc {
                        None => g,
                        Some(a) => (a + g)?,
                    });
                }
                (acc.expect("samples > 1") / samples as f64)?
            }
            _ => clf.loss_grad(&xt, labels, through, p.loss, step_seed)?.0,
        };
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        match p.norm {
            Norm::Linf => {
                for (v, gi) in x.iter_mut().zip(&g) {
                    if *gi != 0.0 {
                        *v += p.step_size * gi.signum();
                    }
                }
            }
            Norm::L2 => {
                for (xs, gs) in x.chunks_mut(per).zip(g.chunks(per)) {
                    let n = gs.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt();
                    if n > 0.0 && n.is_finite() {
                        for (v, gi) in xs.iter_mut().zip(gs) {
                            *v += (p.step_size as f64 * *gi as f64 / n) as f32;
                        }
                    }
                }
            }
        }
        project(&mut x, &clean, per, p.norm, p.eps);
    }
    Tensor::from_vec(x, shape, x0.device())
}

/// Accuracy at one epsilon.
#[derive(Debug, Clone, Serialize)]
pub struct RobustPoint {
    pub eps: f32,
    /// Fraction classified correctly at this epsilon and at every smaller epsilon of the sweep: an adversarial
    /// example found at a smaller epsilon lies in this ball too, so this is the tighter (and monotone) estimate.
    pub accuracy: f64,
    /// Fraction classified correctly at the final PGD iterate of this epsilon alone.
    pub pgd_accuracy: f64,
    /// The largest perturbation actually used, in the attack's norm (checks the projection).
    pub max_perturbation: f64,
}

/// Robust accuracy of `clf` on `(x, labels)` against PGD at each epsilon of `eps` (sorted ascending, 0 allowed),
/// with `steps` steps of size `step_factor * eps / steps`. The classifier is evaluated with `eval_seed`'s
/// refinement noise; the attacker uses `attack_seed`. Works in batches of `batch`.
#[allow(clippy::too_many_arguments)]
pub fn robust_curve<E: Energy + ?Sized>(
    clf: &EnergyClassifier<E>,
    x: &Tensor,
    labels: &[u32],
    norm: Norm,
    eps: &[f32],
    steps: usize,
    step_factor: f32,
    through: Through,
    loss: AttackLoss,
    eval_seed: u64,
    attack_seed: u64,
    batch: usize,
) -> Result<Vec<RobustPoint>> {
    let n = x.dims()[0];
    let per = x.elem_count() / n.max(1);
    let mut sorted = eps.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mut still = vec![true; n];
    let mut out = Vec::new();
    for &e in &sorted {
        let step_size = step_factor * e / steps.max(1) as f32;
        let p = Pgd { norm, eps: e, steps, step_size, random_start: true, loss };
        let mut correct = vec![false; n];
        let mut max_pert = 0f64;
        let mut start = 0;
        while start < n {
            let len = batch.max(1).min(n - start);
            let xb = x.narrow(0, start, len)?;
            let lb = &labels[start..start + len];
            let adv = pgd(clf, &xb, lb, &p, through, attack_seed ^ (start as u64) ^ e.to_bits() as u64)?;
            let d = (&adv - xb.to_dtype(DType::F32)?)?.flatten_all()?.to_vec1::<f32>()?;
            max_pert = norms(&d, per, norm).into_iter().fold(max_pert, f64::max);
            let pred = clf.predict(&adv, eval_seed ^ start as u64, len)?;
            for (k, (pr, l)) in pred.iter().zip(lb).enumerate() {
                correct[start + k] = pr == l;
            }
            start += len;
        }
        for (s, c) in still.iter_mut().zip(&correct) {
            *s &= *c;
        }
        let frac = |v: &[bool]| v.iter().filter(|c| **c).count() as f64 / n.max(1) as f64;
        out.push(RobustPoint {
            eps: e,
            accuracy: frac(&still),
            pgd_accuracy: frac(&correct),
            max_perturbation: max_pert,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `E(x, c) = sum_i w_i (x_i - m_c)^2 / 2` with `m_0 = 0.3`, `m_1 = 0.7`: a smooth two-class energy in 8
    /// dimensions whose first four ("stiff") coordinates weigh `stiff` and the others 1.
    fn quadratic(stiff: f32) -> impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor> {
        move |x: &Tensor, c: Option<&Tensor>| {
            let c = c.expect("conditional");
            let m = ((c.narrow(1, 1, 1)? * 0.4)? + 0.3)?; // [B, 1]
            let w: Vec<f32> = (0..8).map(|i| if i < 4 { stiff } else { 1.0 }).collect();
            let w = Tensor::from_vec(w, (1, 8), x.device())?;
            (x.broadcast_sub(&m)?.sqr()?.broadcast_mul(&w)? * 0.5)?.sum(1)
        }
    }

    fn data(n: usize, seed: u64) -> (Tensor, Vec<u32>) {
        let mut r = Rng::new(seed);
        let labels: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let v: Vec<f32> = labels
            .iter()
            .flat_map(|&l| (0..8).map(|_| 0.3 + 0.4 * l as f32 + 0.1 * r.uniform() - 0.05).collect::<Vec<_>>())
            .collect();
        (Tensor::from_vec(v, (n, 8), &Device::Cpu).unwrap(), labels)
    }

    #[test]
    fn pgd_stays_in_the_ball_and_the_unit_box() {
        let e = quadratic(1.0);
        let clf = EnergyClassifier { energy: &e, classes: 2, refine: None };
        let (x, y) = data(40, 1);
        // push the clean images to the box edges too, where the clamp matters
        let x = ((x - 0.5).unwrap() * 2.2).unwrap().affine(1.0, 0.5).unwrap().clamp(0f32, 1f32).unwrap();
        for norm in [Norm::Linf, Norm::L2] {
            for eps in [0.05f32, 0.3, 2.0] {
                let p = Pgd { norm, eps, steps: 15, step_size: eps / 3.0, random_start: true, loss: AttackLoss::Ce };
                let adv = pgd(&clf, &x, &y, &p, Through::Ignore, 7).unwrap();
                let a = adv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(a.iter().all(|v| (0.0..=1.0).contains(v)), "left [0, 1]");
                let d = (&adv - &x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let worst = norms(&d, 8, norm).into_iter().fold(0f64, f64::max);
                assert!(worst <= eps as f64 * (1.0 + 1e-6) + 1e-7, "{norm:?} eps {eps}: perturbation {worst}");
            }
        }
    }

    #[test]
    fn pgd_breaks_an_undefended_classifier_and_accuracy_falls_with_epsilon() {
        let e = quadratic(1.0);
        let clf = EnergyClassifier { energy: &e, classes: 2, refine: None };
        let (x, y) = data(60, 2);
        // the boundary is the hyperplane mean(x) = 0.5, 0.2 (L-infinity) or 0.2 * sqrt(8) = 0.57 (L2) away
        for (norm, eps) in [
            (Norm::Linf, vec![0.0f32, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]),
            (Norm::L2, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        ] {
            let curve =
                robust_curve(&clf, &x, &y, norm, &eps, 20, 2.5, Through::Ignore, AttackLoss::Ce, 0, 1, 32).unwrap();
            assert_eq!(curve[0].accuracy, 1.0, "clean accuracy");
            assert_eq!(curve.last().unwrap().accuracy, 0.0, "{norm:?}: {curve:?}");
            for w in curve.windows(2) {
                assert!(w[1].accuracy <= w[0].accuracy, "{norm:?}: {curve:?}");
                assert!(w[1].pgd_accuracy <= w[0].pgd_accuracy, "the raw PGD accuracy too: {norm:?}: {curve:?}");
            }
        }
    }

    fn defended(steps: usize) -> Refinement {
        // plain gradient descent (no noise, no clip, no box): the refined copy under class c is
        // m_c + (1 - 0.009 w)^K (x - m_c), which all but erases the stiff coordinates (w = 100)
        Refinement { steps, step_size: 0.009, noise_std: 0.0, clip: Clip::None, radius: 1.0 }
    }

    /// The attack's summed loss at `x`, as the function finite differences are taken of.
    fn summed_loss<'a, E: Energy + ?Sized>(
        clf: &'a EnergyClassifier<'a, E>,
        y: &'a [u32],
        through: Through,
        loss: AttackLoss,
    ) -> impl Fn(&Tensor) -> f64 + 'a {
        move |x| clf.loss_grad(x, y, through, loss, 0).unwrap().1.iter().sum()
    }

    /// Checks the `[B, D]` gradient `g` entry by entry against central differences of `loss` around `x`.
    fn assert_matches_differences(g: &Tensor, x: &Tensor, loss: impl Fn(&Tensor) -> f64, what: &str) {
        let g = g.to_vec2::<f32>().unwrap();
        let xv = x.to_vec2::<f32>().unwrap();
        let h = 1e-3f32;
        for i in 0..xv.len() {
            for j in 0..xv[i].len() {
                let (mut p, mut m) = (xv.clone(), xv.clone());
                p[i][j] += h;
                m[i][j] -= h;
                let t = |v: Vec<Vec<f32>>| Tensor::new(v, &Device::Cpu).unwrap();
                let fd = (loss(&t(p)) - loss(&t(m))) / (2.0 * h as f64);
                let tol = 2e-3 * fd.abs().max(1e-2);
                assert!((g[i][j] as f64 - fd).abs() < tol, "({i},{j}): {what} {} vs finite difference {fd}", g[i][j]);
            }
        }
    }

    #[test]
    fn unrolled_gradient_matches_finite_differences_of_the_refined_loss() {
        let e = quadratic(30.0);
        let clf = EnergyClassifier { energy: &e, classes: 2, refine: Some(defended(5)) };
        let (x, y) = data(4, 3);
        let x = x.to_dtype(DType::F32).unwrap();
        let (g, _, _) = clf.loss_grad(&x, &y, Through::Unroll { h: 1e-3 }, AttackLoss::Ce, 0).unwrap();
        assert_matches_differences(&g, &x, summed_loss(&clf, &y, Through::Bpda, AttackLoss::Ce), "unrolled");
    }

    #[test]
    fn the_margin_loss_and_its_gradient_agree_with_finite_differences() {
        // E(x, y) - min_{c != y} E(x, c) on the two-class quadratic: the gradient the attack follows is the
        // derivative of the loss it reports, and the loss is positive exactly where the prediction is wrong
        let e = quadratic(3.0);
        let clf = EnergyClassifier { energy: &e, classes: 2, refine: None };
        let (x, y) = data(6, 5);
        let x = x.to_dtype(DType::F32).unwrap();
        let (g, l0, pred) = clf.loss_grad(&x, &y, Through::Ignore, AttackLoss::Margin, 0).unwrap();
        for ((l, p), t) in l0.iter().zip(&pred).zip(&y) {
            assert_eq!(*l > 0.0, p != t, "margin {l}, predicted {p}, label {t}");
        }
        let loss = summed_loss(&clf, &y, Through::Ignore, AttackLoss::Margin);
        assert_matches_differences(&g, &x, loss, "margin gradient");
    }

    #[test]
    fn attacks_through_the_refinement_are_at_least_as_strong() {
        // Unrefined, the stiff coordinates dominate the energy gap and its gradient; refined, they barely count.
        // The official attack follows the unrefined gradient (into the stiff coordinates) and leaves the defended
        // classifier alone; attacks through the refinement move the coordinates that it does use.
        let e = quadratic(100.0);
        let clf = EnergyClassifier { energy: &e, classes: 2, refine: Some(defended(10)) };
        let (x, y) = data(40, 4);
        let eps = [0.0f32, 0.8];
        let run = |t: Through| {
            robust_curve(&clf, &x, &y, Norm::L2, &eps, 20, 2.5, t, AttackLoss::Ce, 0, 9, 40).unwrap()[1].accuracy
        };
        let ignore = run(Through::Ignore);
        let bpda = run(Through::Bpda);
        let unroll = run(Through::Unroll { h: 1e-3 });
        assert!(bpda <= ignore && unroll <= ignore, "ignore {ignore}, bpda {bpda}, unroll {unroll}");
        assert!(ignore >= 0.9 && bpda <= 0.1 && unroll <= 0.1, "ignore {ignore}, bpda {bpda}, unroll {unroll}");
    }
}
