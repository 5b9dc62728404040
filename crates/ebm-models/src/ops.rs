//! Tensor operations of the networks that are not plain candle calls: the single convolution entry point, TF SAME
//! padding, VALID average pooling and dropout.
//!
//! Every convolution of the zoo goes through [`conv2d`], so faster kernels can be swapped in at one place. On the
//! CPU in f32 it runs `ebm_kernels::conv` (Winograd / im2col on a packed GEMM, with a backward pass that skips
//! the weight gradient of constant weights); other dtypes and devices, or [`ConvBackend::Candle`], use candle's
//! own `conv2d`.

use crate::config::Activation;
use candle_core::{Result, Tensor};
use ebm_kernels::Rng;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Which implementation [`conv2d`] uses where both apply (f32 on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvBackend {
    /// `ebm_kernels::conv` (the default).
    Fast,
    /// candle's `Tensor::conv2d` (the reference; slower, and its backward pass always computes the weight
    /// gradient).
    Candle,
}

/// 0 = not yet read from the environment, 1 = fast, 2 = candle.
static BACKEND: AtomicU8 = AtomicU8::new(0);

/// The convolution backend: set by [`set_conv_backend`], else by the environment variable `EBM_CONV`
/// (`candle` or `fast`), else [`ConvBackend::Fast`].
pub fn conv_backend() -> ConvBackend {
    match BACKEND.load(Ordering::Relaxed) {
        1 => ConvBackend::Fast,
        2 => ConvBackend::Candle,
        _ => {
            let b = match std::env::var("EBM_CONV").as_deref() {
                Ok("candle") => ConvBackend::Candle,
                _ => ConvBackend::Fast,
            };
            // a concurrent set_conv_backend wins
            let _ = BACKEND.compare_exchange(0, backend_code(b), Ordering::Relaxed, Ordering::Relaxed);
            conv_backend()
        }
    }
}

fn backend_code(b: ConvBackend) -> u8 {
    match b {
        ConvBackend::Fast => 1,
        ConvBackend::Candle => 2,
    }
}

/// Selects the convolution backend for the whole process (benchmarks compare the two; results agree to float
/// tolerance).
pub fn set_conv_backend(b: ConvBackend) {
    BACKEND.store(backend_code(b), Ordering::Relaxed);
}

/// Zero padding of the two spatial dimensions, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad2d {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pad2d {
    /// The same padding on every side.
    pub fn uniform(p: usize) -> Self {
        Self { top: p, bottom: p, left: p, right: p }
    }

    /// TensorFlow's `SAME` padding for an `h x w` input, a `kh x kw` kernel and `stride`: the output is
    /// `ceil(h / stride) x ceil(w / stride)` and the odd pixel of padding goes bottom/right.
    pub fn same(h: usize, w: usize, kh: usize, kw: usize, stride: usize) -> Self {
        let along = |n: usize, k: usize| {
            let out = n.div_ceil(stride);
            ((out.saturating_sub(1)) * stride + k).saturating_sub(n)
        };
        let (ph, pw) = (along(h, kh), along(w, kw));
        Self { top: ph / 2, bottom: ph - ph / 2, left: pw / 2, right: pw - pw / 2 }
    }

    fn is_uniform(&self) -> bool {
        self.top == self.bottom && self.left == self.right && self.top == self.left
    }
}

impl From<Pad2d> for ebm_kernels::ConvPad {
    fn from(p: Pad2d) -> Self {
        Self { top: p.top, bottom: p.bottom, left: p.left, right: p.right }
    }
}

/// 2D convolution of `x` `[B, Cin, H, W]` with `w` `[Cout, Cin, kh, kw]` (PyTorch layout), zero padding `pad` and
/// `stride`, no bias: THE convolution of the crate (see the module docs for the backends).
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: Pad2d) -> Result<Tensor> {
    count_macs(x, w, stride, pad);
    if conv_backend() == ConvBackend::Fast && ebm_kernels::conv::supported(x, w) {
        return ebm_kernels::conv2d(x, w, stride, pad.into());
    }
    candle_conv2d(x, w, stride, pad)
}

