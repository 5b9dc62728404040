//! The samplers: unadjusted Langevin dynamics ([`Langevin`]) and its Metropolis-adjusted version ([`Mala`]).

use crate::Energy;
use candle_core::{DType, Result, Tensor};
use ebm_kernels::langevin::noise_tensor;
use ebm_kernels::{add_noise_, langevin_update_, Clip, LangevinUpdate, NoiseOrder, Rng};

/// Stop a chain early once the batch-mean energy changes by less than `tolerance` between consecutive steps
/// (adaptive computation: easy inputs settle sooner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStop {
    pub tolerance: f32,
    /// Never stop before this many steps.
    pub min_steps: usize,
}

/// What a chain keeps besides its final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    /// Keep a copy of the state every this many steps (and the initial state).
    pub trajectory_every: Option<usize>,
    /// Keep per-step statistics ([`StepStats`]).
    pub diagnostics: bool,
}

/// Statistics of one step, measured at the point where the gradient was taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: usize,
    pub mean_energy: f32,
    /// Mean over the batch of each sample's gradient L2 norm (before clipping and temperature).
    pub grad_norm: f32,
    /// Fraction of the batch whose proposal was accepted (MALA only).
    pub accept_rate: Option<f32>,
}

/// The result of running a sampler.
#[derive(Debug, Clone)]
pub struct Chain {
    pub x: Tensor,
    /// Steps actually taken (fewer than asked when stopped early).
    pub steps: usize,
    pub stats: Vec<StepStats>,
    pub trajectory: Vec<Tensor>,
    /// Overall acceptance rate (MALA only).
    pub accept_rate: Option<f32>,
}

fn grad_norm(g: &Tensor) -> Result<f32> {
    g.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()
}

fn mean_of(e: &Tensor) -> Result<f32> {
    e.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()
}

fn check_inputs(x0: &Tensor, mask: Option<&Tensor>) -> Result<()> {
    if x0.rank() < 1 || x0.dims()[0] == 0 {
        candle_core::bail!("a sampler needs a non-empty batch [B, ...], got shape {:?}", x0.dims());
    }
    if let Some(m) = mask {
        if m.dims() != x0.dims() {
            candle_core::bail!("mask shape {:?} differs from the batch shape {:?}", m.dims(), x0.dims());
        }
    }
    Ok(())
}

/// Unadjusted Langevin dynamics on `exp(-E(x)/T)`, with the knobs of the IGEBM sampler.
///
/// In [`NoiseOrder::Textbook`] order each step is `x <- clamp(x - step_size * clip(grad E/T) + noise_std * n)`;
/// with `noise_std = sqrt(2 * step_size)`, no clip and no clamp this is the textbook discretisation, which samples
/// the target up to an O(step_size) bias. [`NoiseOrder::NoiseFirst`] is the official IGEBM order (noise, then the
/// gradient at the noised point, then clamp), where the noise is much smaller than the step: "noisy gradient
/// descent" that finds low-energy modes rather than a calibrated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Langevin {
    pub steps: usize,
    pub step_size: f32,
    pub noise_std: f32,
    pub clip: Clip,
    pub clamp: Option<(f32, f32)>,
    /// Samples `exp(-E/T)`: the gradient is divided by `T` (the official `temperature` flag multiplies the energy
    /// instead, so its T is our 1/T).
    pub temperature: f32,
    pub order: NoiseOrder,
    pub early_stop: Option<EarlyStop>,
    pub record: Record,
}

impl Langevin {
    /// The textbook unadjusted Langevin algorithm: noise `sqrt(2 step_size)`, no clipping, no clamping.
    pub fn ula(step_size: f32, steps: usize) -> Self {
        Self {
            steps,
            step_size,
            noise_std: (2.0 * step_size).sqrt(),
            clip: Clip::None,
            clamp: None,
            temperature: 1.0,
            order: NoiseOrder::Textbook,
            early_stop: None,
            record: Record::default(),
        }
    }

    /// The official IGEBM image sampler: noise 0.005 first, gradient step `step_size` with elementwise clip,
    /// clamp to [0, 1].
    pub fn igebm(step_size: f32, clip: f32, steps: usize) -> Self {
        Self {
            steps,
            step_size,
            noise_std: 0.005,
            clip: if clip > 0.0 { Clip::Elementwise(clip) } else { Clip::None },
            clamp: Some((0.0, 1.0)),
            temperature: 1.0,
            order: NoiseOrder::NoiseFirst,
            early_stop: None,
            record: Record::default(),
        }
    }

