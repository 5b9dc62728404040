//! Two-dimensional toy densities, at the scales of the toy data of Grathwohl et al.'s FFJORD (2019), which later EBM
//! papers reuse: values lie roughly within `[-4, 4]`.
//!
//! | name | definition (`z ~ N(0, I)`, `u ~ U(0, 1)`) |
//! |---|---|
//! | `8gaussians` | equal mixture of 8 isotropic Gaussians, centres at radius `2√2` and angles `kπ/4`, std `1/(2√2)` |
//! | `2spirals` | `t = 3π√u`; `s·(-t cos t + u₁/2, t sin t + u₂/2)/3 + 0.1 z`, sign `s = ±1` with probability 1/2 |
//! | `checkerboard` | uniform on the 8 squares of side 2 of `[-4, 4]²` where `⌊x/2⌋ + ⌊y/2⌋` is even |
//! | `rings` | ring `k` of radii `3, 2.4, 1.65, 0.75` with probability 1/4, uniform angle, plus `0.08 z` |
//! | `swissroll` | `t = 1.5π(1 + 2u)`; `(t cos t, t sin t)/5 + 0.2 z` |
//! | `moons` | upper moon `(2cos θ - 1, 2sin θ - 0.2)` or lower moon `(1 - 2cos θ, 0.8 - 2sin θ)` with probability 1/2, `θ ~ U(0, π)`, plus `0.2 z` |
//!
//! Differences from FFJORD's generators, all in how the same distribution is drawn: FFJORD divides the 8 Gaussians
//! by 1.414 (here `√2` exactly), puts exactly `n/4` points evenly spaced in angle on each ring and exactly half the
//! points on each spiral arm or moon (here each point picks its component and angle at random, so samples are
//! i.i.d.), and scales sklearn's `make_moons(noise=0.1)` and `make_swiss_roll(noise=1.0)`, whose noise becomes the
//! `0.2 z` above.

use crate::error::DataError;
use candle_core::{Device, Tensor};
use ebm_kernels::Rng;
use std::f64::consts::{PI, SQRT_2, TAU};
use std::fmt;
use std::str::FromStr;

/// Radius of the circle on which the 8 Gaussians' centres lie.
pub const EIGHT_GAUSSIANS_RADIUS: f64 = 2.0 * SQRT_2;
/// Standard deviation (per coordinate) of each of the 8 Gaussians.
pub const EIGHT_GAUSSIANS_STD: f64 = 0.5 / SQRT_2;
/// Radii of the four rings, outermost first.
pub const RING_RADII: [f64; 4] = [3.0, 2.4, 1.65, 0.75];
/// Standard deviation (per coordinate) of the noise around each ring.
pub const RING_STD: f64 = 0.08;

/// One of the toy 2D densities; see the [module documentation](self) for the exact definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toy2d {
    EightGaussians,
    TwoSpirals,
    Checkerboard,
    Rings,
    SwissRoll,
    Moons,
}

impl Toy2d {
    /// Every density, in the order of the table above.
    pub const ALL: [Toy2d; 6] =
        [Toy2d::EightGaussians, Toy2d::TwoSpirals, Toy2d::Checkerboard, Toy2d::Rings, Toy2d::SwissRoll, Toy2d::Moons];