/// Multiply-adds of the forward convolutions run through [`conv2d`] so far (process-wide), for FLOP counts in
/// benchmarks: the input gradient and the weight gradient of a convolution each cost as many again.
pub fn conv_macs() -> u64 {
    CONV_MACS.load(Ordering::Relaxed)
}

static CONV_MACS: AtomicU64 = AtomicU64::new(0);

/// [`conv2d`] by candle's own kernels, whatever the backend setting.
pub fn candle_conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: Pad2d) -> Result<Tensor> {
    if pad.is_uniform() {
        return x.conv2d(w, pad.top, stride, 1, 1);
    }
    let xp = x.pad_with_zeros(2, pad.top, pad.bottom)?.pad_with_zeros(3, pad.left, pad.right)?;
    xp.conv2d(w, 0, stride, 1, 1)
}

/// The official `conv_block`: `act(conv(x + in_bias) * gain)`, the convolution with zero padding `pad` and
/// `stride` (see [`conv2d`]). `in_bias` is `[B, Cin]` or `[1, Cin]` (also accepted with trailing 1x1 dims, or as
/// `[Cin]`), `gain` likewise with `Cout`. On the fast backend the bias is fused into the convolution's input
/// copy, a leaky ReLU or ReLU (without gain) into its output (and its gradient mask into the input gradient), and
/// the gain is one pass forward and backward; otherwise candle's broadcast ops and [`crate::layers::activate`].
pub fn cond_conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: Pad2d,
    in_bias: Option<&Tensor>,
    gain: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let fast = conv_backend() == ConvBackend::Fast;
    let bias = in_bias.map(channel_rows).transpose()?;
    let fast_conv = fast && ebm_kernels::conv::supported(x, w) && bias.as_ref().is_none_or(|b| b.dtype() == x.dtype());
    // the activation fuses into the convolution unless a gain comes between them
    let fused_slope = if fast_conv && gain.is_none() { act.and_then(act_slope) } else { None };
    let y = if fast_conv {
        count_macs(x, w, stride, pad);
        ebm_kernels::conv::conv2d_block(
            x,
            w,
            bias.as_ref(),
            stride,
            pad.into(),
            fused_slope,
            ebm_kernels::ConvAlgo::Auto,
        )?
    } else {
        match &bias {
            Some(b) => {
                let c = b.dims()[1];
                conv2d(&x.broadcast_add(&b.reshape((b.dims()[0], c, 1, 1))?)?, w, stride, pad)?
            }
            None => conv2d(x, w, stride, pad)?,
        }
    };
    let y = match gain {
        Some(g) if fast && ebm_kernels::conv::elementwise_supported(&y) && g.dtype() == y.dtype() => {
            ebm_kernels::conv::scale_channels(&y, &channel_rows(g)?)?
        }
        Some(g) => {
            let g = channel_rows(g)?;
            let c = g.dims()[1];
            y.broadcast_mul(&g.reshape((g.dims()[0], c, 1, 1))?)?
        }
        None => y,
    };
    match act {
        Some(a) if fused_slope.is_none() => crate::layers::activate(&y, a),
        _ => Ok(y),
    }
}

/// The slope of an activation that is a leaky ReLU (the official 0.2; a ReLU is slope 0), `None` for swish.
fn act_slope(act: Activation) -> Option<f64> {
    match act {
        Activation::LeakyRelu => Some(0.2),
        Activation::Relu => Some(0.0),
        Activation::Swish => None,
    }
}

/// The end of a residual block: `act(avgpool2x2(h + shortcut))` (pooling only with `down`, VALID as in
/// [`avg_pool2x2`]). On the fast backend one pass forward and one backward (for f32/f64 on the CPU).
pub fn residual_tail(h: &Tensor, shortcut: &Tensor, down: bool, act: Activation) -> Result<Tensor> {
    let fast = conv_backend() == ConvBackend::Fast
        && ebm_kernels::conv::elementwise_supported(h)
        && h.dtype() == shortcut.dtype()
        && h.dims() == shortcut.dims()
        && h.rank() == 4;
    if fast {
        return match act_slope(act) {
            Some(s) => ebm_kernels::conv::residual_tail(h, shortcut, down, Some(s)),
            None => crate::layers::activate(&ebm_kernels::conv::residual_tail(h, shortcut, down, None)?, act),
        };
    }
    let y = (h + shortcut)?;
    let y = if down { avg_pool2x2(&y)? } else { y };
    crate::layers::activate(&y, act)
}

