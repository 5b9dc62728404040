//! The Fréchet distance between two Gaussians fitted to feature sets: FID when the features are Inception-v3's
//! pool features, the classifier-feature distance when they are a project classifier's.
//!
//! `d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`.
//!
//! The trace of the root is computed without the non-symmetric product `S1 S2` (whose `scipy.linalg.sqrtm` can
//! return complex parts and needs the 1e-6 diagonal fallback of the usual code): with `A = S1^{1/2}` (symmetric,
//! by eigendecomposition), `S1 S2 = A (A S2 A) A^{-1}` is similar to the symmetric PSD matrix `M = A S2 A`, so
//! `tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(M))`. Every step is a symmetric eigenproblem, exact for singular
//! covariances (fewer samples than dimensions). [`FrechetStats`] reports the checks: the residual
//! `|A^2 - S1|_F / |S1|_F` and the most negative eigenvalues met (rounding; clamped to zero).

use crate::linalg::{matmul, mean_cov, sqrtm_psd, sym_eigen};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A Gaussian fitted to features: mean and covariance (row-major `dim x dim`), and how many rows it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
    pub dim: usize,
    pub count: usize,
}

impl Gaussian {
    /// Fits rows of `dim` features (the unbiased covariance, as `np.cov(rowvar=False)`).
    pub fn fit(features: &[f32], dim: usize) -> Result<Self> {
        let (mean, cov) = mean_cov(features, dim)?;
        Ok(Self { mean, cov, dim, count: features.len() / dim })
    }

    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let dim = mean.len();
        if cov.len() != dim * dim {
            candle_core::bail!(
                "a Gaussian of dimension {dim} needs {} covariance values, got {}",
                dim * dim,
                cov.len()
            );
        }
        Ok(Self { mean, cov, dim, count: 0 })
    }
}

/// The distance and the numerical checks of its computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrechetStats {
    pub distance: f64,
    /// `|mu1 - mu2|^2`.
    pub mean_term: f64,
    /// `tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`.
    pub cov_term: f64,
    /// `|A^2 - S1|_F / |S1|_F` for the computed `A = S1^{1/2}`.
    pub sqrt_residual: f64,
    /// Most negative eigenvalue of `S1` and of `A S2 A` (relative to the largest), clamped to zero.
    pub min_rel_eigenvalue: f64,
}

/// The Fréchet distance `d^2` between two Gaussians.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<FrechetStats> {
    if a.dim != b.dim {
        candle_core::bail!("Fréchet distance between features of dimension {} and {}", a.dim, b.dim);
    }
    let n = a.dim;
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(p, q)| (p - q) * (p - q)).sum();
    let root = sqrtm_psd(&a.cov, n)?;
    let m = matmul(&matmul(&root.sqrt, &b.cov, n)?, &root.sqrt, n)?;
    // symmetrise away the rounding of the two products
    let mut ms = m.clone();
    for i in 0..n {
        for j in 0..n {
            ms[i * n + j] = 0.5 * (m[i * n + j] + m[j * n + i]);
        }
    }
    let eig = sym_eigen(&ms, n, false)?;
    let top = eig.values.last().copied().unwrap_or(0.0).abs().max(f64::MIN_POSITIVE);
    let trace_root: f64 = eig.values.iter().map(|l| l.max(0.0).sqrt()).sum();
    let tr = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
    let cov_term = tr(&a.cov) + tr(&b.cov) - 2.0 * trace_root;
    let a_top = sym_eigen(&a.cov, n, false)?.values.last().copied().unwrap_or(0.0).abs().max(f64::MIN_POSITIVE);
    let min_rel = (eig.values.first().copied().unwrap_or(0.0) / top).min(root.min_eigenvalue / a_top).min(0.0);
    Ok(FrechetStats {
        distance: mean_term + cov_term,
        mean_term,
        cov_term,
        sqrt_residual: root.residual,
        min_rel_eigenvalue: min_rel,
    })
}