    /// The name used on command lines and in file names ("8gaussians", "2spirals", ...).
    pub fn name(self) -> &'static str {
        match self {
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::TwoSpirals => "2spirals",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Rings => "rings",
            Toy2d::SwissRoll => "swissroll",
            Toy2d::Moons => "moons",
        }
    }

    /// `n` independent points drawn from the density with `rng`; the same stream state gives the same points.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Vec<[f32; 2]> {
        (0..n)
            .map(|_| {
                let [x, y] = self.sample_one(rng);
                [x as f32, y as f32]
            })
            .collect()
    }

    /// `n` points as an `[n, 2]` f32 tensor on `device`.
    pub fn sample_tensor(&self, n: usize, rng: &mut Rng, device: &Device) -> candle_core::Result<Tensor> {
        let flat: Vec<f32> = self.sample(n, rng).into_iter().flatten().collect();
        Tensor::from_vec(flat, (n, 2), device)
    }

    /// The natural log of the density at `p`, where it has a closed form; `None` for the others.
    ///
    /// - `8gaussians`: `log( (1/8) Σ_k N(p; c_k, σ² I) )` with the centres `c_k` and `σ` above.
    /// - `checkerboard`: `log(1/32)` on the 8 squares (total area 32), `-∞` elsewhere.
    /// - `rings`: the angle integrated out exactly:
    ///   `(1/4) Σ_k exp(-(|p|² + r_k²)/(2σ²)) I₀(|p| r_k / σ²) / (2πσ²)`, with `I₀` the modified Bessel function.
    /// - `2spirals`, `swissroll`, `moons`: `None` (noise convolved along a curve has no closed form).
    pub fn log_density(&self, p: [f32; 2]) -> Option<f64> {
        let (x, y) = (p[0] as f64, p[1] as f64);
        match self {
            Toy2d::EightGaussians => {
                let s2 = EIGHT_GAUSSIANS_STD * EIGHT_GAUSSIANS_STD;
                let terms: Vec<f64> = (0..8)
                    .map(|k| {
                        let [cx, cy] = eight_gaussians_centre(k);
                        -((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s2)
                    })
                    .collect();
                Some(log_sum_exp(&terms) - (8.0 * TAU * s2).ln())
            }
            Toy2d::Checkerboard => Some(if in_black_square(x, y) { -(32f64.ln()) } else { f64::NEG_INFINITY }),
            Toy2d::Rings => {
                let s2 = RING_STD * RING_STD;
                let r = (x * x + y * y).sqrt();
                // log of exp(-(r - r_k)²/(2σ²)) · [e^{-a} I₀(a)] with a = r r_k/σ², which is the k-th term.
                let terms: Vec<f64> =
                    RING_RADII.iter().map(|&rk| -(r - rk).powi(2) / (2.0 * s2) + log_i0_scaled(r * rk / s2)).collect();
                Some(log_sum_exp(&terms) - (4.0 * TAU * s2).ln())
            }
            Toy2d::TwoSpirals | Toy2d::SwissRoll | Toy2d::Moons => None,
        }
    }

    fn sample_one(&self, rng: &mut Rng) -> [f64; 2] {
        match self {
            Toy2d::EightGaussians => {
                let [cx, cy] = eight_gaussians_centre(rng.below(8) as usize);
                let (zx, zy) = (rng.normal_f64(), rng.normal_f64());
                [cx + EIGHT_GAUSSIANS_STD * zx, cy + EIGHT_GAUSSIANS_STD * zy]
            }
            Toy2d::TwoSpirals => {
                let t = 3.0 * PI * rng.uniform_f64().sqrt();
                let (u1, u2) = (rng.uniform_f64(), rng.uniform_f64());
                let s = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                let (zx, zy) = (rng.normal_f64(), rng.normal_f64());
                [s * (-t.cos() * t + 0.5 * u1) / 3.0 + 0.1 * zx, s * (t.sin() * t + 0.5 * u2) / 3.0 + 0.1 * zy]
            }
            Toy2d::Checkerboard => {
                // A column of width 1 in [-2, 2), then one of its two black cells; all scaled by 2.
                let x1 = 4.0 * rng.uniform_f64() - 2.0;
                let x2 = rng.uniform_f64() - 2.0 * rng.below(2) as f64 + x1.floor().rem_euclid(2.0);
                [2.0 * x1, 2.0 * x2]
            }
            Toy2d::Rings => {
                let r = RING_RADII[rng.below(4) as usize];
                let a = TAU * rng.uniform_f64();
                let (zx, zy) = (rng.normal_f64(), rng.normal_f64());
                [r * a.cos() + RING_STD * zx, r * a.sin() + RING_STD * zy]
            }
            Toy2d::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * rng.uniform_f64());
                let (zx, zy) = (rng.normal_f64(), rng.normal_f64());
                [t * t.cos() / 5.0 + 0.2 * zx, t * t.sin() / 5.0 + 0.2 * zy]
            }
            Toy2d::Moons => {
                let th = PI * rng.uniform_f64();
                let upper = rng.below(2) == 0;
                let (zx, zy) = (rng.normal_f64(), rng.normal_f64());
                let [x, y] = if upper {
                    [2.0 * th.cos() - 1.0, 2.0 * th.sin() - 0.2]
                } else {
                    [1.0 - 2.0 * th.cos(), 0.8 - 2.0 * th.sin()]
                };
                [x + 0.2 * zx, y + 0.2 * zy]
            }
        }
    }
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toy2d {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        Toy2d::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Toy2d::ALL.iter().map(|d| d.name()).collect();
            DataError::invalid("toy2d", format!("unknown density {s:?}; expected one of {}", names.join(", ")))
        })
    }
}

