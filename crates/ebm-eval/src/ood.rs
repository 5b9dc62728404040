//! Out-of-distribution detection (reference 4.2): the score of an input is `-E(x)` on the raw input with no
//! Langevin, or `-min_y E(x, y)` for a class-conditional model; in-distribution inputs are the positives, and the
//! AUROC says how well the score ranks them above the out-of-distribution ones.
//!
//! The synthetic negative sets of the paper are here: uniform noise, constant images of a uniform random colour,
//! and midpoints of pairs of in-distribution images (the official `(x_i + x_{i+1 mod B}) / 2`).

use crate::classify::class_energy_values;
use candle_core::{DType, Result, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::Energy;

/// The area under the ROC curve of scores where `pos` should rank above `neg`: the probability that a random
/// positive scores above a random negative, ties counting one half (the Mann-Whitney statistic with midranks,
/// which is what `sklearn.metrics.roc_auc_score` computes). Errors on an empty side or a NaN score.
pub fn auroc(pos: &[f32], neg: &[f32]) -> Result<f64> {
    if pos.is_empty() || neg.is_empty() {
        candle_core::bail!("AUROC needs scores on both sides ({} positives, {} negatives)", pos.len(), neg.len());
    }
    if pos.iter().chain(neg).any(|v| v.is_nan()) {
        candle_core::bail!("AUROC: a score is NaN");
    }
    let mut all: Vec<(f32, bool)> = pos.iter().map(|&s| (s, true)).chain(neg.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // sum of the positives' midranks (1-based)
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * all[i..=j].iter().filter(|e| e.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Ok((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// OOD scores of `x` in batches: `-E(x)`, or `-min_y E(x, y)` over `classes` classes when `classes > 0`.
pub fn scores<E: Energy + ?Sized>(model: &E, x: &Tensor, classes: usize, batch: usize) -> Result<Vec<f32>> {
    let n = x.dims()[0];
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = batch.max(1).min(n - start);
        let xb = x.narrow(0, start, len)?;
        let e =
            if classes > 0 { class_energy_values(model, &xb, classes)?.min(1)? } else { model.energy(&xb, None)? };
        out.extend(e.neg()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        start += len;
    }
    Ok(out)
}

fn batch_of(n: usize, shape: [usize; 3], v: Vec<f32>, dev: &candle_core::Device) -> Result<Tensor> {
    Tensor::from_vec(v, (n, shape[0], shape[1], shape[2]), dev)
}

/// `n` images of independent U(0, 1) pixels.
pub fn uniform_noise(n: usize, shape: [usize; 3], rng: &mut Rng, dev: &candle_core::Device) -> Result<Tensor> {
    let per: usize = shape.iter().product();
    batch_of(n, shape, rng.uniform_vec(n * per, 0.0, 1.0), dev)
}

/// `n` constant images, each of one colour drawn uniformly (one U(0, 1) value per channel).
pub fn constant_images(n: usize, shape: [usize; 3], rng: &mut Rng, dev: &candle_core::Device) -> Result<Tensor> {
    let plane = shape[1] * shape[2];
    let mut v = Vec::with_capacity(n * shape[0] * plane);
    for _ in 0..n {
        for _ in 0..shape[0] {
            let c = rng.uniform();
            v.extend(std::iter::repeat_n(c, plane));
        }
    }
    batch_of(n, shape, v, dev)
}

/// Midpoints `(x_i + x_j) / 2` of `x`'s images, `j` the next image in a random order of the set (so every image
/// is paired with another one, as the official within-batch `x_{i+1 mod B}`).
pub fn interpolations(x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let n = x.dims()[0];
    if n < 2 {
        candle_core::bail!("interpolations need at least two images, got {n}");
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let mut partner = vec![0u32; n];
    for k in 0..n {
        partner[order[k] as usize] = order[(k + 1) % n];
    }
    let idx = Tensor::from_vec(partner, n, x.device())?;
    (x + x.index_select(&idx, 0)?)? * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(pos: &[f32], neg: &[f32]) -> f64 {
        let mut s = 0.0;
        for p in pos {
            for q in neg {
                s += if p > q {
                    1.0
                } else if p == q {
                    0.5
                } else {
                    0.0
                };
            }
        }
        s / (pos.len() * neg.len()) as f64
    }

    #[test]
    fn hand_made_scores_with_ties() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]).unwrap(), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), 0.0);
        assert_eq!(auroc(&[0.5; 4], &[0.5; 7]).unwrap(), 0.5);
        // pairs: 0.9 beats both; each 0.5 ties the 0.5 and beats 0.1: (2 + 1.5 + 1.5) / 6
        assert!((auroc(&[0.9, 0.5, 0.5], &[0.5, 0.1]).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // 1 beats only the 0; each 2 ties the 2 and beats the 0: (1 + 1.5 + 1.5) / 9
        assert!((auroc(&[1.0, 2.0, 2.0], &[2.0, 3.0, 0.0]).unwrap() - 4.0 / 9.0).abs() < 1e-12);
        assert!(auroc(&[], &[1.0]).is_err());
        assert!(auroc(&[f32::NAN], &[1.0]).is_err());
    }

    #[test]
    fn agrees_with_the_pair_count_on_heavily_tied_scores() {
        let mut r = Rng::new(3);
        for trial in 0..20 {
            let np = 1 + r.below(40) as usize;
            let nn = 1 + r.below(40) as usize;
            // scores on a grid of 5 values: many ties within and across the sets
            let pos: Vec<f32> = (0..np).map(|_| r.below(5) as f32).collect();
            let neg: Vec<f32> = (0..nn).map(|_| r.below(5) as f32 - 0.5 * (trial % 2) as f32).collect();
            let (a, b) = (auroc(&pos, &neg).unwrap(), brute(&pos, &neg));
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn synthetic_sets_have_their_shapes_and_ranges() {
        let dev = candle_core::Device::Cpu;
        let mut r = Rng::new(0);
        let c = constant_images(5, [3, 4, 4], &mut r, &dev).unwrap();
        let flat = c.flatten_from(2).unwrap().to_vec3::<f32>().unwrap();
        for img in &flat {
            for ch in img {
                assert!(ch.iter().all(|p| *p == ch[0] && (0.0..1.0).contains(p)));
            }
        }
        let x = uniform_noise(6, [1, 2, 2], &mut r, &dev).unwrap();
        let m = interpolations(&x, &mut r).unwrap();
        assert_eq!(m.dims(), x.dims());
        // each midpoint lies between its image and some other image of the set
        let xs = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let ms = m.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        for (i, mi) in ms.iter().enumerate() {
            let ok = (0..6)
                .filter(|&j| j != i)
                .any(|j| mi.iter().zip(&xs[i]).zip(&xs[j]).all(|((m, a), b)| (m - 0.5 * (a + b)).abs() < 1e-6));
            assert!(ok, "midpoint {i} is not (x_i + x_j) / 2 for another j");
        }
    }
}
