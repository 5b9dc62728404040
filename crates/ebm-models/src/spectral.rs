//! Spectral normalisation with the official semantics (igebm-reference 1.4): the kernel reshaped to a matrix,
//! one power iteration per refresh with the stored vector `u`, and the clamp-only variant for zero-initialised
//! residual convs.

use candle_core::{Result, Tensor};

/// TensorFlow's `l2_normalize`: `v / sqrt(max(sum(v^2), 1e-12))`.
pub fn l2_normalize(v: &Tensor) -> Result<Tensor> {
    let ss = v.sqr()?.sum_all()?.maximum(1e-12)?;
    v.broadcast_div(&ss.sqrt()?)
}

/// How the normalised weight is formed from `W` and its largest singular value `sigma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnKind {
    /// `W / sigma`.
    Normal,
    /// `W / (sigma + 1e-6) * min(sigma + 1e-6, 1)`: only clamps the norm to at most 1 (every block's second conv).
    ClampOnly,
}

/// One power iteration on `w` (any layout whose first dimension is the output size, `[cout, ...]`) from `u`
/// (`[1, cout]`). Returns the normalised weight, with its gradient path to `w` through `sigma` as in TensorFlow
/// (`u` and `v` are constants), and the updated `u`.
pub fn spectral_normalize(w: &Tensor, u: &Tensor, kind: SnKind) -> Result<(Tensor, Tensor)> {
    let cout = w.dims()[0];
    let wm = w.reshape((cout, ()))?; // [cout, K]: the transpose of the official [K, cout]
    let wd = wm.detach();
    let v = l2_normalize(&u.detach().matmul(&wd)?)?; // [1, K]
    let u_new = l2_normalize(&v.matmul(&wd.t()?)?)?; // [1, cout]
    let sigma = v.matmul(&wm.t()?)?.matmul(&u_new.t()?)?.reshape(())?;
    let wn = match kind {
        SnKind::Normal => w.broadcast_div(&sigma)?,
        SnKind::ClampOnly => {
            let s = (sigma + 1e-6)?;
            w.broadcast_div(&s)?.broadcast_mul(&s.minimum(1.0)?)?
        }
    };
    Ok((wn, u_new))
}
