//! The sampler's knobs: masks, early stopping, trajectories, diagnostics, clamping, composition values.

use candle_core::{DType, Device, Result, Tensor};
use ebm_sampler::{Clip, EarlyStop, Energy, Langevin, LogSumExp, Mala, Neg, NoiseOrder, Record, Sum, Term};
use std::sync::Arc;

fn quad(x: &Tensor, _c: Option<&Tensor>) -> Result<Tensor> {
    x.sqr()?.flatten_from(1)?.sum(1)? * 0.5
}

fn shift(c: f64) -> impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor> {
    move |x: &Tensor, _c: Option<&Tensor>| (x - c)?.sqr()?.flatten_from(1)?.sum(1)? * 0.5
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

#[test]
fn mask_keeps_unmasked_entries_bit_for_bit() {
    let x0 = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap();
    let m: Vec<f32> = (0..24).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let mask = Tensor::from_vec(m.clone(), (2, 3, 4), &Device::Cpu).unwrap();
    let mut s = Langevin::igebm(1.0, 0.1, 5);
    s.clamp = None;
    let out = s.run(&quad, &x0, None, Some(&mask), 1).unwrap();
    let (a, b) = (vals(&x0), vals(&out.x));
    for i in 0..24 {
        if m[i] == 0.0 {
            assert_eq!(a[i].to_bits(), b[i].to_bits());
        } else if a[i] != 0.0 {
            assert_ne!(a[i], b[i], "masked entry {i} did not move");
        }
    }
    let mala = Mala::new(0.1, 20).run(&quad, &x0, None, Some(&mask), 2).unwrap();
    let c = vals(&mala.x);
    for i in 0..24 {
        if m[i] == 0.0 {
            assert_eq!(a[i].to_bits(), c[i].to_bits());
        }
    }
}

#[test]
fn early_stop_ends_a_settled_chain_and_records_what_it_did() {
    let x0 = Tensor::ones((8, 2), DType::F32, &Device::Cpu).unwrap();
    let mut s = Langevin::ula(0.1, 1000);
    s.noise_std = 0.0;
    s.early_stop = Some(EarlyStop { tolerance: 1e-4, min_steps: 5 });
    s.record = Record { trajectory_every: Some(10), diagnostics: true };
    let out = s.run(&quad, &x0, None, None, 3).unwrap();
    // gradient descent on |x|^2/2 with step 0.1 shrinks x by 0.9 per step; the mean energy change
    // 0.81^k (1 - 0.81) drops below 1e-4 near k = 36
    assert!(out.steps > 20 && out.steps < 60, "stopped after {} steps", out.steps);
    assert_eq!(out.stats.len(), out.steps);
    assert_eq!(out.trajectory.len(), 1 + out.steps / 10 + usize::from(out.steps % 10 != 0));
    let e: Vec<f32> = out.stats.iter().map(|s| s.mean_energy).collect();
    assert!(e.windows(2).all(|w| w[1] < w[0]), "energy must fall monotonically without noise");
    assert!((out.stats[0].grad_norm - 2f32.sqrt()).abs() < 1e-5);
}

#[test]
fn clamp_and_clip_bound_every_step() {
    let x0 = Tensor::full(0.5f32, (4, 10), &Device::Cpu).unwrap();
    let mut s = Langevin::igebm(10.0, 0.01, 1);
    s.noise_std = 0.0;
    // energy -100 x: gradient -100, clipped to 0.01, step 10 -> moves exactly +0.1
    let lin = |x: &Tensor, _c: Option<&Tensor>| -> Result<Tensor> { x.sum(1)? * -100.0 };
    let out = s.run(&lin, &x0, None, None, 0).unwrap();
    assert!(vals(&out.x).iter().all(|v| (v - 0.6).abs() < 1e-6));
    s.steps = 10;
    let out = s.run(&lin, &x0, None, None, 0).unwrap();
    assert!(vals(&out.x).iter().all(|v| *v == 1.0), "clamped at 1");
    s.clip = Clip::SampleL2(0.01);
    s.steps = 1;
    let out = s.run(&lin, &x0, None, None, 0).unwrap();
    let moved = (&out.x - &x0).unwrap().sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
    assert!(vals(&moved).iter().all(|v| (v - 0.1).abs() < 1e-5), "per-sample norm of the step is step*c");
}

#[test]
fn noise_first_and_textbook_orders_agree_without_noise() {
    let x0 = Tensor::full(0.9f32, (3, 5), &Device::Cpu).unwrap();
    let mut a = Langevin::igebm(0.5, 0.0, 7);
    a.noise_std = 0.0;
    let mut b = a.clone();
    b.order = NoiseOrder::Textbook;
    let (ra, rb) = (a.run(&quad, &x0, None, None, 1).unwrap(), b.run(&quad, &x0, None, None, 1).unwrap());
    assert_eq!(vals(&ra.x), vals(&rb.x));
    // and with noise, the same seed reproduces the same chain
    let c = Langevin::igebm(0.5, 0.0, 7);
    assert_eq!(vals(&c.run(&quad, &x0, None, None, 5).unwrap().x), vals(&c.run(&quad, &x0, None, None, 5).unwrap().x));
    assert_ne!(vals(&c.run(&quad, &x0, None, None, 5).unwrap().x), vals(&c.run(&quad, &x0, None, None, 6).unwrap().x));
}

#[test]
fn composition_values_on_hand_checked_points() {
    let x = Tensor::new(&[[0f32, 0.0], [1.0, 2.0]], &Device::Cpu).unwrap();
    // E_a = |x|^2/2 -> [0, 2.5]; E_b = |x-1|^2/2 -> [1, 0.5]
    let a: Arc<dyn Energy + Send + Sync> = Arc::new(quad);
    let b: Arc<dyn Energy + Send + Sync> = Arc::new(shift(1.0));
    let sum = Sum::new(vec![Term::new(a.clone(), 2.0), Term::new(b.clone(), 1.0)]);
    assert_eq!(vals(&sum.energy(&x, None).unwrap()), vec![1.0, 5.5]);
    let neg = Neg(quad);
    assert_eq!(vals(&neg.energy(&x, None).unwrap()), vec![0.0, -2.5]);
    let (_, g) = neg.energy_and_grad(&x, None).unwrap();
    assert_eq!(vals(&g), vec![0.0, 0.0, -1.0, -2.0]);
    // -log(0.5 e^0 + 0.5 e^-1) = 0.3798854930417224 ; -log(0.5 e^-2.5 + 0.5 e^-0.5) = 1.0731057..
    let lse = LogSumExp::new(vec![Term::new(a.clone(), 0.5), Term::new(b.clone(), 0.5)]);
    let e = vals(&lse.energy(&x, None).unwrap());
    let want = [0.379_885_5f32, -((0.5 * (-2.5f64).exp() + 0.5 * (-0.5f64).exp()).ln()) as f32];
    assert!((e[0] - want[0]).abs() < 1e-5 && (e[1] - want[1]).abs() < 1e-5, "{e:?} vs {want:?}");
    // the composite's own gradients equal autograd through its energy
    for comp in [&sum as &dyn Energy, &lse as &dyn Energy] {
        let (_, g_fast) = comp.energy_and_grad(&x, None).unwrap();
        let (_, g_auto) = ebm_sampler::autograd_energy_and_grad(comp, &x, None).unwrap();
        let d: f32 = vals(&(g_fast - g_auto).unwrap()).iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(d < 1e-5, "gradient mismatch {d}");
    }
}

#[test]
fn a_term_keeps_its_own_condition() {
    let cond_energy = |x: &Tensor, c: Option<&Tensor>| -> Result<Tensor> {
        let c = c.expect("condition");
        x.broadcast_sub(c)?.sqr()?.sum(1)
    };
    let target = Tensor::new(&[[5f32, 5.0]], &Device::Cpu).unwrap();
    let sum = Sum::new(vec![Term::new(Arc::new(cond_energy), 1.0).with_cond(target)]);
    let x = Tensor::new(&[[5f32, 5.0], [0.0, 0.0]], &Device::Cpu).unwrap();
    assert_eq!(vals(&sum.energy(&x, None).unwrap()), vec![0.0, 50.0]);
}

#[test]
fn bad_shapes_are_reported() {
    let x0 = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
    let bad_mask = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let err = Langevin::ula(0.1, 1).run(&quad, &x0, None, Some(&bad_mask), 0).unwrap_err().to_string();
    assert!(err.contains("mask shape"), "{err}");
    let scalar = |x: &Tensor, _c: Option<&Tensor>| -> Result<Tensor> { x.sum_all() };
    let err = Langevin::ula(0.1, 1).run(&scalar, &x0, None, None, 0).unwrap_err().to_string();
    assert!(err.contains("must return shape [4]"), "{err}");
}
