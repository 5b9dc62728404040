//! Statistical checks of the counter-based normals on a million draws.

use ebm_kernels::philox::fill_normal;

/// Standard normal CDF via erfc (W. J. Cody's rational approximations are overkill here: Numerical Recipes'
/// erfc has relative error below 1.2e-7, far under the KS critical value of 1.6e-3).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let erfc = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[test]
fn a_million_normals_have_the_right_moments_and_pass_ks() {
    const N: usize = 1_000_000;
    let mut v = vec![0f32; N];
    fill_normal(2024, 1, 0, &mut v);
    let n = N as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    let kurt = v.iter().map(|x| (*x as f64 - mean).powi(4)).sum::<f64>() / n / (var * var) - 3.0;
    // Standard errors at n = 1e6: mean 1e-3, variance sqrt(2/n) = 1.4e-3, excess kurtosis sqrt(24/n) = 4.9e-3.
    // Tolerances are 5 standard errors.
    assert!(mean.abs() < 5e-3, "mean {mean}");
    assert!((var - 1.0).abs() < 7.1e-3, "variance {var}");
    assert!(kurt.abs() < 2.5e-2, "excess kurtosis {kurt}");

    let mut s: Vec<f64> = v.iter().map(|x| *x as f64).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut d = 0f64;
    for (i, x) in s.iter().enumerate() {
        let f = phi(*x);
        d = d.max((f - i as f64 / n).abs()).max(((i + 1) as f64 / n - f).abs());
    }
    // Kolmogorov-Smirnov at level 0.01: critical value 1.628 / sqrt(n).
    let crit = 1.628 / n.sqrt();
    assert!(d < crit, "KS statistic {d} exceeds {crit}");
}

#[test]
fn the_cdf_helper_is_accurate() {
    assert!((phi(0.0) - 0.5).abs() < 1e-7);
    assert!((phi(1.959_963_985) - 0.975).abs() < 1e-6);
    assert!((phi(-1.0) - 0.158_655_253_9).abs() < 1e-6);
}
