//! Tensor operations of the networks that are not plain candle calls: the single convolution entry point, TF SAME
//! padding, VALID average pooling and dropout.
//!
//! Every convolution of the zoo goes through [`conv2d`], so faster kernels (a gradient-only backward pass, CUDA
//! kernels) can be swapped in at one place.

use candle_core::{Result, Tensor};
use ebm_kernels::Rng;
use std::sync::Mutex;

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

/// 2D convolution of `x` `[B, Cin, H, W]` with `w` `[Cout, Cin, kh, kw]` (PyTorch layout), zero padding `pad` and
/// `stride`, no bias: THE convolution of the crate.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: Pad2d) -> Result<Tensor> {
    if pad.is_uniform() {
        return x.conv2d(w, pad.top, stride, 1, 1);
    }
    let xp = x.pad_with_zeros(2, pad.top, pad.bottom)?.pad_with_zeros(3, pad.left, pad.right)?;
    xp.conv2d(w, 0, stride, 1, 1)
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
