//! The elementwise work around the convolutions of the zoo as single-pass custom ops with single-pass backward
//! passes (candle's own formulations cost many full-tensor passes each in backward: `maximum(x, a x)` about
//! twenty, a broadcast multiply or add about five):
//!
//! - [`leaky_relu`]: `max(x, alpha x)`, backward `g * (x > 0 ? 1 : alpha)`;
//! - [`scale_channels`]: `y[b, c, ..] * s[b, c]` (the official output gain), backward `g * s` and, only when
//!   `s` is part of the graph, `sum_hw g * y`;
//! - [`residual_tail`]: `act(avgpool(a + b))`, the end of a residual block, one pass each way.
//!
//! f32 and f64 on the CPU; per-channel vectors are
//! `[B, C]`, or `[1, C]` / `[C]` shared by the batch.

use super::layout::output_vec;
use candle_core::{
    backend::BackendStorage, bail, CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

/// Elements per rayon task of the elementwise ops (small tensors run on the calling thread).
const PAR_CHUNK: usize = 32 * 1024;

pub(super) fn contiguous<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what} must be contiguous"),
    }
}

fn check_cpu_float(t: &Tensor, what: &str) -> Result<()> {
    if !matches!(t.device(), Device::Cpu) || !matches!(t.dtype(), DType::F32 | DType::F64) {
        bail!("{what}: f32 or f64 on the CPU expected, got {:?} on {:?}", t.dtype(), t.device().location());
    }
    Ok(())
}

/// Whether the fused elementwise ops run on `t` (f32/f64 on the CPU).
pub fn supported(t: &Tensor) -> bool {
    check_cpu_float(t, "").is_ok()
}

/// `f(i, chunk)` over `out` in parallel chunks of [`PAR_CHUNK`] (`i` = first index of the chunk).
fn par_fill<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() <= PAR_CHUNK {
        f(0, out);
    } else {
        out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(ci, c)| f(ci * PAR_CHUNK, c));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// leaky ReLU

struct LeakyRelu(f64);
/// `(x, g) -> g * (x > 0 ? 1 : alpha)`.
struct LeakyReluGrad(f64);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "ebm-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = self.0;
        let out = match s {
            CpuStorage::F32(v) => {
                let x = contiguous(v, l, "leaky_relu input")?;
                let a = a as f32;
                let mut y = output_vec::<f32>(x.len());
                par_fill(&mut y, |i0, c| {
                    for (o, &v) in c.iter_mut().zip(&x[i0..]) {
                        *o = if v > 0.0 { v } else { v * a };
                    }
                });
                CpuStorage::F32(y)
            }
            CpuStorage::F64(v) => {
                let x = contiguous(v, l, "leaky_relu input")?;
                let mut y = output_vec::<f64>(x.len());
                par_fill(&mut y, |i0, c| {
                    for (o, &v) in c.iter_mut().zip(&x[i0..]) {
                        *o = if v > 0.0 { v } else { v * a };
                    }
                });
                CpuStorage::F64(y)
            }
            other => bail!("leaky_relu: f32 or f64 expected, got {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.contiguous()?.apply_op2(&g.contiguous()?, LeakyReluGrad(self.0))?))
    }
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "ebm-leaky-relu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = self.0;
        if l1.shape() != l2.shape() {
            bail!("leaky_relu grad: shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (x, g) = (contiguous(x, l1, "x")?, contiguous(g, l2, "grad")?);
                let a = a as f32;
                let mut d = output_vec::<f32>(x.len());
                par_fill(&mut d, |i0, c| {
                    for ((o, &xv), &gv) in c.iter_mut().zip(&x[i0..]).zip(&g[i0..]) {
                        *o = if xv > 0.0 { gv } else { gv * a };
                    }
                });
                CpuStorage::F32(d)
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (x, g) = (contiguous(x, l1, "x")?, contiguous(g, l2, "grad")?);
                let mut d = output_vec::<f64>(x.len());
                par_fill(&mut d, |i0, c| {
                    for ((o, &xv), &gv) in c.iter_mut().zip(&x[i0..]).zip(&g[i0..]) {
                        *o = if xv > 0.0 { gv } else { gv * a };
                    }
                });
                CpuStorage::F64(d)
            }
            _ => bail!("leaky_relu grad: matching f32 or f64 operands expected"),
        };
        Ok((out, l1.shape().clone()))
    }

    /// Linear in `g` with the same mask; piecewise constant in `x` (zero gradient almost everywhere).
    fn bwd(&self, x: &Tensor, _g: &Tensor, _d: &Tensor, gd: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(x.contiguous()?.apply_op2(&gd.contiguous()?, LeakyReluGrad(self.0))?)))
    }
}

