//! Finite-difference checks of the input gradient of every layer type (candle autograd vs central differences),
//! in f64 on tiny shapes: activations, the conditional convolution (input bias, SAME padding, stride 1 and 2,
//! gain), self-attention, average pooling, dense, dropout with a fixed mask; and a directional check of every
//! whole network in f32.

use candle_core::{DType, Device, Tensor, Var};
use ebm_kernels::Rng;
use ebm_models::blocks::attention;
use ebm_models::layers::{activate, cond_conv2d, dense};
use ebm_models::ops::{avg_pool2x2, dropout, global_sum};
use ebm_models::*;
use ebm_sampler::Energy;
use std::sync::Mutex;

fn randn(shape: &[usize], std: f64, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal_f64() * std).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Checks the autograd gradient of `sum(r * f(x))` against central differences at every coordinate of `x`.
/// Error: max |autograd - fd| / max(max |fd|, 1e-3).
fn check(name: &str, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let mut rng = Rng::new(99);
    let r = randn(f(x).dims(), 1.0, &mut rng);
    let obj = |t: &Tensor| (f(t) * &r).unwrap().sum_all().unwrap();
    let v = Var::from_tensor(x).unwrap();
    let grads = obj(v.as_tensor()).backward().unwrap();
    let g = grads.get(v.as_tensor()).expect("gradient reaches the input").flatten_all().unwrap();
    let g = g.to_vec1::<f64>().unwrap();
    let x0 = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let eps = 1e-6;
    let mut fd = vec![0f64; x0.len()];
    for i in 0..x0.len() {
        let mut xp = x0.clone();
        xp[i] += eps;
        let mut xm = x0.clone();
        xm[i] -= eps;
        let at = |v: Vec<f64>| obj(&Tensor::from_vec(v, x.shape(), x.device()).unwrap()).to_scalar::<f64>().unwrap();
        fd[i] = (at(xp) - at(xm)) / (2.0 * eps);
    }
    let diff = g.iter().zip(&fd).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    let scale = fd.iter().map(|v| v.abs()).fold(0f64, f64::max).max(1e-3);
    assert!(scale > 1e-3, "{name}: the gradient vanishes, the check is vacuous");
    let err = diff / scale;
    println!("{name}: relative error {err:.2e}");
    assert!(err < 1e-6, "{name}: autograd vs finite differences {err:e}");
}

#[test]
fn activations() {
    let mut rng = Rng::new(1);
    // keep away from the kink at 0, where central differences straddle it
    let x = randn(&[2, 3, 4, 4], 1.0, &mut rng);
    let x = x.abs().unwrap().maximum(0.05).unwrap().mul(&randn(&[2, 3, 4, 4], 1.0, &mut rng).sign().unwrap()).unwrap();
    for act in [Activation::LeakyRelu, Activation::Swish, Activation::Relu] {
        check(&format!("{act:?}"), &x, |t| activate(t, act).unwrap());
    }
}

#[test]
fn conditional_conv() {
    let mut rng = Rng::new(2);
    let (b, cin, cout, l) = (3, 2, 3, 4);
    let cond =
        Tensor::from_vec(vec![1f64, 0., 0., 0., 0., 0., 1., 0., 0.3, 0.7, 0., 0.], (b, l), &Device::Cpu).unwrap();
    let gb = randn(&[l, cin], 0.5, &mut rng);
    let g = randn(&[l, cout], 0.5, &mut rng);
    let cb = randn(&[cout], 0.5, &mut rng);
    let w3 = randn(&[cout, cin, 3, 3], 0.5, &mut rng);
    let w4 = randn(&[cout, cin, 4, 4], 0.5, &mut rng);
    let x = randn(&[b, cin, 7, 7], 1.0, &mut rng);
    check("conv 3x3 s1 + cond bias + cond gain", &x, |t| {
        cond_conv2d(t, &w3, 1, Some(&gb), Some((&g, Some(&cb))), Some(&cond)).unwrap()
    });
    // 7x7 with a 4x4 stride-2 kernel: SAME pads 1 top/left, 2 bottom/right
    check("conv 4x4 s2 (asymmetric SAME) + cond bias", &x, |t| {
        cond_conv2d(t, &w4, 2, Some(&gb), None, Some(&cond)).unwrap()
    });
    let gbv = randn(&[cin], 0.5, &mut rng);
    let gv = randn(&[cout], 0.5, &mut rng);
    check("conv 3x3 unconditional bias + gain", &x, |t| {
        cond_conv2d(t, &w3, 1, Some(&gbv), Some((&gv, None)), None).unwrap()
    });
    // one continuous latent: vectors scaled by it
    let c1 = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], (b, 1), &Device::Cpu).unwrap();
    check("conv 4x4 s2, one latent, bias + gain", &x, |t| {
        cond_conv2d(t, &w4, 2, Some(&gbv), Some((&gv, Some(&cb))), Some(&c1)).unwrap()
    });
}

