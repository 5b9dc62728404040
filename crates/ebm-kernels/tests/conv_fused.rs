//! The fused ops around the convolutions against candle's own formulations (in f64): leaky ReLU, the per-channel
//! scale (output gain) and the convolution with an input bias, forward and every gradient, for per-example and
//! shared vectors, odd shapes, stride 2 with SAME padding, batch 1, both convolution algorithms.

use candle_core::{DType, Device, Tensor, Var};
use ebm_kernels::conv::{conv2d_biased_with, leaky_relu, scale_channels};
use ebm_kernels::{ConvAlgo, ConvPad, Rng};

fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), shape, &Device::Cpu).unwrap()
}

fn f64_(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).unwrap()
}

fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(ours.dims(), reference.dims());
    let a = f64_(ours).flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = f64_(reference).flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f64, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f64, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

/// Gradients of `sum(f(inputs) * r)` with respect to every input.
fn grads(inputs: &[Tensor], r: &Tensor, f: impl Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let r = r.to_dtype(y.dtype()).unwrap();
    let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (y, vars.iter().map(|v| g.get(v.as_tensor()).expect("gradient").clone()).collect())
}

#[test]
fn leaky_relu_matches_maximum() {
    let mut rng = Rng::new(1);
    for shape in [vec![3, 5, 7, 2], vec![2, 64, 33, 33], vec![1]] {
        let x = randn(&mut rng, &shape);
        let r = randn(&mut rng, &shape);
        for dt in [DType::F32, DType::F64] {
            let x = x.to_dtype(dt).unwrap();
            let (y, g) = grads(std::slice::from_ref(&x), &r, |t| leaky_relu(&t[0], 0.2).unwrap());
            let (yr, gr) = grads(&[f64_(&x)], &r, |t| t[0].maximum(&(&t[0] * 0.2).unwrap()).unwrap());
            assert_eq!(y.dtype(), dt);
            assert!(rel_err(&y, &yr) < 1e-7, "{shape:?} {dt:?} forward");
            assert!(rel_err(&g[0], &gr[0]) < 1e-7, "{shape:?} {dt:?} gradient");
        }
    }
}

#[test]
fn scale_channels_matches_broadcast_mul() {
    let mut rng = Rng::new(2);
    for (b, c, h, w) in [(3, 5, 4, 7), (1, 16, 9, 9), (4, 64, 32, 32)] {
        let y = randn(&mut rng, &[b, c, h, w]);
        let r = randn(&mut rng, &[b, c, h, w]);
        for s_shape in [vec![b, c], vec![1, c], vec![c]] {
            let s = randn(&mut rng, &s_shape);
            for dt in [DType::F32, DType::F64] {
                let (yd, sd) = (y.to_dtype(dt).unwrap(), s.to_dtype(dt).unwrap());
                let (out, g) = grads(&[yd, sd], &r, |t| scale_channels(&t[0], &t[1]).unwrap());
                let s4 = |t: &Tensor| t.reshape((if s_shape.len() == 2 { s_shape[0] } else { 1 }, c, 1, 1)).unwrap();
                let (outr, gr) = grads(&[f64_(&y), f64_(&s)], &r, |t| t[0].broadcast_mul(&s4(&t[1])).unwrap());
                let tol = if dt == DType::F32 { 1e-5 } else { 1e-12 };
                let what = format!("{:?} scale {s_shape:?} {dt:?}", (b, c, h, w));
                assert!(rel_err(&out, &outr) < tol, "{what}: forward");
                assert!(rel_err(&g[0], &gr[0]) < tol, "{what}: input gradient");
                assert_eq!(g[1].dims(), &s_shape[..], "{what}: scale gradient shape");
                assert!(rel_err(&g[1], &gr[1]) < tol, "{what}: scale gradient");
            }
        }
    }
}

#[test]
fn constant_scale_gets_no_gradient() {
    let mut rng = Rng::new(3);
    let y = Var::from_tensor(&randn(&mut rng, &[2, 4, 3, 3])).unwrap();
    let s = randn(&mut rng, &[2, 4]);
    let g = scale_channels(y.as_tensor(), &s).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(y.as_tensor()).is_some());
    assert!(g.get(&s).is_none());
}