/// The Fréchet distance between the Gaussians fitted to two feature sets (rows of `dim`).
pub fn frechet_from_features(x: &[f32], y: &[f32], dim: usize) -> Result<FrechetStats> {
    frechet_distance(&Gaussian::fit(x, dim)?, &Gaussian::fit(y, dim)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_kernels::Rng;

    #[test]
    fn two_by_two_closed_form() {
        // For 2x2 PSD matrices tr((S1 S2)^{1/2}) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)): the eigenvalues of
        // S1 S2 are real and non-negative, and (sqrt(l1) + sqrt(l2))^2 = l1 + l2 + 2 sqrt(l1 l2).
        let s1 = [2.0, 0.7, 0.7, 1.0];
        let s2 = [0.5, -0.3, -0.3, 3.0]; // does not commute with s1
        let (m1, m2) = (vec![0.1, -0.4], vec![1.0, 0.6]);
        let det = |s: &[f64; 4]| s[0] * s[3] - s[1] * s[2];
        let tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
        let tr_root = (tr12 + 2.0 * (det(&s1) * det(&s2)).sqrt()).sqrt();
        let want = (0.9f64 * 0.9 + 1.0 * 1.0) + (3.0 + 3.5 - 2.0 * tr_root);
        let a = Gaussian::new(m1, s1.to_vec()).unwrap();
        let b = Gaussian::new(m2, s2.to_vec()).unwrap();
        let got = frechet_distance(&a, &b).unwrap();
        assert!((got.distance - want).abs() < 1e-12, "{} vs {want}", got.distance);
        // symmetric in its arguments, zero for identical Gaussians
        let back = frechet_distance(&b, &a).unwrap();
        assert!((back.distance - want).abs() < 1e-12);
        assert!(frechet_distance(&a, &a).unwrap().distance.abs() < 1e-12);
    }

    #[test]
    fn commuting_covariances_in_many_dimensions() {
        // S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
        let n = 150;
        let mut r = Rng::new(5);
        // a random orthogonal Q from the eigenvectors of a random symmetric matrix
        let mut g = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = r.normal_f64();
                g[i * n + j] = v;
                g[j * n + i] = v;
            }
        }
        let q = crate::linalg::sym_eigen(&g, n, true).unwrap();
        let da: Vec<f64> = (0..n).map(|_| 0.01 + r.uniform_f64() * 4.0).collect();
        let mut db: Vec<f64> = (0..n).map(|_| 0.01 + r.uniform_f64() * 4.0).collect();
        db[0] = 0.0; // singular: a covariance of fewer samples than dimensions
        let build = |d: &[f64]| {
            let eig = crate::linalg::SymEigen { values: d.to_vec(), vectors: q.vectors.clone(), n };
            crate::linalg::reconstruct(&eig, |l| l).unwrap()
        };
        let m1: Vec<f64> = (0..n).map(|_| r.normal_f64()).collect();
        let m2: Vec<f64> = (0..n).map(|_| r.normal_f64()).collect();
        let want: f64 = m1.iter().zip(&m2).map(|(p, q)| (p - q).powi(2)).sum::<f64>()
            + da.iter().zip(&db).map(|(p, q)| (p.sqrt() - q.sqrt()).powi(2)).sum::<f64>();
        let got =
            frechet_distance(&Gaussian::new(m1, build(&da)).unwrap(), &Gaussian::new(m2, build(&db)).unwrap()).unwrap();
        assert!((got.distance - want).abs() < 1e-8 * want, "{} vs {want}", got.distance);
        assert!(got.sqrt_residual < 1e-12, "{}", got.sqrt_residual);
    }

    #[test]
    fn from_samples_converges_to_the_population_value() {
        // N(0, I) vs N(m, 4 I) in 4 dims: d^2 = |m|^2 + 4 (2 - 1)^2 = |m|^2 + 4
        let (n, d) = (20_000, 4);
        let mut r = Rng::new(1);
        let x: Vec<f32> = (0..n * d).map(|_| r.normal()).collect();
        let y: Vec<f32> = (0..n * d).map(|i| 2.0 * r.normal() + if i % d == 0 { 1.5 } else { 0.0 }).collect();
        let got = frechet_from_features(&x, &y, d).unwrap().distance;
        let want = 1.5f64 * 1.5 + 4.0;
        // sampling error of the fitted moments at n = 20000: about 0.05
        assert!((got - want).abs() < 0.15, "{got} vs {want}");
    }
}