/// Centre `k` (0..8) of the 8 Gaussians: radius [`EIGHT_GAUSSIANS_RADIUS`], angle `kπ/4`.
pub fn eight_gaussians_centre(k: usize) -> [f64; 2] {
    let a = k as f64 * PI / 4.0;
    [EIGHT_GAUSSIANS_RADIUS * a.cos(), EIGHT_GAUSSIANS_RADIUS * a.sin()]
}

/// Whether `(x, y)` lies in one of the checkerboard's 8 squares: inside `[-4, 4]²` with `⌊x/2⌋ + ⌊y/2⌋` even.
///
/// The outer edges `x = 4` and `y = 4` count as part of the squares they close (samples drawn just below 4 can round
/// to 4 in f32).
pub fn in_black_square(x: f64, y: f64) -> bool {
    let cell = |v: f64| (v / 2.0).floor().min(1.0);
    (-4.0..=4.0).contains(&x) && (-4.0..=4.0).contains(&y) && (cell(x) + cell(y)).rem_euclid(2.0) == 0.0
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `ln(e^{-a} I₀(a))` for `a >= 0`, from the polynomial approximations of Abramowitz & Stegun 9.8.1 and 9.8.2
/// (relative error below 2e-7), so that it stays finite for the large arguments the rings produce.
fn log_i0_scaled(a: f64) -> f64 {
    if a < 3.75 {
        let t = (a / 3.75).powi(2);
        let i0 = 1.0
            + t * (3.515_622_9
                + t * (3.089_942_4 + t * (1.206_749_2 + t * (0.265_973_2 + t * (0.036_076_8 + t * 0.004_581_3)))));
        i0.ln() - a
    } else {
        let t = 3.75 / a;
        let p = 0.398_942_28
            + t * (0.013_285_92
                + t * (0.002_253_19
                    + t * (-0.001_575_65
                        + t * (0.009_162_81
                            + t * (-0.020_577_06 + t * (0.026_355_37 + t * (-0.016_476_33 + t * 0.003_923_77)))))));
        p.ln() - 0.5 * a.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(points: &[[f32; 2]]) -> [f64; 2] {
        let n = points.len() as f64;
        let sx: f64 = points.iter().map(|p| p[0] as f64).sum();
        let sy: f64 = points.iter().map(|p| p[1] as f64).sum();
        [sx / n, sy / n]
    }

    /// Distance from `p` to the nearest of the points `curve`.
    fn dist_to(curve: &[[f64; 2]], p: [f32; 2]) -> f64 {
        curve
            .iter()
            .map(|c| ((p[0] as f64 - c[0]).powi(2) + (p[1] as f64 - c[1]).powi(2)).sqrt())
            .fold(f64::INFINITY, f64::min)
    }

    /// `m` points along `f(t)` for `t` from `a` to `b`.
    fn curve(a: f64, b: f64, m: usize, f: impl Fn(f64) -> [f64; 2]) -> Vec<[f64; 2]> {
        (0..=m).map(|i| f(a + (b - a) * i as f64 / m as f64)).collect()
    }

    /// Binomial tolerance: `count` of `n` draws with probability `p` must be within 5 standard deviations.
    fn assert_binomial(count: usize, n: usize, p: f64, what: &str) {
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        let dev = (count as f64 - n as f64 * p).abs();
        assert!(dev < 5.0 * sd, "{what}: {count} of {n}, expected {} ± {}", n as f64 * p, 5.0 * sd);
    }

    #[test]
    fn names_round_trip() {
        let names: Vec<String> = Toy2d::ALL.iter().map(|d| d.to_string()).collect();
        assert_eq!(names, ["8gaussians", "2spirals", "checkerboard", "rings", "swissroll", "moons"]);
        for d in Toy2d::ALL {
            assert_eq!(d.name().parse::<Toy2d>().unwrap(), d);
        }
        let e = "circles".parse::<Toy2d>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "toy2d: unknown density \"circles\"; expected one of 8gaussians, 2spirals, checkerboard, rings, \
             swissroll, moons"
        );
    }

    #[test]
    fn sampling_is_seeded_and_within_range() {
        for d in Toy2d::ALL {
            let a = d.sample(2000, &mut Rng::new(11));
            assert_eq!(a, d.sample(2000, &mut Rng::new(11)), "{d}");
            assert_ne!(a, d.sample(2000, &mut Rng::new(12)), "{d}");
            let max = a.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max < 4.6, "{d}: |value| up to {max}");
            let t = d.sample_tensor(5, &mut Rng::new(11), &Device::Cpu).unwrap();
            assert_eq!(t.dims(), &[5, 2]);
            let flat = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(flat, a[..5].iter().flatten().copied().collect::<Vec<_>>(), "{d}");
        }
    }

    #[test]
    fn eight_gaussians_modes_and_spread() {
        let n = 16_000;
        let pts = Toy2d::EightGaussians.sample(n, &mut Rng::new(1));
        let mut members: Vec<Vec<[f64; 2]>> = vec![Vec::new(); 8];
        for p in &pts {
            let (x, y) = (p[0] as f64, p[1] as f64);
            let k = (0..8)
                .min_by(|&a, &b| {
                    let d = |k| {
                        let [cx, cy] = eight_gaussians_centre(k);
                        (x - cx).powi(2) + (y - cy).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            let [cx, cy] = eight_gaussians_centre(k);
            members[k].push([x - cx, y - cy]);
        }
        for (k, m) in members.iter().enumerate() {
            assert_binomial(m.len(), n, 1.0 / 8.0, &format!("mode {k}"));
            // Offsets from the centre: mean 0 and standard deviation σ per coordinate.
            for c in 0..2 {
                let mu = m.iter().map(|v| v[c]).sum::<f64>() / m.len() as f64;
                let sd = (m.iter().map(|v| (v[c] - mu).powi(2)).sum::<f64>() / m.len() as f64).sqrt();
                assert!(mu.abs() < 0.04, "mode {k} coordinate {c}: mean offset {mu}");
                assert!((sd / EIGHT_GAUSSIANS_STD - 1.0).abs() < 0.06, "mode {k} coordinate {c}: sd {sd}");
            }
        }
    }

    #[test]
    fn checkerboard_fills_the_black_squares_evenly() {
        let n = 16_000;
        let pts = Toy2d::Checkerboard.sample(n, &mut Rng::new(2));
        let mut counts = std::collections::BTreeMap::new();
        for p in &pts {
            let (x, y) = (p[0] as f64, p[1] as f64);
            assert!(in_black_square(x, y), "{p:?}");
            let cell = |v: f64| (v / 2.0).floor().min(1.0) as i32;
            *counts.entry((cell(x), cell(y))).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 8);
        for (cell, &c) in &counts {
            assert_binomial(c, n, 1.0 / 8.0, &format!("square {cell:?}"));
        }
        let m = mean(&pts);
        assert!(m[0].abs() < 0.1 && m[1].abs() < 0.1, "{m:?}");
    }

    #[test]
    fn rings_radii_and_shares() {
        let n = 8000;
        let pts = Toy2d::Rings.sample(n, &mut Rng::new(3));
        let mut counts = [0usize; 4];
        let mut total_residual = 0.0;
        for p in &pts {
            let r = ((p[0] as f64).powi(2) + (p[1] as f64).powi(2)).sqrt();
            let (k, res) =
                RING_RADII.iter().map(|rk| (r - rk).abs()).enumerate().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            assert!(res < 0.35, "{p:?} is {res} from the nearest ring");
            counts[k] += 1;
            total_residual += res;
        }
        for (k, &c) in counts.iter().enumerate() {
            assert_binomial(c, n, 0.25, &format!("ring {k}"));
        }
        // |radial noise| has mean σ·sqrt(2/π) ≈ 0.064.
        let mean_res = total_residual / n as f64;
        assert!((mean_res - RING_STD * (2.0 / PI).sqrt()).abs() < 0.006, "{mean_res}");
    }

    #[test]
    fn moons_lie_along_their_arcs() {
        let n = 4000;
        let pts = Toy2d::Moons.sample(n, &mut Rng::new(4));
        let arcs = [
            curve(0.0, PI, 2000, |t| [2.0 * t.cos() - 1.0, 2.0 * t.sin() - 0.2]),
            curve(0.0, PI, 2000, |t| [1.0 - 2.0 * t.cos(), 0.8 - 2.0 * t.sin()]),
        ]
        .concat();
        let d: Vec<f64> = pts.iter().map(|&p| dist_to(&arcs, p)).collect();
        assert!(d.iter().all(|&v| v < 1.0));
        let mean_d = d.iter().sum::<f64>() / n as f64;
        assert!(mean_d < 0.2 && mean_d > 0.1, "{mean_d}");
        // Noise-free bounding box [-3, 3] x [-1.2, 1.8], widened by 5 noise deviations.
        for p in &pts {
            assert!((-4.0..=4.0).contains(&p[0]) && (-2.2..=2.8).contains(&p[1]), "{p:?}");
        }
        // Mean: x 0 by symmetry, y (4/π - 0.2 + 0.8 - 4/π)/2 = 0.3.
        let m = mean(&pts);
        assert!(m[0].abs() < 0.08 && (m[1] - 0.3).abs() < 0.05, "{m:?}");
    }

    #[test]
    fn spirals_lie_along_their_arms() {
        let n = 2000;
        let pts = Toy2d::TwoSpirals.sample(n, &mut Rng::new(5));
        let arm = |s: f64| {
            curve(0.0, 3.0 * PI, 3000, move |t| [s * (-t.cos() * t + 0.25) / 3.0, s * (t.sin() * t + 0.25) / 3.0])
        };
        let arms = [arm(1.0), arm(-1.0)].concat();
        let d: Vec<f64> = pts.iter().map(|&p| dist_to(&arms, p)).collect();
        assert!(d.iter().all(|&v| v < 0.7));
        let mean_d = d.iter().sum::<f64>() / n as f64;
        assert!(mean_d < 0.12, "{mean_d}");
        let m = mean(&pts);
        assert!(m[0].abs() < 0.1 && m[1].abs() < 0.15, "{m:?}");
    }

    #[test]
    fn swiss_roll_follows_its_spiral_with_the_right_mean() {
        let n = 4000;
        let pts = Toy2d::SwissRoll.sample(n, &mut Rng::new(6));
        let roll = curve(1.5 * PI, 4.5 * PI, 4000, |t| [t * t.cos() / 5.0, t * t.sin() / 5.0]);
        let d: Vec<f64> = pts.iter().map(|&p| dist_to(&roll, p)).collect();
        assert!(d.iter().all(|&v| v < 1.0));
        let mean_d = d.iter().sum::<f64>() / n as f64;
        assert!(mean_d < 0.2, "{mean_d}");
        // E[t cos t]/5 = 2/5 and E[t sin t]/5 = 2/(15π) for t ~ U(1.5π, 4.5π).
        let m = mean(&pts);
        assert!((m[0] - 0.4).abs() < 0.06 && (m[1] - 2.0 / (15.0 * PI)).abs() < 0.06, "{m:?}");
    }

    /// Riemann sum of the density over `[-6, 6]²`, and the mass of a box, which must match the samples' share.
    fn integrate(d: Toy2d, lo: [f64; 2], hi: [f64; 2]) -> (f64, f64) {
        let h = 0.01;
        let m = (12.0 / h) as usize;
        let (mut total, mut in_box) = (0.0, 0.0);
        for i in 0..m {
            for j in 0..m {
                let (x, y) = (-6.0 + (i as f64 + 0.5) * h, -6.0 + (j as f64 + 0.5) * h);
                let p = d.log_density([x as f32, y as f32]).unwrap().exp() * h * h;
                total += p;
                if x >= lo[0] && x < hi[0] && y >= lo[1] && y < hi[1] {
                    in_box += p;
                }
            }
        }
        (total, in_box)
    }

    #[test]
    fn closed_form_densities_integrate_to_one_and_match_samples() {
        let n = 20_000;
        for (d, lo, hi) in [
            (Toy2d::EightGaussians, [2.0, -1.0], [3.5, 1.0]),
            (Toy2d::Rings, [0.0, 0.0], [2.0, 2.0]),
            (Toy2d::Checkerboard, [-1.0, -3.0], [2.0, 1.0]),
        ] {
            let (total, mass) = integrate(d, lo, hi);
            assert!((total - 1.0).abs() < 2e-3, "{d}: total mass {total}");
            let pts = d.sample(n, &mut Rng::new(7));
            let inside = pts
                .iter()
                .filter(|p| {
                    let (x, y) = (p[0] as f64, p[1] as f64);
                    x >= lo[0] && x < hi[0] && y >= lo[1] && y < hi[1]
                })
                .count();
            assert_binomial(inside, n, mass, &format!("{d} box {lo:?}..{hi:?}"));
        }
        for d in [Toy2d::TwoSpirals, Toy2d::SwissRoll, Toy2d::Moons] {
            assert_eq!(d.log_density([0.0, 0.0]), None);
        }
        // The peak of a Gaussian mode: log(1/8 · 1/(2πσ²)) (the other modes add nothing noticeable).
        let c = eight_gaussians_centre(3);
        let peak = Toy2d::EightGaussians.log_density([c[0] as f32, c[1] as f32]).unwrap();
        let expected = -(8.0 * TAU * EIGHT_GAUSSIANS_STD.powi(2)).ln();
        assert!((peak - expected).abs() < 1e-6, "{peak} vs {expected}");
        assert_eq!(Toy2d::Checkerboard.log_density([1.0, 1.0]), Some(-(32f64.ln())));
        assert_eq!(Toy2d::Checkerboard.log_density([-1.0, 1.0]), Some(f64::NEG_INFINITY));
        // Edges: (4, 4) closes the square [2, 4]², (4, 1) borders the white square [2, 4] x [0, 2], (4.01, 3) is outside.
        assert!(in_black_square(4.0, 4.0) && !in_black_square(4.0, 1.0) && !in_black_square(4.01, 3.0));
    }

    #[test]
    fn scaled_bessel_matches_its_series() {
        for a in [0.0f64, 0.3, 1.0, 3.7, 3.8, 7.0, 20.0, 60.0] {
            // I₀(a) = Σ (a/2)^{2k} / (k!)², summed in logs to stay finite.
            let mut term = 0f64; // log of the k-th term
            let mut terms = vec![0f64];
            for k in 1..400 {
                term += 2.0 * (a / 2.0).ln() - 2.0 * (k as f64).ln();
                terms.push(term);
            }
            let expected = if a == 0.0 { -a } else { log_sum_exp(&terms) - a };
            assert!((log_i0_scaled(a) - expected).abs() < 1e-6, "a = {a}: {} vs {expected}", log_i0_scaled(a));
        }
    }
}