#[test]
fn self_attention() {
    let mut rng = Rng::new(3);
    let (b, c, k) = (2, 4, 2);
    let x = randn(&[b, c, 3, 3], 1.0, &mut rng);
    let wq = randn(&[k, c, 1, 1], 0.5, &mut rng);
    let wk = randn(&[k, c, 1, 1], 0.5, &mut rng);
    let bq = randn(&[k], 0.5, &mut rng);
    let bk = randn(&[k], 0.5, &mut rng);
    let wv = randn(&[c, c, 1, 1], 0.5, &mut rng);
    let gamma = Tensor::new(&[0.7f64], &Device::Cpu).unwrap();
    check("attention", &x, |t| attention(t, &wq, &bq, &wk, &bk, &wv, &gamma, None).unwrap());
}

#[test]
fn pooling_dense_sum() {
    let mut rng = Rng::new(4);
    check("avg pool 6x6", &randn(&[2, 3, 6, 6], 1.0, &mut rng), |t| avg_pool2x2(t).unwrap());
    check("avg pool 7x5 (VALID drops the odd row/col)", &randn(&[2, 3, 7, 5], 1.0, &mut rng), |t| {
        avg_pool2x2(t).unwrap()
    });
    let w = randn(&[5, 6], 0.5, &mut rng);
    let bias = randn(&[5], 0.5, &mut rng);
    check("dense", &randn(&[3, 6], 1.0, &mut rng), |t| dense(t, &w, Some(&bias)).unwrap());
    check("global sum", &randn(&[2, 3, 4, 4], 1.0, &mut rng), |t| global_sum(t).unwrap());
}

#[test]
fn dropout_with_a_fixed_mask() {
    let mut rng = Rng::new(5);
    let x = randn(&[2, 3, 4, 4], 1.0, &mut rng);
    check("dropout", &x, |t| dropout(t, 0.5, &Mutex::new(Rng::new(7))).unwrap());
    let y = dropout(&x, 0.5, &Mutex::new(Rng::new(7))).unwrap();
    let (xs, ys) =
        (x.flatten_all().unwrap().to_vec1::<f64>().unwrap(), y.flatten_all().unwrap().to_vec1::<f64>().unwrap());
    let kept = xs.iter().zip(&ys).filter(|(a, b)| (*b - 2.0 * *a).abs() < 1e-12).count();
    let dropped = ys.iter().filter(|b| **b == 0.0).count();
    assert_eq!(kept + dropped, xs.len(), "each element is dropped or doubled");
    assert!(kept > 8 && dropped > 8, "about half are kept: {kept} of {}", xs.len());
}