fn count_macs(x: &Tensor, w: &Tensor, stride: usize, pad: Pad2d) {
    if let (Ok((b, _, h, wd)), Ok((co, ci, kh, kw))) = (x.dims4(), w.dims4()) {
        let ho = (h + pad.top + pad.bottom).saturating_sub(kh) / stride.max(1) + 1;
        let wo = (wd + pad.left + pad.right).saturating_sub(kw) / stride.max(1) + 1;
        CONV_MACS.fetch_add((b * co * ho * wo * ci * kh * kw) as u64, Ordering::Relaxed);
    }
}

/// A per-channel vector as `[rows, C]`: from `[C]`, `[rows, C]` or `[rows, C, 1, 1]`.
fn channel_rows(v: &Tensor) -> Result<Tensor> {
    match v.dims() {
        [c] => v.reshape((1, *c)),
        [_, _] => Ok(v.clone()),
        [n, c, 1, 1] => v.reshape((*n, *c)),
        d => candle_core::bail!("a per-channel vector must be [C], [B, C] or [B, C, 1, 1], got {d:?}"),
    }
}

/// `max(x, alpha x)` for `0 < alpha < 1`: a one-pass custom op (and one-pass backward) on the fast backend for
/// f32/f64 on the CPU, candle's `maximum` otherwise.
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    if conv_backend() == ConvBackend::Fast && ebm_kernels::conv::elementwise_supported(x) {
        return ebm_kernels::conv::leaky_relu(x, alpha);
    }
    x.maximum(&(x * alpha)?)
}

/// Convolution with TensorFlow `SAME` padding (see [`Pad2d::same`]).
pub fn conv2d_same(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    conv2d(x, w, stride, Pad2d::same(h, wd, kh, kw, stride))
}

/// 2x2 average pooling with stride 2 and `VALID` padding (an odd last row or column is dropped, as in
/// TensorFlow). The odd case is cropped first so candle's backward pass (nearest upsampling) stays exact.
pub fn avg_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = if h % 2 == 1 { x.narrow(2, 0, h - 1)? } else { x.clone() };
    let x = if w % 2 == 1 { x.narrow(3, 0, w - 1)? } else { x };
    x.avg_pool2d(2)
}

/// Inverted dropout as `tf.layers.dropout(rate)` in training mode: each element is kept with probability
/// `1 - rate` and then scaled by `1 / (1 - rate)`. The mask is drawn from `rng` (one uniform per element, kept
/// when `u >= rate`), never from candle's generator.
pub fn dropout(x: &Tensor, rate: f32, rng: &Mutex<Rng>) -> Result<Tensor> {
    if rate <= 0.0 {
        return Ok(x.clone());
    }
    if rate >= 1.0 {
        return x.zeros_like();
    }
    let n = x.elem_count();
    let u =
        rng.lock().map_err(|_| candle_core::Error::Msg("dropout generator poisoned".into()))?.uniform_vec(n, 0.0, 1.0);
    let scale = 1.0 / (1.0 - rate);
    let mask: Vec<f32> = u.into_iter().map(|u| if u >= rate { scale } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x.mul(&mask)
}

/// Flattens `[B, ...]` to `[B, rest]` in memory (NCHW) order.
pub fn flatten(x: &Tensor) -> Result<Tensor> {
    let b = x.dims()[0];
    x.reshape((b, ()))
}

/// Sum over the spatial dimensions: `[B, C, H, W] -> [B, C]` (the official global pooling is a sum, not a mean).
pub fn global_sum(x: &Tensor) -> Result<Tensor> {
    x.sum((2, 3))
}