    /// Runs the chain from `x0` (not modified). `mask` (same shape, 1 = free, 0 = fixed) keeps the unmasked entries
    /// exactly as they are: inpainting. The noise is a pure function of (`seed`, step, element).
    pub fn run<E: Energy + ?Sized>(
        &self,
        energy: &E,
        x0: &Tensor,
        cond: Option<&Tensor>,
        mask: Option<&Tensor>,
        seed: u64,
    ) -> Result<Chain> {
        check_inputs(x0, mask)?;
        let x = x0.to_dtype(DType::F32)?.contiguous()?.copy()?;
        let mask = mask.map(|m| m.to_dtype(DType::F32)).transpose()?;
        let mut out = Chain { x: x.clone(), steps: 0, stats: Vec::new(), trajectory: Vec::new(), accept_rate: None };
        if self.record.trajectory_every.is_some() {
            out.trajectory.push(x.copy()?);
        }
        if self.order == NoiseOrder::NoiseFirst && self.steps > 0 && self.noise_std != 0.0 {
            add_noise_(&x, mask.as_ref(), self.noise_std, seed, 0)?;
        }
        let mut prev_mean: Option<f32> = None;
        for k in 0..self.steps {
            let (e, mut g) = energy.energy_and_grad(&x, cond)?;
            let need_mean = self.record.diagnostics || self.early_stop.is_some();
            let mean = if need_mean { Some(mean_of(&e)?) } else { None };
            if self.record.diagnostics {
                out.stats.push(StepStats {
                    step: k,
                    mean_energy: mean.unwrap_or(f32::NAN),
                    grad_norm: grad_norm(&g)?,
                    accept_rate: None,
                });
            }
            let stop = match (self.early_stop, mean, prev_mean) {
                (Some(es), Some(m), Some(p)) => k + 1 >= es.min_steps && (m - p).abs() < es.tolerance,
                _ => false,
            };
            prev_mean = mean;
            let last = stop || k + 1 == self.steps;
            if self.temperature != 1.0 {
                g = (g / self.temperature as f64)?;
            }
            let (noise_std, stream) = match self.order {
                NoiseOrder::Textbook => (self.noise_std, k as u64),
                // the noise that precedes the next gradient; none after the last one
                NoiseOrder::NoiseFirst => (if last { 0.0 } else { self.noise_std }, k as u64 + 1),
            };
            let p = LangevinUpdate {
                step_size: self.step_size,
                noise_std,
                clip: self.clip,
                clamp: self.clamp,
                order: self.order,
                seed,
                step: stream,
            };
            langevin_update_(&x, Some(&g.to_dtype(DType::F32)?), mask.as_ref(), &p)?;
            out.steps = k + 1;
            if let Some(every) = self.record.trajectory_every {
                if (k + 1) % every.max(1) == 0 || last {
                    out.trajectory.push(x.copy()?);
                }
            }
            if stop {
                break;
            }
        }
        out.x = x;
        Ok(out)
    }
}

/// The Metropolis-adjusted Langevin algorithm: a Langevin proposal accepted per sample with the Metropolis-Hastings
/// probability, so the chain leaves `exp(-E/T)` exactly invariant (restricted to the `clamp` box, outside which
/// proposals are rejected). Clipping changes the proposal's drift, which the acceptance ratio accounts for.
#[derive(Debug, Clone, PartialEq)]
pub struct Mala {
    pub steps: usize,
    pub step_size: f32,
    /// Proposal noise; `None` means the Langevin value `sqrt(2 step_size)`.
    pub noise_std: Option<f32>,
    pub clip: Clip,
    pub clamp: Option<(f32, f32)>,
    pub temperature: f32,
    pub early_stop: Option<EarlyStop>,
    pub record: Record,
}

impl Mala {
    pub fn new(step_size: f32, steps: usize) -> Self {
        Self {
            steps,
            step_size,
            noise_std: None,
            clip: Clip::None,
            clamp: None,
            temperature: 1.0,
            early_stop: None,
            record: Record::default(),
        }
    }

    fn drift(&self, g: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let g = (g / self.temperature as f64)?;
        let g = match self.clip {
            Clip::None => g,
            Clip::Elementwise(c) => g.clamp(-c, c)?,
            Clip::SampleL2(c) => {
                let n = g.sqr()?.flatten_from(1)?.sum_keepdim(1)?.sqrt()?;
                let s = (n / c as f64)?.maximum(1.0)?.recip()?;
                g.broadcast_mul(&crate::energy::per_sample(&s, &g)?)?
            }
        };
        match mask {
            Some(m) => g * m,
            None => Ok(g),
        }
    }

