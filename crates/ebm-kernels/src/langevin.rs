//! The fused Langevin update: one pass over memory per step that adds counter-based noise, takes the clipped
//! gradient step, clamps, and respects a mask, in place.

use crate::philox::{key_of, normal4, normal_blocks};
use candle_core::{
    backend::BackendStorage, bail, CpuStorage, DType, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Result, Tensor,
};
use rayon::prelude::*;

/// How the gradient is limited before the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// The raw gradient.
    None,
    /// Each element clipped to `[-c, c]` (the official `proj_norm_type='li'`).
    Elementwise(f32),
    /// Each sample's gradient rescaled so that its L2 norm is at most `c`. (The official `'l2'` mode clips the
    /// norm of the whole batch tensor instead; per-sample is what keeps one chain from throttling the others.)
    SampleL2(f32),
}

/// Where the noise goes relative to the gradient step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseOrder {
    /// `x <- clamp(x - step * clip(g) + std * n)`: the textbook unadjusted Langevin step.
    Textbook,
    /// The official IGEBM order (noise, then the gradient at the noised point, then clamp), fused across steps:
    /// `x <- clamp(x - step * clip(g)) + std * n`, where `n` is the noise that precedes the *next* gradient.
    /// A chain starts with [`add_noise`] and its last update uses `noise_std = 0`.
    NoiseFirst,
}

/// Parameters of one fused update. The noise of element `i` is normal number `i` of stream `step` under `seed`
/// (see [`crate::philox::normal4`]), whatever the number of threads or the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinUpdate {
    pub step_size: f32,
    pub noise_std: f32,
    pub clip: Clip,
    pub clamp: Option<(f32, f32)>,
    pub order: NoiseOrder,
    pub seed: u64,
    pub step: u64,
}

impl Default for LangevinUpdate {
    /// The official CIFAR-10 settings: step 10, noise 0.005, elementwise clip 0.01, clamp to [0, 1].
    fn default() -> Self {
        Self {
            step_size: 10.0,
            noise_std: 0.005,
            clip: Clip::Elementwise(0.01),
            clamp: Some((0.0, 1.0)),
            order: NoiseOrder::NoiseFirst,
            seed: 0,
            step: 0,
        }
    }
}

/// Elements per rayon task: a multiple of 4 so that every task starts on a Philox block.
const CHUNK: usize = 16 * 1024;

fn sample_scales(g: &[f32], sample_len: usize, c: f32) -> Vec<f32> {
    g.par_chunks(sample_len)
        .map(|s| {
            let n = s.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt() as f32;
            if n > c {
                c / n
            } else {
                1.0
            }
        })
        .collect()
}

/// Elements drawn and updated together: small enough for the stack, large enough to vectorise.
const LANE_BLOCK: usize = 64;

/// Normals for elements `first..first + out.len()` (`first` a multiple of 4) of stream `step`.
#[inline(always)]
fn fill_block(key: [u32; 2], step: u64, first: usize, out: &mut [f32]) {
    if out.len() == LANE_BLOCK {
        normal_blocks::<{ LANE_BLOCK / 4 }>(key, step, (first / 4) as u64, out);
        return;
    }
    for (q, quad) in out.chunks_mut(4).enumerate() {
        let z = normal4(key, step, (first / 4 + q) as u64);
        quad.copy_from_slice(&z[..quad.len()]);
    }
}

/// The per-element step `x' = f(x, g, n)` with the loop-invariant choices made at compile time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply<const GRAD: bool, const MASK: bool, const TEXTBOOK: bool>(
    x: &mut [f32],
    g: &[f32],
    scale: &[f32],
    m: &[f32],
    z: &[f32],
    p: &LangevinUpdate,
    clip: f32,
    (lo, hi): (f32, f32),
) {
    for i in 0..x.len() {
        let d = if GRAD { -p.step_size * (g[i] * scale[i]).clamp(-clip, clip) } else { 0.0 };
        let n = p.noise_std * z[i];
        let v = if TEXTBOOK { (x[i] + d + n).clamp(lo, hi) } else { (x[i] + d).clamp(lo, hi) + n };
        if MASK {
            if m[i] != 0.0 {
                x[i] = v;
            }
        } else {
            x[i] = v;
        }
    }
}

