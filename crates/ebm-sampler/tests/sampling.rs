//! The samplers sample what they should, on energies whose answer is known in closed form.
//!
//! Chains run in parallel (one per sample) from a deliberately wrong starting distribution, so a sampler that
//! does not move, or moves to the wrong place, fails. Tolerances are stated next to each assertion as multiples of
//! the Monte Carlo standard error for the number of chains used.

use candle_core::{DType, Device, Result, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::{Energy, Langevin, LogSumExp, Mala, Sum, Term};
use std::sync::Arc;

/// `E(x) = (x - mu)^T P (x - mu) / 2` for a 2D Gaussian with precision `P`.
struct Gaussian {
    mu: Tensor,
    prec: Tensor,
}

impl Gaussian {
    fn new(mu: [f32; 2], cov: [[f64; 2]; 2]) -> Self {
        let det = cov[0][0] * cov[1][1] - cov[0][1] * cov[1][0];
        let p = [[cov[1][1] / det, -cov[0][1] / det], [-cov[1][0] / det, cov[0][0] / det]];
        let prec =
            Tensor::new(&[[p[0][0] as f32, p[0][1] as f32], [p[1][0] as f32, p[1][1] as f32]], &Device::Cpu).unwrap();
        Self { mu: Tensor::new(&mu, &Device::Cpu).unwrap(), prec }
    }
}

impl Energy for Gaussian {
    fn energy(&self, x: &Tensor, _c: Option<&Tensor>) -> Result<Tensor> {
        let d = x.broadcast_sub(&self.mu)?;
        (d.matmul(&self.prec)? * &d)?.sum(1)? * 0.5
    }
}

fn start(n: usize, lo: [f32; 2], hi: [f32; 2], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(2 * n);
    for _ in 0..n {
        v.push(lo[0] + (hi[0] - lo[0]) * r.uniform());
        v.push(lo[1] + (hi[1] - lo[1]) * r.uniform());
    }
    Tensor::from_vec(v, (n, 2), &Device::Cpu).unwrap()
}

fn moments(x: &Tensor) -> ([f64; 2], [[f64; 2]; 2]) {
    let v = x.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let n = v.len() as f64;
    let m = [v.iter().map(|p| p[0]).sum::<f64>() / n, v.iter().map(|p| p[1]).sum::<f64>() / n];
    let mut c = [[0.0; 2]; 2];
    for p in &v {
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] += (p[i] - m[i]) * (p[j] - m[j]) / (n - 1.0);
            }
        }
    }
    (m, c)
}

/// Standard errors for `n` independent draws from N(., cov): of the mean, and of each covariance entry
/// (var(s_ij) = (c_ii c_jj + c_ij^2) / n).
fn standard_errors(cov: [[f64; 2]; 2], n: usize) -> ([f64; 2], [[f64; 2]; 2]) {
    let n = n as f64;
    let se_m = [(cov[0][0] / n).sqrt(), (cov[1][1] / n).sqrt()];
    let mut se_c = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            se_c[i][j] = ((cov[i][i] * cov[j][j] + cov[i][j] * cov[i][j]) / n).sqrt();
        }
    }
    (se_m, se_c)
}

fn assert_moments(x: &Tensor, mu: [f64; 2], cov: [[f64; 2]; 2], k_se: f64, extra_cov: f64, what: &str) {
    let n = x.dims()[0];
    let (m, c) = moments(x);
    let (se_m, se_c) = standard_errors(cov, n);
    for i in 0..2 {
        assert!(
            (m[i] - mu[i]).abs() < k_se * se_m[i],
            "{what}: mean[{i}] {} vs {} (tolerance {})",
            m[i],
            mu[i],
            k_se * se_m[i]
        );
        for j in 0..2 {
            let tol = k_se * se_c[i][j] + extra_cov * cov[i][i].max(cov[j][j]);
            assert!(
                (c[i][j] - cov[i][j]).abs() < tol,
                "{what}: cov[{i}][{j}] {} vs {} (tolerance {tol})",
                c[i][j],
                cov[i][j]
            );
        }
    }
}

const COV: [[f64; 2]; 2] = [[2.0, 1.2], [1.2, 1.0]];
const MU: [f32; 2] = [1.0, -0.5];

/// 4000 chains: standard errors about 0.022 on the mean and 0.03-0.045 on covariance entries; tolerance 5 SE
/// (a false failure has probability well under 1e-5 per entry).
#[test]
fn mala_samples_a_correlated_gaussian() {
    let e = Gaussian::new(MU, COV);
    let x0 = start(4000, [-6.0, 3.0], [-4.0, 5.0], 1); // far from the mode, in a small box
    let chain = Mala::new(0.15, 400).run(&e, &x0, None, None, 7).unwrap();
    let acc = chain.accept_rate.unwrap();
    assert!(acc > 0.5 && acc < 1.0, "acceptance rate {acc}");
    assert_moments(&chain.x, [MU[0] as f64, MU[1] as f64], COV, 5.0, 0.0, "MALA");
}