/// `max(x, alpha x)` for `0 < alpha < 1` (f32/f64 on the CPU), with a one-pass backward.
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    check_cpu_float(x, "leaky_relu")?;
    x.contiguous()?.apply_op1(LeakyRelu(alpha))
}

// ---------------------------------------------------------------------------------------------------------------
// per-channel scale

/// `[B, C, rest...]` as `(B, C, rest)`.
fn bcr(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        bail!("{what}: at least [B, C] expected, got {d:?}");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Rows of a per-channel vector of shape `[B, C]`, `[1, C]` or `[C]` for a batch `b` with `c` channels:
/// `Some(true)` per example, `Some(false)` shared.
pub(super) fn vec_rows(l: &Layout, b: usize, c: usize) -> Option<bool> {
    match l.dims() {
        [n] if *n == c => Some(false),
        [1, n] if *n == c => Some(b == 1),
        [bb, n] if *bb == b && *n == c => Some(true),
        _ => None,
    }
}

struct ScaleChannels;
/// `(g, y) -> sum over rest of g * y`, `[B, C]` (or summed over the batch into `[C]`-shaped `like`).
struct ChannelDot {
    per_example: bool,
    shape: Shape,
}

macro_rules! scale_impl {
    ($y:expr, $s:expr, $c:expr, $r:expr, $per:expr, $t:ty) => {{
        let (y, s): (&[$t], &[$t]) = ($y, $s);
        let mut out = output_vec::<$t>(y.len());
        let plane = $r;
        if out.len() <= PAR_CHUNK || plane == 0 {
            for (i, (o, yv)) in out.chunks_mut(plane.max(1)).zip(y.chunks(plane.max(1))).enumerate() {
                let sv = if $per { s[i] } else { s[i % $c] };
                for (a, b) in o.iter_mut().zip(yv) {
                    *a = b * sv;
                }
            }
        } else {
            out.par_chunks_mut(plane).zip(y.par_chunks(plane)).enumerate().for_each(|(i, (o, yv))| {
                let sv = if $per { s[i] } else { s[i % $c] };
                for (a, b) in o.iter_mut().zip(yv) {
                    *a = b * sv;
                }
            });
        }
        out
    }};
}

impl CustomOp2 for ScaleChannels {
    fn name(&self) -> &'static str {
        "ebm-scale-channels"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, r) = bcr(l1, "scale_channels input")?;
        let Some(per) = vec_rows(l2, b, c) else {
            bail!("scale_channels: scale of shape {:?} for an input {:?}", l2.dims(), l1.dims())
        };
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(s)) => {
                CpuStorage::F32(scale_impl!(contiguous(y, l1, "y")?, contiguous(s, l2, "s")?, c, r, per, f32))
            }
            (CpuStorage::F64(y), CpuStorage::F64(s)) => {
                CpuStorage::F64(scale_impl!(contiguous(y, l1, "y")?, contiguous(s, l2, "s")?, c, r, per, f64))
            }
            _ => bail!("scale_channels: matching f32 or f64 operands expected"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, y: &Tensor, s: &Tensor, _out: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = if y.track_op() { Some(scale_channels(g, s)?) } else { None };
        let ds = if s.track_op() { Some(channel_dot(g, y, s)?) } else { None };
        Ok((dy, ds))
    }
}

