//! Data augmentation for the classification terms: random translations of a batch, and Gaussian pixel noise.
//!
//! A translation by (dy, dx) moves every pixel of an image by dy rows and dx columns; what moves in from outside
//! is zero (the background of digits and Fashion-MNIST). Each image of the batch draws its own shift uniformly from
//! `[-max, max]^2`, from the caller's RNG, so a seeded run (and its resume) sees the same shifts.

use candle_core::{DType, Device, Tensor};
use ebm_kernels::Rng;

/// The `[B, C, H, W]` batch `x` with every image translated by its own random shift of at most `max` pixels in
/// each direction (zero fill). `max = 0` returns `x` itself and draws nothing.
pub fn random_shift(x: &Tensor, max: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
    if max == 0 {
        return Ok(x.clone());
    }
    let (b, c, h, w) = x.dims4()?;
    let dtype = x.dtype();
    let src = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let span = 2 * max as u64 + 1;
    let shifts: Vec<(isize, isize)> =
        (0..b).map(|_| (rng.below(span) as isize - max as isize, rng.below(span) as isize - max as isize)).collect();
    let mut out = vec![0f32; src.len()];
    let plane = h * w;
    for (i, &(dy, dx)) in shifts.iter().enumerate() {
        for ch in 0..c {
            let base = (i * c + ch) * plane;
            translate(&src[base..base + plane], &mut out[base..base + plane], h, w, dy, dx);
        }
    }
    Tensor::from_vec(out, (b, c, h, w), &Device::Cpu)?.to_dtype(dtype)?.to_device(x.device())
}

/// The batch `x` plus independent Gaussian noise of standard deviation `std` on every pixel, from the caller's
/// RNG (not clamped: the classifier sees the noisy image as drawn). Training a classifier on noisy copies
/// smooths its input gradient, which is what Langevin on the same energy follows. `std = 0` returns `x` itself
/// and draws nothing.
pub fn gaussian_noise(x: &Tensor, std: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    if std == 0.0 {
        return Ok(x.clone());
    }
    let noise = rng.normal_vec(x.elem_count(), 0.0, std);
    let noise = Tensor::from_vec(noise, x.dims(), &Device::Cpu)?.to_dtype(x.dtype())?.to_device(x.device())?;
    x + noise
}

/// `dst[y][x] = src[y - dy][x - dx]` where that pixel exists; `dst` is zero elsewhere (it comes in zeroed).
fn translate(src: &[f32], dst: &mut [f32], h: usize, w: usize, dy: isize, dx: isize) {
    for y in 0..h as isize {
        let sy = y - dy;
        if sy < 0 || sy >= h as isize {
            continue;
        }
        for x in 0..w as isize {
            let sx = x - dx;
            if sx >= 0 && sx < w as isize {
                dst[(y as usize) * w + x as usize] = src[(sy as usize) * w + sx as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_pixels_and_fills_with_zero() {
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut dst = vec![0f32; 9];
        translate(&src, &mut dst, 3, 3, 1, -1);
        // down one row, left one column
        assert_eq!(dst, vec![0., 0., 0., 2., 3., 0., 5., 6., 0.]);
    }

    #[test]
    fn every_image_keeps_its_mass_within_the_shift_and_shifts_vary() {
        // one bright pixel in the middle of each 9x9 image: after a shift of at most 2 it is still there, at most 2
        // rows and columns away, and over 64 images more than one offset occurs
        let (b, h, w) = (64, 9, 9);
        let mut v = vec![0f32; b * h * w];
        for i in 0..b {
            v[i * h * w + 4 * w + 4] = 1.0;
        }
        let x = Tensor::from_vec(v, (b, 1, h, w), &Device::Cpu).unwrap();
        let y = random_shift(&x, 2, &mut Rng::new(3)).unwrap().flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let mut offsets = std::collections::BTreeSet::new();
        for img in &y {
            let at = img.iter().position(|&p| p == 1.0).expect("the pixel stays inside");
            assert_eq!(img.iter().sum::<f32>(), 1.0);
            let (dy, dx) = (at as isize / w as isize - 4, at as isize % w as isize - 4);
            assert!(dy.abs() <= 2 && dx.abs() <= 2, "shift ({dy}, {dx})");
            offsets.insert((dy, dx));
        }
        assert!(offsets.len() > 10, "only {} distinct shifts in 64 draws", offsets.len());
        let same = random_shift(&x, 0, &mut Rng::new(3)).unwrap();
        assert_eq!(
            same.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn noise_has_the_asked_spread_and_zero_draws_nothing() {
        let x = Tensor::full(0.5f32, (32, 1, 8, 8), &Device::Cpu).unwrap();
        let mut rng = Rng::new(7);
        let y = gaussian_noise(&x, 0.2, &mut rng).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = y.len() as f64;
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        // 2048 draws: the mean within 4 standard errors (0.018) of 0.5, the spread within 5% of 0.2
        assert!((mean - 0.5).abs() < 0.018, "mean {mean}");
        assert!((sd - 0.2).abs() < 0.01, "std {sd}");
        let before = rng.state();
        let same = gaussian_noise(&x, 0.0, &mut rng).unwrap();
        assert_eq!(rng.state(), before, "std 0 draws nothing");
        assert_eq!(same.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.5f32; 2048]);
    }
}