    /// Runs the chain from `x0`; see [`Langevin::run`] for `mask` and `seed`.
    pub fn run<E: Energy + ?Sized>(
        &self,
        energy: &E,
        x0: &Tensor,
        cond: Option<&Tensor>,
        mask: Option<&Tensor>,
        seed: u64,
    ) -> Result<Chain> {
        check_inputs(x0, mask)?;
        let b = x0.dims()[0];
        let sigma = self.noise_std.unwrap_or((2.0 * self.step_size).sqrt()) as f64;
        let eta = self.step_size as f64;
        let t = self.temperature as f64;
        let mask = mask.map(|m| m.to_dtype(DType::F32)).transpose()?;
        let mut x = x0.to_dtype(DType::F32)?.contiguous()?.copy()?;
        let (mut e, mut g) = energy.energy_and_grad(&x, cond)?;
        let mut uniforms = Rng::with_stream(seed, 0x4d41_4c41); // "MALA"
        let mut out = Chain { x: x.clone(), steps: 0, stats: Vec::new(), trajectory: Vec::new(), accept_rate: None };
        if self.record.trajectory_every.is_some() {
            out.trajectory.push(x.copy()?);
        }
        let (mut accepted, mut proposed) = (0usize, 0usize);
        let mut prev_mean: Option<f32> = None;
        let per_sample = |d: &Tensor| -> Result<Tensor> { d.sqr()?.flatten_from(1)?.sum(1) };
        for k in 0..self.steps {
            let d = self.drift(&g, mask.as_ref())?;
            let mut n = noise_tensor(x.dims(), seed, k as u64, x.device())?;
            if let Some(m) = &mask {
                n = (n * m)?;
            }
            let xp = ((&x - (&d * eta)?)? + (&n * sigma)?)?;
            let (ep, gp) = energy.energy_and_grad(&xp, cond)?;
            let dp = self.drift(&gp, mask.as_ref())?;
            // log q(x'|x) = -|n|^2 / 2 ; log q(x|x') = -|x - x' + eta d'|^2 / (2 sigma^2)
            let fwd = (per_sample(&n)? * -0.5)?;
            let back = (per_sample(&((&x - &xp)? + (&dp * eta)?)?)? * (-0.5 / (sigma * sigma)))?;
            let log_alpha = ((((&e - &ep)? / t)? + back)? - fwd)?;
            let mut log_alpha = log_alpha.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            if let Some((lo, hi)) = self.clamp {
                let outside = xp.lt(lo as f64)?.maximum(&xp.gt(hi as f64)?)?.flatten_from(1)?.max(1)?;
                for (la, o) in log_alpha.iter_mut().zip(outside.to_vec1::<u8>()?) {
                    if o != 0 {
                        *la = f64::NEG_INFINITY;
                    }
                }
            }
            let acc: Vec<u8> = log_alpha.iter().map(|la| (uniforms.uniform_f64().ln() < *la) as u8).collect();
            let n_acc = acc.iter().filter(|a| **a == 1).count();
            accepted += n_acc;
            proposed += b;
            let acc_t = Tensor::from_vec(acc, b, x.device())?;
            let acc_x = crate::energy::per_sample(&acc_t, &x)?.broadcast_as(x.shape())?;
            x = acc_x.where_cond(&xp, &x)?;
            g = acc_x.where_cond(&gp, &g)?;
            e = acc_t.where_cond(&ep, &e)?;
            out.steps = k + 1;
            let need_mean = self.record.diagnostics || self.early_stop.is_some();
            let mean = if need_mean { Some(mean_of(&e)?) } else { None };
            if self.record.diagnostics {
                out.stats.push(StepStats {
                    step: k,
                    mean_energy: mean.unwrap_or(f32::NAN),
                    grad_norm: grad_norm(&g)?,
                    accept_rate: Some(n_acc as f32 / b as f32),
                });
            }
            if let Some(every) = self.record.trajectory_every {
                if (k + 1) % every.max(1) == 0 || k + 1 == self.steps {
                    out.trajectory.push(x.copy()?);
                }
            }
            if let (Some(es), Some(m), Some(p)) = (self.early_stop, mean, prev_mean) {
                if k + 1 >= es.min_steps && (m - p).abs() < es.tolerance {
                    break;
                }
            }
            prev_mean = mean;
        }
        out.accept_rate = Some(if proposed == 0 { 0.0 } else { accepted as f32 / proposed as f32 });
        out.x = x;
        Ok(out)
    }
}