impl LangevinUpdate {
    /// Errors unless the settings describe an update: finite step and noise (noise >= 0), a clip bound that is a
    /// positive number, a clamp `(lo, hi)` of finite `lo < hi`.
    pub fn validate(&self) -> Result<()> {
        if !self.step_size.is_finite() {
            candle_core::bail!("Langevin step size must be finite, got {}", self.step_size);
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            candle_core::bail!("Langevin noise must be a finite number >= 0, got {}", self.noise_std);
        }
        match self.clip {
            Clip::Elementwise(c) | Clip::SampleL2(c) if !(c.is_finite() && c > 0.0) => {
                candle_core::bail!("a Langevin gradient clip must be a positive number, got {c}")
            }
            _ => {}
        }
        if let Some((lo, hi)) = self.clamp {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                candle_core::bail!("a Langevin clamp must be (lo, hi) with finite lo < hi, got ({lo}, {hi})");
            }
        }
        Ok(())
    }
}

/// The update on plain slices; `sample_len` is the number of elements per batch entry (for `Clip::SampleL2`). The
/// settings must pass [`LangevinUpdate::validate`] (a clamp with `lo > hi` panics here).
pub fn update_slices(x: &mut [f32], grad: Option<&[f32]>, mask: Option<&[f32]>, p: &LangevinUpdate, sample_len: usize) {
    let sample_len = sample_len.max(1);
    let scales = match (grad, p.clip) {
        (Some(g), Clip::SampleL2(c)) => Some(sample_scales(g, sample_len, c)),
        _ => None,
    };
    let key = key_of(p.seed);
    let clip = match p.clip {
        Clip::Elementwise(c) => c,
        _ => f32::INFINITY,
    };
    // without a clamp the bounds are infinite, which clamp() leaves alone (and NaN stays NaN either way)
    let bounds = p.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let textbook = p.order == NoiseOrder::Textbook;
    x.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, xs)| {
        let mut z = [0f32; LANE_BLOCK];
        let mut sc = [1f32; LANE_BLOCK];
        for (bi, xb) in xs.chunks_mut(LANE_BLOCK).enumerate() {
            let first = ci * CHUNK + bi * LANE_BLOCK;
            let len = xb.len();
            if p.noise_std != 0.0 {
                fill_block(key, p.step, first, &mut z[..len]);
            }
            if let Some(s) = &scales {
                for (k, v) in sc[..len].iter_mut().enumerate() {
                    *v = s[(first + k) / sample_len];
                }
            }
            let g = grad.map(|g| &g[first..first + len]).unwrap_or(&[]);
            let m = mask.map(|m| &m[first..first + len]).unwrap_or(&[]);
            let (zb, sb) = (&z[..len], &sc[..len]);
            match (grad.is_some(), mask.is_some(), textbook) {
                (true, true, true) => apply::<true, true, true>(xb, g, sb, m, zb, p, clip, bounds),
                (true, true, false) => apply::<true, true, false>(xb, g, sb, m, zb, p, clip, bounds),
                (true, false, true) => apply::<true, false, true>(xb, g, sb, m, zb, p, clip, bounds),
                (true, false, false) => apply::<true, false, false>(xb, g, sb, m, zb, p, clip, bounds),
                (false, true, true) => apply::<false, true, true>(xb, g, sb, m, zb, p, clip, bounds),
                (false, true, false) => apply::<false, true, false>(xb, g, sb, m, zb, p, clip, bounds),
                (false, false, true) => apply::<false, false, true>(xb, g, sb, m, zb, p, clip, bounds),
                (false, false, false) => apply::<false, false, false>(xb, g, sb, m, zb, p, clip, bounds),
            }
        }
    });
}

/// Which of the optional operands an in-place op carries after `x`.
struct Fused<'a> {
    p: &'a LangevinUpdate,
    has_grad: bool,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("langevin update: {what} must be contiguous") };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        other => bail!("langevin update: {what} must be f32, got {:?}", other.dtype()),
    }
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("langevin update: x must be contiguous") };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        other => bail!("langevin update: x must be f32, got {:?}", other.dtype()),
    }
}

fn sample_len(l: &Layout) -> usize {
    let dims = l.dims();
    if dims.is_empty() || dims[0] == 0 {
        1
    } else {
        l.shape().elem_count() / dims[0]
    }
}