/// TensorFlow SAME padding (odd pixel bottom/right).
fn same(h: usize, k: usize, stride: usize) -> ConvPad {
    let t = ((h.div_ceil(stride) - 1) * stride + k).saturating_sub(h);
    ConvPad { top: t / 2, bottom: t - t / 2, left: t / 2, right: t - t / 2 }
}

#[test]
fn biased_conv_matches_bias_then_conv() {
    let mut rng = Rng::new(4);
    // (batch, cin, h, cout, k, stride)
    let cases = [
        (3, 16, 9, 20, 3, 1),
        (1, 32, 8, 16, 3, 1),
        (2, 5, 11, 7, 3, 1),
        (4, 12, 14, 24, 4, 2),
        (2, 20, 7, 18, 4, 2),
        (1, 3, 6, 4, 3, 2),
    ];
    for (b, cin, h, cout, k, stride) in cases {
        let pad = same(h, k, stride);
        let x = randn(&mut rng, &[b, cin, h, h]);
        let w = randn(&mut rng, &[cout, cin, k, k]);
        let ho = h.div_ceil(stride);
        let r = randn(&mut rng, &[b, cout, ho, ho]);
        for b_shape in [vec![b, cin], vec![1, cin], vec![cin]] {
            let bias = randn(&mut rng, &b_shape);
            for algo in [ConvAlgo::Im2col, ConvAlgo::Auto] {
                let what = format!("{:?} bias {b_shape:?} {algo:?}", (b, cin, h, cout, k, stride));
                let (y, g) = grads(&[x.clone(), w.clone(), bias.clone()], &r, |t| {
                    conv2d_biased_with(&t[0], &t[1], &t[2], stride, pad, algo).unwrap()
                });
                let rows = if b_shape.len() == 2 { b_shape[0] } else { 1 };
                let (yr, gr) = grads(&[f64_(&x), f64_(&w), f64_(&bias)], &r, |t| {
                    let xb = t[0].broadcast_add(&t[2].reshape((rows, cin, 1, 1)).unwrap()).unwrap();
                    let xp = xb.pad_with_zeros(2, pad.top, pad.bottom).unwrap();
                    let xp = xp.pad_with_zeros(3, pad.left, pad.right).unwrap();
                    xp.conv2d(&t[1], 0, stride, 1, 1).unwrap()
                });
                assert!(rel_err(&y, &yr) < 1e-4, "{what}: forward {:e}", rel_err(&y, &yr));
                for (i, name) in ["input", "weight", "bias"].iter().enumerate() {
                    let e = rel_err(&g[i], &gr[i]);
                    assert!(e < 1e-4, "{what}: {name} gradient {e:e}");
                }
                assert_eq!(g[2].dims(), &b_shape[..]);
            }
        }
    }
}

#[test]
fn biased_conv_skips_what_is_constant() {
    let mut rng = Rng::new(5);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 16, 6, 6])).unwrap();
    let (w, bias) = (randn(&mut rng, &[16, 16, 3, 3]), randn(&mut rng, &[2, 16]));
    let y = conv2d_biased_with(x.as_tensor(), &w, &bias, 1, ConvPad::uniform(1), ConvAlgo::Auto).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(x.as_tensor()).is_some());
    assert!(g.get(&w).is_none() && g.get(&bias).is_none());
    // constant input, variable bias: the bias gradient (which needs the input gradient internally) only
    let xc = randn(&mut rng, &[2, 16, 6, 6]);
    let bv = Var::from_tensor(&bias).unwrap();
    let y = conv2d_biased_with(&xc, &w, bv.as_tensor(), 1, ConvPad::uniform(1), ConvAlgo::Auto).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(bv.as_tensor()).is_some() && g.get(&xc).is_none());
}