macro_rules! dot_impl {
    ($g:expr, $y:expr, $c:expr, $r:expr, $per:expr, $t:ty) => {{
        let (g, y): (&[$t], &[$t]) = ($g, $y);
        let plane = $r.max(1);
        let sums: Vec<$t> = if g.len() <= PAR_CHUNK {
            g.chunks(plane).zip(y.chunks(plane)).map(|(a, b)| a.iter().zip(b).map(|(x, z)| x * z).sum()).collect()
        } else {
            g.par_chunks(plane)
                .zip(y.par_chunks(plane))
                .map(|(a, b)| a.iter().zip(b).map(|(x, z)| x * z).sum())
                .collect()
        };
        if $per {
            sums
        } else {
            let mut acc = vec![<$t>::default(); $c];
            for (i, v) in sums.iter().enumerate() {
                acc[i % $c] += v;
            }
            acc
        }
    }};
}

impl CustomOp2 for ChannelDot {
    fn name(&self) -> &'static str {
        "ebm-channel-dot"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, r) = bcr(l1, "channel_dot")?;
        if l1.shape() != l2.shape() {
            bail!("channel_dot: shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let per = self.per_example;
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(y)) => {
                CpuStorage::F32(dot_impl!(contiguous(g, l1, "g")?, contiguous(y, l2, "y")?, c, r, per, f32))
            }
            (CpuStorage::F64(g), CpuStorage::F64(y)) => {
                CpuStorage::F64(dot_impl!(contiguous(g, l1, "g")?, contiguous(y, l2, "y")?, c, r, per, f64))
            }
            _ => bail!("channel_dot: matching f32 or f64 operands expected"),
        };
        Ok((out, self.shape.clone()))
    }

    /// Bilinear: `d/dg <G, dot(g, y)> = y * G`, `d/dy = g * G`.
    fn bwd(&self, g: &Tensor, y: &Tensor, _out: &Tensor, gs: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let a = if g.track_op() { Some(scale_channels(y, gs)?) } else { None };
        let b = if y.track_op() { Some(scale_channels(g, gs)?) } else { None };
        Ok((a, b))
    }
}

/// `sum over the spatial dims of g * y`, shaped like the scale `like` (`[B, C]`, `[1, C]` or `[C]`; shared
/// shapes sum over the batch too).
fn channel_dot(g: &Tensor, y: &Tensor, like: &Tensor) -> Result<Tensor> {
    let per_example = like.rank() == 2 && like.dims()[0] == y.dims()[0];
    g.contiguous()?.apply_op2(&y.contiguous()?, ChannelDot { per_example, shape: like.shape().clone() })
}

/// `y * s` per channel: `y` `[B, C, ...]`, `s` `[B, C]` (one row per example), `[1, C]` or `[C]` (shared); f32 or
/// f64 on the CPU. Backward: `g * s`, and `sum_hw g * y` only when `s` is part of the graph.
pub fn scale_channels(y: &Tensor, s: &Tensor) -> Result<Tensor> {
    check_cpu_float(y, "scale_channels")?;
    if s.dtype() != y.dtype() {
        bail!("scale_channels: scale is {:?}, input {:?}", s.dtype(), y.dtype());
    }
    y.contiguous()?.apply_op2(&s.contiguous()?, ScaleChannels)
}

// ---------------------------------------------------------------------------------------------------------------
// convolution with an input bias and an activation

/// `act(conv(x + bias, w))`: the bias (optional third operand, `[B, Cin]`, `[1, Cin]` or `[Cin]`) is added while
/// the input is copied into the kernels' scratch, the leaky ReLU (optional) as the output is written.
/// `g * (y > 0 ? 1 : alpha)`: the gradient through a leaky ReLU whose output (or input) was `y`.
pub fn leaky_relu_grad(y: &Tensor, g: &Tensor, alpha: f64) -> Result<Tensor> {
    y.contiguous()?.apply_op2(&g.contiguous()?, LeakyReluGrad(alpha))
}

// ---------------------------------------------------------------------------------------------------------------
// residual block tail

/// `act(pool(a + b))`: `pool` the 2x2 average with stride 2 (VALID: an odd last row or column is dropped), `act`
/// a leaky ReLU of slope `leaky` (0 for a ReLU) or none.
#[derive(Debug, Clone, Copy)]
struct Tail {
    pool: bool,
    leaky: Option<f64>,
}

