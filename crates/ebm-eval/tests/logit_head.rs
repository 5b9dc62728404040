//! The logit-head network (`cond_mnist_net` with `logit_head`): its one-pass class energies must be the energies
//! its conditioned forward gives class by class, and the PGD gradient taken through the one-pass path must equal
//! the per-class path's.

use candle_core::{DType, Device, Tensor};
use ebm_eval::classify::class_energies;
use ebm_eval::robust::{AttackLoss, EnergyClassifier, Through};
use ebm_kernels::Rng;
use ebm_models::{CondMnistNetConfig, EnergyNet, ModelConfig};
use ebm_sampler::Energy;

fn net() -> EnergyNet {
    let cfg = CondMnistNetConfig { filters: 4, classes: 5, logit_head: true, ..Default::default() };
    let mut net = EnergyNet::new(ModelConfig::CondMnistNet(cfg), &mut Rng::new(3), &Device::Cpu).unwrap();
    net.to_dtype(DType::F64).unwrap();
    net.set_frozen(true);
    net
}

fn images(n: usize) -> Tensor {
    let mut r = Rng::new(7);
    let v: Vec<f64> = (0..n * 28 * 28).map(|_| r.uniform() as f64).collect();
    Tensor::from_vec(v, (n, 1, 28, 28), &Device::Cpu).unwrap()
}

fn onehots(n: usize, c: usize, classes: usize) -> Tensor {
    let v: Vec<f64> = (0..n * classes).map(|i| if i % classes == c { 1.0 } else { 0.0 }).collect();
    Tensor::from_vec(v, (n, classes), &Device::Cpu).unwrap()
}

#[test]
fn one_pass_class_energies_equal_the_conditioned_forward() {
    let net = net();
    let x = images(3);
    let shared = net.class_energies_at_once(&x, 5).expect("a logit head shares its pass").unwrap();
    assert_eq!(shared.dims(), [3, 5]);
    let shared = shared.to_vec2::<f64>().unwrap();
    for c in 0..5 {
        let e = net.energy(&x, Some(&onehots(3, c, 5))).unwrap().to_vec1::<f64>().unwrap();
        for (i, (ei, row)) in e.iter().zip(&shared).enumerate() {
            assert!((ei - row[c]).abs() < 1e-12, "class {c}, image {i}: {ei} vs {}", row[c]);
        }
    }
    // the classes differ (a head that ignored the class would pass the check above trivially)
    let spread =
        shared[0].iter().cloned().fold(f64::MIN, f64::max) - shared[0].iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 1e-6, "class energies of image 0 are all equal: {:?}", shared[0]);
    // asking for another number of classes than the head scores is an error, not a silent reshape
    assert!(net.class_energies_at_once(&x, 4).unwrap().is_err());
    // the free function takes the one-pass path and agrees
    let free = class_energies(&net, &x, 5).unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(free, shared);
}

#[test]
fn attack_gradient_through_the_shared_pass_equals_the_per_class_one() {
    let net = net();
    // the same energy behind a closure, which has no one-pass path: the attack then runs one pass per class
    let per_class = |x: &Tensor, c: Option<&Tensor>| net.energy(x, c);
    assert!(per_class.class_energies_at_once(&images(1), 5).is_none());
    let x = images(4);
    let labels = [0u32, 1, 2, 4];
    for loss in [AttackLoss::Ce, AttackLoss::Margin] {
        let a = EnergyClassifier { energy: &net, classes: 5, refine: None };
        let b = EnergyClassifier { energy: &per_class, classes: 5, refine: None };
        let (ga, la, pa) = a.loss_grad(&x, &labels, Through::Ignore, loss, 1).unwrap();
        let (gb, lb, pb) = b.loss_grad(&x, &labels, Through::Ignore, loss, 1).unwrap();
        assert_eq!(pa, pb);
        for (u, v) in la.iter().zip(&lb) {
            assert!((u - v).abs() < 1e-9, "{loss:?} losses {la:?} vs {lb:?}");
        }
        let ga = ga.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let gb = gb.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = gb.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{loss:?}: zero gradient");
        let worst = ga.iter().zip(&gb).fold(0f32, |m, (u, v)| m.max((u - v).abs()));
        assert!(worst <= 1e-5 * scale, "{loss:?}: gradients differ by {worst} (scale {scale})");
    }
}

/// Scoring and prediction read `class_energy_values`: the same numbers as the differentiable `class_energies`, with
/// no graph behind them (backward reaches no parameter), so a per-class model does not hold every class's pass.
#[test]
fn class_energy_values_equal_the_energies_and_carry_no_graph() {
    let cfg = CondMnistNetConfig { filters: 4, classes: 5, logit_head: false, ..Default::default() };
    let net = EnergyNet::new(ModelConfig::CondMnistNet(cfg), &mut Rng::new(3), &Device::Cpu).unwrap();
    let x = images(3).to_dtype(DType::F32).unwrap();
    let tracked = class_energies(&net, &x, 5).unwrap();
    let values = ebm_eval::classify::class_energy_values(&net, &x, 5).unwrap();
    assert_eq!(tracked.to_vec2::<f32>().unwrap(), values.to_vec2::<f32>().unwrap());
    let reached = |t: &Tensor| {
        let g = t.sum_all().unwrap().backward().unwrap();
        net.params().iter().filter(|(_, slot)| g.get(slot.var.as_tensor()).is_some()).count()
    };
    assert!(reached(&tracked) > 0, "the differentiable energies reach no parameter");
    assert_eq!(reached(&values), 0);
}