#[test]
fn conv_block_with_activation_matches_candle() {
    use ebm_kernels::conv::conv2d_block;
    let mut rng = Rng::new(6);
    // (batch, cin, h, cout, k, stride): direct, Winograd F(4,3), F(4,2), im2col (stride 3)
    let cases =
        [(2, 1, 12, 16, 3, 1), (3, 3, 9, 8, 3, 1), (2, 16, 10, 24, 3, 1), (2, 16, 14, 16, 4, 2), (1, 5, 9, 7, 3, 3)];
    for (b, cin, h, cout, k, stride) in cases {
        let pad = same(h, k, stride);
        let ho = h.div_ceil(stride);
        let x = randn(&mut rng, &[b, cin, h, h]);
        let w = randn(&mut rng, &[cout, cin, k, k]);
        let bias = randn(&mut rng, &[b, cin]);
        let r = randn(&mut rng, &[b, cout, ho, ho]);
        for slope in [0.2, 0.0] {
            for with_bias in [false, true] {
                for algo in [ConvAlgo::Im2col, ConvAlgo::Auto] {
                    let what = format!("{:?} slope {slope} bias {with_bias} {algo:?}", (b, cin, h, cout, k, stride));
                    let inputs =
                        if with_bias { vec![x.clone(), w.clone(), bias.clone()] } else { vec![x.clone(), w.clone()] };
                    let (y, g) = grads(&inputs, &r, |t| {
                        conv2d_block(&t[0], &t[1], t.get(2), stride, pad, Some(slope), algo).unwrap()
                    });
                    let ref_inputs: Vec<Tensor> = inputs.iter().map(f64_).collect();
                    let (yr, gr) = grads(&ref_inputs, &r, |t| {
                        let xb = match t.get(2) {
                            Some(bb) => t[0].broadcast_add(&bb.reshape((b, cin, 1, 1)).unwrap()).unwrap(),
                            None => t[0].clone(),
                        };
                        let xp = xb.pad_with_zeros(2, pad.top, pad.bottom).unwrap();
                        let xp = xp.pad_with_zeros(3, pad.left, pad.right).unwrap();
                        let pre = xp.conv2d(&t[1], 0, stride, 1, 1).unwrap();
                        pre.maximum(&(&pre * slope).unwrap()).unwrap()
                    });
                    assert!(rel_err(&y, &yr) < 1e-4, "{what}: forward {:e}", rel_err(&y, &yr));
                    for (i, (ours, theirs)) in g.iter().zip(&gr).enumerate() {
                        let e = rel_err(ours, theirs);
                        assert!(e < 1e-4, "{what}: gradient {i} {e:e}");
                    }
                }
            }
        }
    }
}

#[test]
fn residual_tail_matches_add_pool_leaky() {
    use ebm_kernels::conv::residual_tail;
    let mut rng = Rng::new(7);
    for (b, c, h, w) in [(2, 3, 8, 8), (1, 5, 7, 9), (3, 64, 32, 32), (2, 2, 1, 3)] {
        let a = randn(&mut rng, &[b, c, h, w]);
        let s = randn(&mut rng, &[b, c, h, w]);
        for pool in [false, true] {
            if pool && (h < 2 || w < 2) {
                continue;
            }
            let (ho, wo) = if pool { (h / 2, w / 2) } else { (h, w) };
            let r = randn(&mut rng, &[b, c, ho, wo]);
            for leaky in [Some(0.2), Some(0.0), None] {
                for dt in [DType::F32, DType::F64] {
                    let what = format!("{:?} pool {pool} leaky {leaky:?} {dt:?}", (b, c, h, w));
                    let ins = [a.to_dtype(dt).unwrap(), s.to_dtype(dt).unwrap()];
                    let (y, g) = grads(&ins, &r, |t| residual_tail(&t[0], &t[1], pool, leaky).unwrap());
                    let (yr, gr) = grads(&[f64_(&a), f64_(&s)], &r, |t| {
                        let z = (&t[0] + &t[1]).unwrap();
                        let z = if pool {
                            z.narrow(2, 0, h / 2 * 2).unwrap().narrow(3, 0, w / 2 * 2).unwrap().avg_pool2d(2).unwrap()
                        } else {
                            z
                        };
                        match leaky {
                            Some(sl) => z.maximum(&(&z * sl).unwrap()).unwrap(),
                            None => z,
                        }
                    });
                    let tol = if dt == DType::F32 { 1e-5 } else { 1e-12 };
                    assert!(rel_err(&y, &yr) < tol, "{what}: forward");
                    assert!(rel_err(&g[0], &gr[0]) < tol, "{what}: gradient of a");
                    assert!(rel_err(&g[1], &gr[1]) < tol, "{what}: gradient of b");
                }
            }
        }
    }
}