/// Its gradient `(g, y) -> d` for an input of spatial size `hw`: the same `d` for both summands.
#[derive(Debug, Clone, Copy)]
struct TailGrad {
    tail: Tail,
    hw: (usize, usize),
}

/// f32 or f64.
trait Real: Copy + Send + Sync + PartialOrd + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    fn of(v: f64) -> Self;
}
impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
}
impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
}

#[inline(always)]
fn act<T: Real>(v: T, leaky: Option<T>) -> T {
    match leaky {
        Some(a) if v <= T::of(0.0) => v * a,
        _ => v,
    }
}

#[inline(always)]
fn act_grad<T: Real>(y: T, leaky: Option<T>) -> T {
    match leaky {
        Some(a) if y <= T::of(0.0) => a,
        _ => T::of(1.0),
    }
}

fn tail_fwd<T: Real>(a: &[T], b: &[T], planes: usize, (h, w): (usize, usize), t: Tail) -> Vec<T> {
    let leaky = t.leaky.map(T::of);
    let (ho, wo) = if t.pool { (h / 2, w / 2) } else { (h, w) };
    let mut y = output_vec::<T>(planes * ho * wo);
    let plane = |p: usize, out: &mut [T]| {
        let (a, b) = (&a[p * h * w..(p + 1) * h * w], &b[p * h * w..(p + 1) * h * w]);
        if !t.pool {
            for ((o, x), z) in out.iter_mut().zip(a).zip(b) {
                *o = act(*x + *z, leaky);
            }
            return;
        }
        let q = T::of(0.25);
        for oy in 0..ho {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            for ox in 0..wo {
                let c = 2 * ox;
                let s = (a[r0 + c] + b[r0 + c]) + (a[r0 + c + 1] + b[r0 + c + 1]);
                let s = s + (a[r1 + c] + b[r1 + c]) + (a[r1 + c + 1] + b[r1 + c + 1]);
                out[oy * wo + ox] = act(s * q, leaky);
            }
        }
    };
    if y.len() <= PAR_CHUNK || ho * wo == 0 {
        for (p, out) in y.chunks_mut((ho * wo).max(1)).enumerate() {
            plane(p, out);
        }
    } else {
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(p, out)| plane(p, out));
    }
    y
}

fn tail_bwd<T: Real>(g: &[T], y: &[T], planes: usize, (h, w): (usize, usize), t: Tail) -> Vec<T> {
    let leaky = t.leaky.map(T::of);
    let (ho, wo) = if t.pool { (h / 2, w / 2) } else { (h, w) };
    let mut d = output_vec::<T>(planes * h * w);
    let plane = |p: usize, out: &mut [T]| {
        let (g, y) = (&g[p * ho * wo..(p + 1) * ho * wo], &y[p * ho * wo..(p + 1) * ho * wo]);
        if !t.pool {
            for ((o, gv), yv) in out.iter_mut().zip(g).zip(y) {
                *o = *gv * act_grad(*yv, leaky);
            }
            return;
        }
        let q = T::of(0.25);
        for oy in 0..ho {
            for ox in 0..wo {
                let v = g[oy * wo + ox] * act_grad(y[oy * wo + ox], leaky) * q;
                let (r0, r1, c) = (2 * oy * w, (2 * oy + 1) * w, 2 * ox);
                out[r0 + c] = v;
                out[r0 + c + 1] = v;
                out[r1 + c] = v;
                out[r1 + c + 1] = v;
            }
            if w % 2 == 1 {
                out[2 * oy * w + w - 1] = T::of(0.0);
                out[(2 * oy + 1) * w + w - 1] = T::of(0.0);
            }
        }
        if h % 2 == 1 {
            out[(h - 1) * w..].fill(T::of(0.0));
        }
    };
    if d.len() <= PAR_CHUNK || h * w == 0 {
        for (p, out) in d.chunks_mut((h * w).max(1)).enumerate() {
            plane(p, out);
        }
    } else {
        d.par_chunks_mut(h * w).enumerate().for_each(|(p, out)| plane(p, out));
    }
    d
}

