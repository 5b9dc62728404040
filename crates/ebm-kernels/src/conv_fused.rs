//! The elementwise work around the convolutions of the zoo as single-pass custom ops with single-pass backward
//! passes (candle's own formulations cost many full-tensor passes each in backward: `maximum(x, a x)` about
//! twenty, a broadcast multiply or add about five):
//!
//! - [`leaky_relu`]: `max(x, alpha x)`, backward `g * (x > 0 ? 1 : alpha)`;
//! - [`scale_channels`]: `y[b, c, ..] * s[b, c]` (the official output gain), backward `g * s` and, only when
//!   `s` is part of the graph, `sum_hw g * y`;
//! - [`conv2d_biased`]: the convolution of `x + bias[b, c]` with the bias added while the input is copied into
//!   the kernels' padded scratch (before the zero padding, as the official input bias), backward the input
//!   gradient, the bias gradient `sum_hw dx` and the weight gradient, each only when needed.
//!
//! f32 and f64 on the CPU for the elementwise ops (f32 only for the convolution); per-channel vectors are
//! `[B, C]`, or `[1, C]` / `[C]` shared by the batch.

use crate::conv::{self, output_vec, ConvAlgo, ConvPad};
use candle_core::{
    backend::BackendStorage, bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape,
    Tensor,
};
use rayon::prelude::*;

/// Elements per rayon task of the elementwise ops (small tensors run on the calling thread).
const PAR_CHUNK: usize = 32 * 1024;

fn contiguous<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
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
fn vec_rows(l: &Layout, b: usize, c: usize) -> Option<bool> {
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
// convolution with an input bias

struct BiasedConv {
    stride: usize,
    pad: ConvPad,
    algo: ConvAlgo,
}

impl CustomOp3 for BiasedConv {
    fn name(&self) -> &'static str {
        "ebm-conv2d-biased"
    }

    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(bias)) = (s1, s2, s3) else {
            bail!("conv2d_biased: f32 operands expected");
        };
        let (xd, wd) = (l1.dims(), l2.dims());
        if xd.len() != 4 || wd.len() != 4 || xd[1] != wd[1] {
            bail!("conv2d_biased: input {xd:?} and kernel {wd:?} do not match");
        }
        if vec_rows(l3, xd[0], xd[1]).is_none() {
            bail!("conv2d_biased: bias of shape {:?} for an input {xd:?}", l3.dims());
        }
        let g = conv::ConvGeom {
            batch: xd[0],
            cin: xd[1],
            h: xd[2],
            w: xd[3],
            cout: wd[0],
            kh: wd[2],
            kw: wd[3],
            stride: self.stride,
            pad: self.pad,
        };
        if self.stride == 0 || g.hp() < g.kh || g.wp() < g.kw {
            bail!("conv2d_biased: kernel {wd:?} does not fit the padded input {xd:?}");
        }
        let (x, w, bias) = (contiguous(x, l1, "input")?, contiguous(w, l2, "kernel")?, contiguous(bias, l3, "bias")?);
        let mut y = output_vec(g.batch * g.cout * g.p());
        conv::forward_f32(&g, x, w, Some(bias), &mut y, self.algo);
        Ok((CpuStorage::F32(y), Shape::from((g.batch, g.cout, g.ho(), g.wo()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, cin, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let gy = gy.contiguous()?;
        let need_dx = x.track_op() || bias.track_op();
        let dx = if need_dx {
            Some(conv::conv2d_input_grad(&gy, w, self.stride, self.pad, (h, wd), self.algo)?)
        } else {
            None
        };
        let dbias = match (&dx, bias.track_op()) {
            (Some(dx), true) => {
                let s = dx.sum((2, 3))?; // [B, cin]
                Some(match bias.dims() {
                    [n] if *n == cin => s.sum(0)?,
                    [1, _] if b != 1 => s.sum_keepdim(0)?,
                    _ => s,
                })
            }
            _ => None,
        };
        let dw = if w.track_op() {
            let b2 = if bias.rank() == 1 { bias.reshape((1, cin))? } else { bias.clone() };
            let xb = x.broadcast_add(&b2.reshape((b2.dims()[0], cin, 1, 1))?)?;
            Some(conv::conv2d_weight_grad(&xb, &gy, self.stride, self.pad, (kh, kw), self.algo)?)
        } else {
            None
        };
        let dx = if x.track_op() { dx } else { None };
        Ok((dx, dw, dbias))
    }
}

/// The convolution of `x + bias` (`bias` `[B, Cin]`, `[1, Cin]` or `[Cin]`, added before the zero padding) with
/// `w`: see [`conv::conv2d`]. f32 on the CPU. Gradients for all three operands, each only when needed.
pub fn conv2d_biased(x: &Tensor, w: &Tensor, bias: &Tensor, stride: usize, pad: ConvPad) -> Result<Tensor> {
    conv2d_biased_with(x, w, bias, stride, pad, ConvAlgo::Auto)
}

/// [`conv2d_biased`] with an explicit algorithm.
pub fn conv2d_biased_with(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: ConvPad,
    algo: ConvAlgo,
) -> Result<Tensor> {
    if !conv::supported(x, w) || bias.dtype() != DType::F32 {
        bail!("conv2d_biased: f32 operands on the CPU expected");
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, BiasedConv { stride, pad, algo })
}