/// Unadjusted Langevin at step 0.02 has a stationary covariance that is too wide by a factor 1/(1 - h lambda / 2)
/// along each precision eigenvalue lambda (at most 5.4 here, so at most 6%); the tolerance adds 8% of the largest
/// variance to the 5 SE Monte Carlo allowance.
#[test]
fn ula_with_a_small_step_is_close() {
    let e = Gaussian::new(MU, COV);
    let x0 = start(4000, [-6.0, 3.0], [-4.0, 5.0], 2);
    let chain = Langevin::ula(0.02, 2500).run(&e, &x0, None, None, 8).unwrap();
    assert_moments(&chain.x, [MU[0] as f64, MU[1] as f64], COV, 5.0, 0.08, "ULA");
}

/// Two isotropic Gaussians (std 0.6) at (-1.5, 0) and (1.5, 0) with weights 0.7 / 0.3, as a `LogSumExp` mixture.
/// The chains start uniform over a box symmetric about x = 0 (so 50/50), and must move mass across the barrier to
/// reach 70/30. The fraction with x < 0 should be 0.7 (1 - Phi(-2.5)) + 0.3 Phi(-2.5) = 0.6976; with 4000 chains its
/// SE is 0.0073: tolerance 5 SE.
#[test]
fn mala_finds_unequal_mode_weights() {
    let iso = [[0.36, 0.0], [0.0, 0.36]];
    let a: Arc<dyn Energy + Send + Sync> = Arc::new(Gaussian::new([-1.5, 0.0], iso));
    let b: Arc<dyn Energy + Send + Sync> = Arc::new(Gaussian::new([1.5, 0.0], iso));
    let mix = LogSumExp::new(vec![Term::new(a, 0.7), Term::new(b, 0.3)]);
    let x0 = start(4000, [-3.0, -1.0], [3.0, 1.0], 3);
    let chain = Mala::new(0.12, 1500).run(&mix, &x0, None, None, 9).unwrap();
    let v = chain.x.to_vec2::<f32>().unwrap();
    let left = v.iter().filter(|p| p[0] < 0.0).count() as f64 / v.len() as f64;
    let phi_m25 = 0.006_209_665;
    let want = 0.7 * (1.0 - phi_m25) + 0.3 * phi_m25;
    assert!((left - want).abs() < 5.0 * 0.0073, "fraction in the left mode {left}, expected {want}");
    // within each mode the spread is the component's: variance 0.36 along y (SE ~ 0.01, tolerance 0.05)
    let var_y = v.iter().map(|p| (p[1] as f64).powi(2)).sum::<f64>() / v.len() as f64;
    assert!((var_y - 0.36).abs() < 0.05, "variance along y {var_y}");
}

/// The sum of two Gaussian energies is the product Gaussian: precision P1 + P2, mean (P1+P2)^-1 (P1 mu1 + P2 mu2).
#[test]
fn sum_of_gaussian_energies_samples_the_product() {
    let c1 = [[1.0, 0.5], [0.5, 1.0]];
    let c2 = [[0.5, -0.2], [-0.2, 2.0]];
    let (m1, m2) = ([1.0f32, 0.0], [-1.0f32, 2.0]);
    let inv = |c: [[f64; 2]; 2]| {
        let d = c[0][0] * c[1][1] - c[0][1] * c[1][0];
        [[c[1][1] / d, -c[0][1] / d], [-c[1][0] / d, c[0][0] / d]]
    };
    let (p1, p2) = (inv(c1), inv(c2));
    let p = [[p1[0][0] + p2[0][0], p1[0][1] + p2[0][1]], [p1[1][0] + p2[1][0], p1[1][1] + p2[1][1]]];
    let cov = inv(p);
    let h = [
        p1[0][0] * m1[0] as f64 + p1[0][1] * m1[1] as f64 + p2[0][0] * m2[0] as f64 + p2[0][1] * m2[1] as f64,
        p1[1][0] * m1[0] as f64 + p1[1][1] * m1[1] as f64 + p2[1][0] * m2[0] as f64 + p2[1][1] * m2[1] as f64,
    ];
    let mu = [cov[0][0] * h[0] + cov[0][1] * h[1], cov[1][0] * h[0] + cov[1][1] * h[1]];
    let sum = Sum::new(vec![
        Term::new(Arc::new(Gaussian::new(m1, c1)), 1.0),
        Term::new(Arc::new(Gaussian::new(m2, c2)), 1.0),
    ]);
    let x0 = start(4000, [3.0, 3.0], [4.0, 4.0], 4);
    let chain = Mala::new(0.1, 400).run(&sum, &x0, None, None, 10).unwrap();
    assert_moments(&chain.x, mu, cov, 5.0, 0.0, "product of experts");
}

#[test]
fn temperature_scales_the_variance() {
    // exp(-E/T) for a standard Gaussian energy is N(0, T I): at T = 2 the variance is 2 (SE 0.045 with 4000 chains)
    let e = Gaussian::new([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]);
    let mut m = Mala::new(0.3, 300);
    m.temperature = 2.0;
    let chain = m.run(&e, &start(4000, [-0.1, -0.1], [0.1, 0.1], 5), None, None, 11).unwrap();
    let (_, c) = moments(&chain.x);
    assert!((c[0][0] - 2.0).abs() < 0.25 && (c[1][1] - 2.0).abs() < 0.25, "{c:?}");
}