fn planes_hw(l: &Layout, what: &str) -> Result<(usize, (usize, usize))> {
    match l.dims() {
        &[b, c, h, w] => Ok((b * c, (h, w))),
        d => bail!("{what}: [B, C, H, W] expected, got {d:?}"),
    }
}

impl CustomOp2 for Tail {
    fn name(&self) -> &'static str {
        "ebm-residual-tail"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!("residual tail: summands of shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let (planes, (h, w)) = planes_hw(l1, "residual tail")?;
        let out = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(tail_fwd(contiguous(a, l1, "a")?, contiguous(b, l2, "b")?, planes, (h, w), *self))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(tail_fwd(contiguous(a, l1, "a")?, contiguous(b, l2, "b")?, planes, (h, w), *self))
            }
            _ => bail!("residual tail: matching f32 or f64 operands expected"),
        };
        let d = l1.dims();
        let shape = if self.pool { Shape::from((d[0], d[1], h / 2, w / 2)) } else { l1.shape().clone() };
        Ok((out, shape))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !a.track_op() && !b.track_op() {
            return Ok((None, None));
        }
        let (_, _, h, w) = a.dims4()?;
        let d = g.contiguous()?.apply_op2(&y.contiguous()?, TailGrad { tail: *self, hw: (h, w) })?;
        Ok((a.track_op().then(|| d.clone()), b.track_op().then_some(d)))
    }
}

impl CustomOp2 for TailGrad {
    fn name(&self) -> &'static str {
        "ebm-residual-tail-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!("residual tail grad: shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let (planes, (ho, wo)) = planes_hw(l1, "residual tail grad")?;
        let (h, w) = self.hw;
        let expect = if self.tail.pool { (h / 2, w / 2) } else { (h, w) };
        if (ho, wo) != expect {
            bail!("residual tail grad: gradient {ho}x{wo} for an input {h}x{w}");
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(y)) => {
                CpuStorage::F32(tail_bwd(contiguous(g, l1, "g")?, contiguous(y, l2, "y")?, planes, (h, w), self.tail))
            }
            (CpuStorage::F64(g), CpuStorage::F64(y)) => {
                CpuStorage::F64(tail_bwd(contiguous(g, l1, "g")?, contiguous(y, l2, "y")?, planes, (h, w), self.tail))
            }
            _ => bail!("residual tail grad: matching f32 or f64 operands expected"),
        };
        let d = l1.dims();
        Ok((out, Shape::from((d[0], d[1], h, w))))
    }

    /// Linear in `g`: the adjoint is `mask . pool(G)` (piecewise constant in `y`).
    fn bwd(&self, g: &Tensor, y: &Tensor, _d: &Tensor, gd: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !g.track_op() {
            return Ok((None, None));
        }
        let (_, _, h, w) = gd.dims4()?;
        let pooled = if self.tail.pool {
            gd.narrow(2, 0, h / 2 * 2)?.narrow(3, 0, w / 2 * 2)?.contiguous()?.avg_pool2d(2)?
        } else {
            gd.clone()
        };
        let masked = match self.tail.leaky {
            Some(a) => leaky_relu_grad(y, &pooled, a)?,
            None => pooled,
        };
        Ok((Some(masked), None))
    }
}

/// The end of a residual block, `act(pool(a + b))`, in one pass: `pool` the 2x2 average with stride 2 (VALID: an
/// odd last row or column is dropped), `act` a leaky ReLU of slope `leaky` (0 for a ReLU) or none; f32 or f64 on
/// the CPU. Backward: one pass, the same gradient for both summands.
pub fn residual_tail(a: &Tensor, b: &Tensor, pool: bool, leaky: Option<f64>) -> Result<Tensor> {
    check_cpu_float(a, "residual_tail")?;
    if a.dtype() != b.dtype() || a.dims() != b.dims() {
        bail!("residual_tail: summands {:?} {:?} and {:?} {:?}", a.dims(), a.dtype(), b.dims(), b.dtype());
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, Tail { pool, leaky })
}