/// Tiny instances of every architecture, with the parameters perturbed away from their initialisation (so the
/// conditioning, the gains and attention all matter).
pub fn tiny_configs() -> Vec<ModelConfig> {
    vec![
        ModelConfig::ResNet32(ResNet32Config {
            filters: 4,
            classes: 3,
            attention: true,
            image_size: 8,
            ..Default::default()
        }),
        ModelConfig::ResNet32Large(ResNet32LargeConfig { filters: 2, classes: 0, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32Larger(ResNet32Config { filters: 2, classes: 2, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32Wider(ResNet32WiderConfig {
            filters: 4,
            classes: 3,
            activation: Activation::Swish,
            attention: true,
            image_size: 8,
            ..Default::default()
        }),
        ModelConfig::ResNet128(ResNet128Config {
            filters: 2,
            classes: 3,
            attention: true,
            image_size: 32,
            ..Default::default()
        }),
        ModelConfig::MnistNet(MnistNetConfig { filters: 2, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig {
            filters: 2,
            cond_dim: 2,
            activation: Activation::Swish,
            ..Default::default()
        }),
        ModelConfig::DigitsNet(DigitsNetConfig { filters: 4, classes: 3, attention: true, ..Default::default() }),
        ModelConfig::CondMnistNet(CondMnistNetConfig { filters: 2, classes: 3, ..Default::default() }),
    ]
}

fn perturbed(cfg: ModelConfig, seed: u64) -> EnergyNet {
    let mut rng = Rng::new(seed);
    let mut net = EnergyNet::new(cfg, &mut rng, &Device::Cpu).unwrap();
    for (name, slot) in net.params().iter() {
        if slot.trainable && !name.ends_with("weight") {
            let t = slot.var.as_tensor();
            let noise = Tensor::from_vec(rng.normal_vec(t.elem_count(), 0.0, 0.2), t.shape(), t.device()).unwrap();
            slot.var.set(&(t + noise).unwrap()).unwrap();
        }
        if name.ends_with("_c2/cweight") {
            // the zero-initialised convs: give them weight so the residual branches matter
            let t = slot.var.as_tensor();
            slot.var
                .set(&Tensor::from_vec(rng.normal_vec(t.elem_count(), 0.0, 1.0), t.shape(), t.device()).unwrap())
                .unwrap();
        }
    }
    net.refresh().unwrap();
    net
}

fn cond_for(cfg: &ModelConfig, b: usize) -> Option<Tensor> {
    match cfg {
        ModelConfig::DspritesNet(c) if c.cond_dim > 0 => {
            let v: Vec<f32> = (0..b * c.cond_dim).map(|i| (i as f32 * 0.37).sin()).collect();
            Some(Tensor::from_vec(v, (b, c.cond_dim), &Device::Cpu).unwrap())
        }
        _ if cfg.cond_dim() > 0 => {
            let v: Vec<u32> = (0..b as u32).map(|i| i % cfg.cond_dim() as u32).collect();
            Some(Tensor::from_vec(v, b, &Device::Cpu).unwrap())
        }
        _ => None,
    }
}

/// Directional derivatives of the summed energy of each tiny network (run in f64) vs its autograd gradient, along
/// three random directions: `|(E(x + h d) - E(x - h d)) / 2h - g.d| <= 1e-7 |g| |d| + rounding` with h = 1e-7
/// (small enough that no leaky-ReLU kink lies between the two points; with h = 1e-5 MnistNet's 50k units per
/// sample cross some) and `rounding = 1e-15 (|E| + 1) / h` for the f64 rounding of the energies.
#[test]
fn whole_networks_directional() {
    for (i, cfg) in tiny_configs().into_iter().enumerate() {
        let name = cfg.arch_name();
        let mut net = perturbed(cfg.clone(), 10 + i as u64);
        net.to_dtype(DType::F64).unwrap();
        let mut rng = Rng::new(20 + i as u64);
        let shape: Vec<usize> = [2].into_iter().chain(cfg.input_shape()).collect();
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), shape.as_slice(), &Device::Cpu).unwrap();
        let x = x.to_dtype(DType::F64).unwrap();
        let cond = cond_for(&cfg, 2);
        let (_, g) = net.energy_and_grad(&x, cond.as_ref()).unwrap();
        let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
        assert!(norm(&g) > 0.0, "{name}: zero gradient");
        let e = |t: &Tensor| net.energy(t, cond.as_ref()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let h = 1e-7;
        // f64 rounding of the two energies, amplified by 1/2h
        let rounding = 1e-15 * (e(&x).abs() + 1.0) / h;
        let mut worst = 0f64;
        for _ in 0..3 {
            let d = randn(&shape, 1.0, &mut rng);
            let gd = (&g * &d).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            let fd = (e(&(&x + (&d * h).unwrap()).unwrap()) - e(&(&x - (&d * h).unwrap()).unwrap())) / (2.0 * h);
            let err = (fd - gd).abs() / (1e-7 * norm(&g) * norm(&d) + rounding);
            println!("{name}: g.d {gd:.8} fd {fd:.8} error/tolerance {err:.2e}");
            worst = worst.max(err);
        }
        assert!(worst <= 1.0, "{name}: directional derivatives disagree with autograd ({worst:e} x tolerance)");
    }
}
