//! The Fréchet distance between two Gaussians fitted to feature sets: FID when the features are Inception-v3's
//! pool features, the classifier-feature distance when they are a project classifier's.
//!
//! `d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`.
//!
//! The trace of the root is computed without the non-symmetric product `S1 S2` (whose `scipy.linalg.sqrtm` can
//! return complex parts and needs the 1e-6 diagonal fallback of the usual code): with `S1 = L L^T` (pivoted
//! Cholesky, exact rank for singular covariances), `S1 S2 = L (L^T S2 L) L^{-1}` on the range of `L`, so the non-zero
//! eigenvalues of `S1 S2` are those of the symmetric positive semi-definite `M = L^T S2 L`, and
//! `tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(M))`: one symmetric eigenvalue problem, no square root of a matrix.
//! [`FrechetStats`] reports the checks: the factor's residual `|L L^T - S1|_F / |S1|_F`, its rank, and the most
//! negative eigenvalue of `M` (rounding; clamped to zero). The same trace through the eigendecomposition square
//! root `A = S1^{1/2}` and `M' = A S2 A` ([`crate::linalg::sqrtm_psd`]) agrees to 1e-9 in the tests; it is 4x
//! slower at 2048 dimensions.

use crate::linalg::{mean_cov, pivoted_cholesky, sym_eigen};
use candle_core::Result;
use candle_core::{Device, Tensor};
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
    /// `|L L^T - S1|_F / |S1|_F` for the pivoted Cholesky factor `L` of `S1`.
    pub factor_residual: f64,
    /// Rank of `S1` found by the factorisation.
    pub rank: usize,
    /// Most negative eigenvalue of `L^T S2 L` relative to its largest (rounding), clamped to zero.
    pub min_rel_eigenvalue: f64,
}

/// The Fréchet distance `d^2` between two Gaussians.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<FrechetStats> {
    if a.dim != b.dim {
        candle_core::bail!("Fréchet distance between features of dimension {} and {}", a.dim, b.dim);
    }
    let n = a.dim;
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(p, q)| (p - q) * (p - q)).sum();
    let f = pivoted_cholesky(&a.cov, n, 10.0 * n as f64 * f64::EPSILON)?;
    let r = f.rank;
    let trace_root_and_min = if r == 0 {
        (0.0, 0.0)
    } else {
        let l = Tensor::from_slice(&f.l, (n, r), &Device::Cpu)?;
        let s2 = Tensor::from_slice(&b.cov, (n, n), &Device::Cpu)?;
        let m = l.t()?.matmul(&s2.matmul(&l)?)?;
        let m = ((&m + m.t()?)? * 0.5)?; // exact symmetry
        let eig = sym_eigen(&m.flatten_all()?.to_vec1::<f64>()?, r, false)?;
        let top = eig.values.last().copied().unwrap_or(0.0).abs().max(f64::MIN_POSITIVE);
        let min_rel = (eig.values.first().copied().unwrap_or(0.0) / top).min(0.0);
        (eig.values.iter().map(|l| l.max(0.0).sqrt()).sum::<f64>(), min_rel)
    };
    let (trace_root, min_rel) = trace_root_and_min;
    let tr = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
    let cov_term = tr(&a.cov) + tr(&b.cov) - 2.0 * trace_root;
    Ok(FrechetStats {
        distance: mean_term + cov_term,
        mean_term,
        cov_term,
        factor_residual: f.residual,
        rank: r,
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
        // a random orthogonal Q from the eigenvectors of a random symmetric matrix
        let q = crate::linalg::sym_eigen(&crate::linalg::tests::random_sym(n, 5), n, true).unwrap();
        let mut r = Rng::new(6);
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
        assert!(got.factor_residual < 1e-12, "{}", got.factor_residual);
        // with the singular one first, its rank is found
        let back = frechet_distance(
            &Gaussian::new(vec![0.0; n], build(&db)).unwrap(),
            &Gaussian::new(vec![0.0; n], build(&da)).unwrap(),
        )
        .unwrap();
        assert_eq!(back.rank, n - 1);
    }

    #[test]
    fn agrees_with_the_square_root_route() {
        // tr((S1 S2)^{1/2}) through A = S1^{1/2} (eigendecomposition) and the eigenvalues of A S2 A
        use crate::linalg::{matmul, sqrtm_psd};
        let n = 40;
        let via_sqrt = |a: &Gaussian, b: &Gaussian, mean_term: f64| {
            let root = sqrtm_psd(&a.cov, n).unwrap();
            let ms = matmul(&matmul(&root.sqrt, &b.cov, n).unwrap(), &root.sqrt, n).unwrap();
            let sym: Vec<f64> = (0..n * n).map(|k| 0.5 * (ms[k] + ms[(k % n) * n + k / n])).collect();
            let tr_root: f64 = sym_eigen(&sym, n, false).unwrap().values.iter().map(|l| l.max(0.0).sqrt()).sum();
            let tr = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
            mean_term + tr(&a.cov) + tr(&b.cov) - 2.0 * tr_root
        };
        let mut r = Rng::new(8);
        // 60 samples (full rank) and 30 samples (rank 29) in 40 dimensions
        for (m, tol) in [(60usize, 1e-10), (30, 1e-7)] {
            let x: Vec<f32> = (0..m * n).map(|_| r.normal()).collect();
            let y: Vec<f32> = (0..m * n).map(|i| 1.5 * r.normal() + (i % 3) as f32).collect();
            let (a, b) = (Gaussian::fit(&x, n).unwrap(), Gaussian::fit(&y, n).unwrap());
            let got = frechet_distance(&a, &b).unwrap();
            assert_eq!(got.rank, (m - 1).min(n));
            let want = via_sqrt(&a, &b, got.mean_term);
            // singular S1: the square-root route takes sqrt of the rounding left in the zero eigenvalues
            // (11 of them, about 1e-15 each), which the exact rank of the factorisation avoids
            assert!((got.distance - want).abs() < tol * want, "{m} samples: {} vs {want}", got.distance);
        }
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