impl InplaceOp1 for Fused<'_> {
    fn name(&self) -> &'static str {
        "langevin-update"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let n = sample_len(l);
        update_slices(slice_mut(s, l)?, None, None, self.p, n);
        Ok(())
    }
}

impl InplaceOp2 for Fused<'_> {
    fn name(&self) -> &'static str {
        "langevin-update"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let n = sample_len(l);
        let other = slice(s2, l2, if self.has_grad { "grad" } else { "mask" })?;
        let (g, m) = if self.has_grad { (Some(other), None) } else { (None, Some(other)) };
        update_slices(slice_mut(s, l)?, g, m, self.p, n);
        Ok(())
    }
}

impl InplaceOp3 for Fused<'_> {
    fn name(&self) -> &'static str {
        "langevin-update"
    }
    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s: &mut CpuStorage,
        l: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let n = sample_len(l);
        let (g, m) = (slice(s2, l2, "grad")?, slice(s3, l3, "mask")?);
        update_slices(slice_mut(s, l)?, Some(g), Some(m), self.p, n);
        Ok(())
    }
}

fn check(x: &Tensor, other: Option<&Tensor>, what: &str) -> Result<()> {
    if x.dtype() != DType::F32 {
        bail!("langevin update: x must be f32, got {:?}", x.dtype());
    }
    if !x.is_contiguous() {
        bail!("langevin update: x must be contiguous");
    }
    if let Some(o) = other {
        if o.shape() != x.shape() {
            bail!("langevin update: {what} has shape {:?} but x has {:?}", o.shape(), x.shape());
        }
        if !o.device().same_device(x.device()) {
            bail!("langevin update: {what} is on another device than x");
        }
    }
    Ok(())
}

/// Applies the fused update to `x` in place. `grad` and `mask` (1 = may move, 0 = frozen) must have `x`'s shape;
/// entries outside the mask are left untouched bit for bit.
///
/// `x` must not share its storage with a tensor the caller still needs unchanged.
pub fn langevin_update_(x: &Tensor, grad: Option<&Tensor>, mask: Option<&Tensor>, p: &LangevinUpdate) -> Result<()> {
    p.validate()?;
    check(x, grad, "grad")?;
    check(x, mask, "mask")?;
    let grad = grad.map(|g| g.contiguous()).transpose()?;
    let mask = mask.map(|m| m.to_dtype(DType::F32)?.contiguous()).transpose()?;
    match (grad.as_ref(), mask.as_ref()) {
        (None, None) => x.inplace_op1(&Fused { p, has_grad: false }),
        (Some(g), None) => x.inplace_op2(g, &Fused { p, has_grad: true }),
        (None, Some(m)) => x.inplace_op2(m, &Fused { p, has_grad: false }),
        (Some(g), Some(m)) => x.inplace_op3(g, m, &Fused { p, has_grad: true }),
    }
}

/// The fused update on a fresh copy of `x`.
pub fn langevin_update(x: &Tensor, grad: Option<&Tensor>, mask: Option<&Tensor>, p: &LangevinUpdate) -> Result<Tensor> {
    let y = x.contiguous()?.copy()?;
    langevin_update_(&y, grad, mask, p)?;
    Ok(y)
}

/// Adds `std * n(seed, step)` to `x` in place where `mask` is 1 (no clamp): the first perturbation of a chain in
/// the official order.
pub fn add_noise_(x: &Tensor, mask: Option<&Tensor>, std: f32, seed: u64, step: u64) -> Result<()> {
    let p = LangevinUpdate {
        step_size: 0.0,
        noise_std: std,
        clip: Clip::None,
        clamp: None,
        order: NoiseOrder::Textbook,
        seed,
        step,
    };
    langevin_update_(x, None, mask, &p)
}

/// The noise the update draws for `shape` at (`seed`, `step`), as a tensor: for tests and reference formulas.
pub fn noise_tensor(shape: &[usize], seed: u64, step: u64, device: &candle_core::Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut v = vec![0f32; n];
    v.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, c)| crate::philox::fill_normal(seed, step, (ci * CHUNK) as u64, c));
    Tensor::from_vec(v, shape, device)
}
