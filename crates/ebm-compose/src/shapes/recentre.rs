//! Energies that look at an image from elsewhere: the size model moved onto the requested position ([`Recentred`],
//! built on whole-pixel [`translate`]), and the size model used as a classifier over a grid of scales
//! ([`size_classifier`], [`bayes_composite`]).

use candle_core::{Device, Tensor};
use ebm_sampler::{Energy, LogSumExp, Neg, Sum, Term};
use std::sync::Arc;

/// Translates each image of `x` (`[B, C, H, W]`) by whole pixels: row `b` of the result at `(y, x)` is the input
/// at `(y - t_y, x - t_x)` with `(t_x, t_y) = shifts[b]`, and 0 where that falls outside the image.
pub fn translate(x: &Tensor, shifts: &[(i32, i32)]) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let [b, c, h, w] = dims[..] else { candle_core::bail!("translate takes [B, C, H, W], got {dims:?}") };
    if shifts.len() != b {
        candle_core::bail!("translate: {} shifts for a batch of {b}", shifts.len());
    }
    let v = x.to_device(&Device::Cpu)?.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; v.len()];
    let (h, w) = (h as i64, w as i64);
    for (r, &(tx, ty)) in shifts.iter().enumerate() {
        for ch in 0..c {
            let base = (r * c + ch) * (h * w) as usize;
            for yy in 0..h {
                let sy = yy - ty as i64;
                if !(0..h).contains(&sy) {
                    continue;
                }
                for xx in 0..w {
                    let sx = xx - tx as i64;
                    if (0..w).contains(&sx) {
                        out[base + (yy * w + xx) as usize] = v[base + (sy * w + sx) as usize];
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, dims, x.device())?.to_dtype(x.dtype())
}

/// The whole-pixel shift that moves position `p` (of `ebm_data::shapes`' 0..1 units) to the centre of a
/// `side`-pixel image.
pub fn recentring_shift(p: [f32; 2], side: usize) -> (i32, i32) {
    let t =
        |v: f32| (ebm_data::shapes::pos_to_pixel(0.5, side) - ebm_data::shapes::pos_to_pixel(v as f64, side)).round();
    (t(p[0]) as i32, t(p[1]) as i32)
}

/// An energy that looks at each image translated by its own whole-pixel shift: `E(x) = E_inner(T_b x)`, with
/// [`translate`] as `T_b`. Its input gradient is the inner one translated back, `T_b^T g = T_{-b} g` (0 on the
/// pixels the translation drops).
pub struct Recentred {
    pub inner: Arc<dyn Energy + Send + Sync>,
    /// One `(t_x, t_y)` per row of the batch.
    pub shifts: Vec<(i32, i32)>,
}

impl Recentred {
    fn back(&self) -> Vec<(i32, i32)> {
        self.shifts.iter().map(|&(a, b)| (-a, -b)).collect()
    }
}

impl Energy for Recentred {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.inner.energy(&translate(x, &self.shifts)?, cond)
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        let (e, g) = self.inner.energy_and_grad(&translate(x, &self.shifts)?, cond)?;
        // the transpose of "pixel y takes x(y - t)" gives pixel p the gradient at p + t, and 0 when p + t is outside
        // the image: exactly the translation by -t
        Ok((e, translate(&g, &self.back())?))
    }
}

/// `-log p_s(s | x) = E_s(x | s) + log sum_k exp(-E_s(x | s_k))`, the size model as a classifier over the scale
/// grid `grid`, for a batch whose rows request the scales `scale` (`[B, 1]`): `Sum` of `Term(size, cond s)` and
/// `Neg(LogSumExp(Term(size, cond s_k) for each k))`. It is never negative when every requested scale is on the
/// grid (a probability is at most 1) and unchanged by adding to `E_s` anything that does not depend on the scale.
pub fn size_classifier(size: Arc<dyn Energy + Send + Sync>, scale: &Tensor, grid: &[f32]) -> candle_core::Result<Sum> {
    let b = scale.dims()[0];
    let mut lse = Vec::with_capacity(grid.len());
    for &g in grid {
        lse.push(
            Term::new(size.clone(), 1.0).with_cond(Tensor::full(g, (b, 1), scale.device())?.to_dtype(scale.dtype())?),
        );
    }
    Ok(Sum::new(vec![
        Term::new(size, 1.0).with_cond(scale.clone()),
        Term::new(Arc::new(Neg(LogSumExp::new(lse))), 1.0),
    ]))
}

/// The [`Composition::Bayes`] energy: `E_p(x | pos) + w (-log p_s(s | x))` ([`size_classifier`]).
pub fn bayes_composite(
    position: Arc<dyn Energy + Send + Sync>,
    pos: &Tensor,
    size: Arc<dyn Energy + Send + Sync>,
    scale: &Tensor,
    grid: &[f32],
    w: f64,
) -> candle_core::Result<Sum> {
    Ok(Sum::new(vec![
        Term::new(position, 1.0).with_cond(pos.clone()),
        Term::new(Arc::new(size_classifier(size, scale, grid)?), w),
    ]))
}
