//! The composition builder does what its names say, on 2D Gaussians whose densities are known in closed form:
//! AND samples the product, NOT keeps the samples out of the negated density's region while staying in the
//! positive part's, OR finds every mode of the mixture in proportion.

use candle_core::{Device, Result, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::builder::{compose, ComposeOp, Part};
use ebm_sampler::{Energy, Mala};
use std::sync::Arc;

/// `|x - mu|^2 / (2 sd^2)`: the energy of N(mu, sd^2 I) in 2D.
fn gaussian(mu: [f32; 2], sd: f32) -> Arc<dyn Energy + Send + Sync> {
    Arc::new(move |x: &Tensor, _c: Option<&Tensor>| -> Result<Tensor> {
        let m = Tensor::new(&[mu], x.device())?;
        x.broadcast_sub(&m)?.sqr()?.sum(1)? / (2.0 * (sd * sd) as f64)
    })
}

fn part(energy: Arc<dyn Energy + Send + Sync>, weight: f64) -> Part {
    Part { energy, weight, cond: None, margin: None }
}

const N: usize = 4000;

/// `N` chains from uniform noise on [-3, 3]^2, 400 MALA steps of 0.02 (exact for the target, whatever the step).
fn sample(parts: &[Part], op: ComposeOp, seed: u64) -> Vec<[f32; 2]> {
    sample_with(parts, op, None, seed)
}

fn sample_with(parts: &[Part], op: ComposeOp, not_softness: Option<f64>, seed: u64) -> Vec<[f32; 2]> {
    let mut rng = Rng::new(seed);
    let x0 = ebm_sampler::starts::uniform(N, &[2], [-3.0, 3.0], &mut rng, &Device::Cpu).unwrap();
    let (energy, _) = compose(parts, op, not_softness, &x0).unwrap();
    let x = Mala::new(0.02, 400).run(&energy, &x0, None, None, seed).unwrap().x;
    x.to_vec2::<f32>().unwrap().into_iter().map(|r| [r[0], r[1]]).collect()
}

fn fraction(points: &[[f32; 2]], inside: impl Fn([f32; 2]) -> bool) -> f64 {
    points.iter().filter(|p| inside(**p)).count() as f64 / points.len() as f64
}

fn dist(p: [f32; 2], c: [f32; 2]) -> f32 {
    ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt()
}

/// AND of N(0, 1) and N((1, 0), 0.5^2) is N(mu, s^2) with precision 1 + 4 = 5, s^2 = 0.2, mu = (4/5, 0): the sample
/// mean must be within 0.05 of it (its standard error is 0.007 at 4000 samples) and the variance within 15%.
#[test]
fn and_samples_the_product_of_the_densities() {
    let x = sample(&[part(gaussian([0.0, 0.0], 1.0), 1.0), part(gaussian([1.0, 0.0], 0.5), 1.0)], ComposeOp::And, 1);
    let mean = [0, 1].map(|k| x.iter().map(|p| p[k] as f64).sum::<f64>() / N as f64);
    let var = [0, 1].map(|k| x.iter().map(|p| (p[k] as f64 - mean[k]).powi(2)).sum::<f64>() / N as f64);
    assert!((mean[0] - 0.8).abs() < 0.05 && mean[1].abs() < 0.05, "mean {mean:?}, want (0.8, 0)");
    for v in var {
        assert!((v - 0.2).abs() < 0.03, "variance {var:?}, want 0.2 in each coordinate");
    }
}

/// A AND NOT B with A = N(0, 1), B = N((0.8, 0), 0.4^2), the NOT term acting up to B's energy 2 (two of B's
/// standard deviations from its centre; margin and softness 0.5 given, since the defaults are set by B's energy on
/// the uniform starts, here far larger than in its own region): samples of A alone fall within 0.4 of B's centre
/// about 5% of the time; with the NOT term they must do so at most a third as often, while at least 90% stay
/// inside A's 95% region (radius 2.45).
#[test]
fn not_keeps_samples_out_of_the_negated_density() {
    let a = gaussian([0.0, 0.0], 1.0);
    let b = gaussian([0.8, 0.0], 0.4);
    let alone = sample(&[part(a.clone(), 1.0)], ComposeOp::And, 2);
    let not_b = Part { margin: Some(2.0), ..part(b, -1.0) };
    let not = sample_with(&[part(a, 1.0), not_b], ComposeOp::And, Some(0.5), 2);
    let in_b = |p: [f32; 2]| dist(p, [0.8, 0.0]) < 0.4;
    let (fa, fn_) = (fraction(&alone, in_b), fraction(&not, in_b));
    println!("within B's region: A alone {fa:.3}, A AND NOT B {fn_:.3}");
    assert!(fa > 0.03, "A alone should visit B's region: {fa}");
    assert!(fn_ <= fa / 3.0, "NOT did not keep samples out of B: {fn_} vs {fa} for A alone");
    let in_a = fraction(&not, |p| dist(p, [0.0, 0.0]) < 2.45);
    assert!(in_a >= 0.9, "NOT pushed samples out of A's region: {in_a}");
}

/// A OR B of N((-2, 0), 0.5^2) and N((2, 0), 0.5^2) with equal weights: both modes present, each holding between
/// 40% and 60% of the samples, and at least 95% of samples within 1.5 of a mode.
#[test]
fn or_finds_both_modes_in_proportion() {
    let x = sample(&[part(gaussian([-2.0, 0.0], 0.5), 1.0), part(gaussian([2.0, 0.0], 0.5), 1.0)], ComposeOp::Or, 3);
    let left = fraction(&x, |p| dist(p, [-2.0, 0.0]) < 1.5);
    let right = fraction(&x, |p| dist(p, [2.0, 0.0]) < 1.5);
    println!("left {left:.3}, right {right:.3}");
    assert!(left + right >= 0.95, "samples between or outside the modes: {left} + {right}");
    let share = left / (left + right);
    assert!((0.4..=0.6).contains(&share), "modes unbalanced: {share} on the left");
}
