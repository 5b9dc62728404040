//! The networks: the transition energy's input gradient (what Langevin follows) against central finite
//! differences, and the predictors' losses.

use candle_core::{Device, Tensor};
use ebm_sampler::Energy;
use ebm_traj::nets::{NetConfig, Normaliser};
use ebm_traj::train::build;
use ebm_traj::STATE_DIM;

fn rows(n: usize, seed: u32) -> Vec<f32> {
    (0..n * STATE_DIM).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
}

#[test]
fn transition_energy_gradient_matches_finite_differences() {
    let (energy, _, _) = build(NetConfig { hidden: 32, depth: 2 }, 5).unwrap();
    let n = 4;
    let z = Tensor::from_vec(rows(n, 1), (n, STATE_DIM), &Device::Cpu).unwrap();
    let c = Tensor::from_vec(rows(n, 2), (n, STATE_DIM), &Device::Cpu).unwrap();
    let (e, g) = energy.energy_and_grad(&z, Some(&c)).unwrap();
    assert_eq!(e.dims(), [n]);
    let g = g.to_vec2::<f32>().unwrap();
    let zv = z.to_vec2::<f32>().unwrap();
    let h = 1e-2f32;
    let mut worst = 0f32;
    for i in 0..n {
        for k in 0..STATE_DIM {
            let at = |d: f32| {
                let mut m = zv.clone();
                m[i][k] += d;
                let t = Tensor::new(m, &Device::Cpu).unwrap();
                energy.energy(&t, Some(&c)).unwrap().to_vec1::<f32>().unwrap()[i] as f64
            };
            let fd = ((at(h) - at(-h)) / (2.0 * h as f64)) as f32;
            worst = worst.max((fd - g[i][k]).abs() / (g[i][k].abs() + 1e-2));
        }
    }
    assert!(worst < 2e-2, "largest relative difference {worst}");
    // the state is a condition, not a variable: changing it changes the energy
    let c2 = Tensor::from_vec(rows(n, 9), (n, STATE_DIM), &Device::Cpu).unwrap();
    let e2 = energy.energy(&z, Some(&c2)).unwrap();
    assert!((e - e2).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
}

#[test]
fn normaliser_round_trips_changes_and_the_fc_predictor_is_deterministic() {
    let s = rows(50, 3);
    let s1: Vec<f32> = s.iter().enumerate().map(|(i, v)| v + 0.1 * ((i % 7) as f32 - 3.0)).collect();
    let norm = Normaliser::fit(&s, &s1);
    let st = Tensor::from_vec(s.clone(), (50, STATE_DIM), &Device::Cpu).unwrap();
    let st1 = Tensor::from_vec(s1.clone(), (50, STATE_DIM), &Device::Cpu).unwrap();
    let z = norm.deltas(&(&st1 - &st).unwrap()).unwrap();
    let back = norm.next(&st, &z).unwrap();
    let err = (back - &st1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(err < 1e-5, "{err}");
    let (_, fc, gauss) = build(NetConfig { hidden: 16, depth: 1 }, 1).unwrap();
    let c = norm.states(&st).unwrap();
    let eps1 = Tensor::randn(0f32, 1.0, (50, STATE_DIM), &Device::Cpu).unwrap();
    let eps2 = Tensor::randn(0f32, 1.0, (50, STATE_DIM), &Device::Cpu).unwrap();
    let d = |a: Tensor, b: Tensor| (a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d(fc.sample(&c, &eps1).unwrap(), fc.sample(&c, &eps2).unwrap()), 0.0);
    assert!(d(gauss.sample(&c, &eps1).unwrap(), gauss.sample(&c, &eps2).unwrap()) > 1e-2);
}
