//! The fast convolutions against candle's reference ops (computed in f64) on random inputs of many shapes: odd
//! sizes, channel counts that are not multiples of the SIMD width, stride 2 and 3, TensorFlow SAME (asymmetric)
//! padding, batch 1; forward, input gradient and weight gradient, for both algorithms.
//!
//! Error measure: `max |ours - reference| / max |reference|`.

use candle_core::{DType, Device, Tensor, Var};
use ebm_kernels::conv::{conv2d_input_grad, conv2d_weight_grad, ConvGeom};
use ebm_kernels::{conv2d_with, ConvAlgo, ConvPad, Rng};

const IM2COL_TOL: f64 = 2e-5;
const WINOGRAD_TOL: f64 = 1e-4;

fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), shape, &Device::Cpu).unwrap()
}

/// Zero padding then candle's conv2d, in f64.
fn reference(x: &Tensor, w: &Tensor, stride: usize, p: ConvPad) -> Tensor {
    let x = x.to_dtype(DType::F64).unwrap();
    let w = w.to_dtype(DType::F64).unwrap();
    let xp = x.pad_with_zeros(2, p.top, p.bottom).unwrap().pad_with_zeros(3, p.left, p.right).unwrap();
    xp.conv2d(&w, 0, stride, 1, 1).unwrap()
}

fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(ours.dims(), reference.dims());
    let a = ours.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = reference.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f64, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f64, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

/// TensorFlow SAME padding (odd pixel bottom/right).
fn same(h: usize, w: usize, k: usize, stride: usize) -> ConvPad {
    let along = |n: usize| (((n.div_ceil(stride)) - 1) * stride + k).saturating_sub(n);
    let (ph, pw) = (along(h), along(w));
    ConvPad { top: ph / 2, bottom: ph - ph / 2, left: pw / 2, right: pw - pw / 2 }
}

fn pad(t: usize, b: usize, l: usize, r: usize) -> ConvPad {
    ConvPad { top: t, bottom: b, left: l, right: r }
}

/// `(batch, cin, h, w, cout, k, stride, pad)`.
type Case = (usize, usize, usize, usize, usize, usize, usize, ConvPad);

fn cases() -> Vec<Case> {
    vec![
        (2, 3, 9, 11, 5, 3, 1, ConvPad::uniform(1)),
        (1, 16, 7, 5, 24, 3, 1, ConvPad::uniform(1)),
        (3, 17, 13, 10, 16, 3, 1, ConvPad::uniform(1)),
        (2, 32, 8, 8, 20, 3, 1, pad(0, 2, 1, 0)),
        (2, 20, 6, 9, 33, 3, 1, pad(2, 0, 0, 2)),
        (1, 64, 4, 4, 64, 3, 1, ConvPad::uniform(1)),
        (1, 128, 8, 8, 128, 3, 1, ConvPad::uniform(1)),
        (2, 16, 5, 5, 16, 3, 1, ConvPad::uniform(0)),
        (2, 1, 28, 28, 8, 3, 1, same(28, 28, 3, 1)),
        (3, 8, 28, 28, 12, 4, 2, same(28, 28, 4, 2)),
        (2, 12, 7, 7, 10, 4, 2, same(7, 7, 4, 2)),
        (1, 40, 14, 14, 24, 4, 2, same(14, 14, 4, 2)),
        (4, 24, 12, 12, 48, 3, 2, same(12, 12, 3, 2)),
        (1, 5, 10, 10, 7, 5, 3, pad(2, 1, 0, 3)),
        (2, 16, 16, 16, 16, 1, 1, ConvPad::uniform(0)),
        (2, 4, 5, 6, 3, 2, 1, pad(0, 1, 0, 1)),
        (5, 3, 32, 32, 16, 3, 1, ConvPad::uniform(1)),
        // 4x4 stride 2 with multiples of 8 channels: Winograd F(4,2) on the space-to-depth input
        (2, 16, 28, 28, 16, 4, 2, same(28, 28, 4, 2)),
        (3, 8, 14, 14, 24, 4, 2, same(14, 14, 4, 2)),
        (2, 32, 7, 7, 40, 4, 2, same(7, 7, 4, 2)),
        (1, 16, 9, 13, 16, 4, 2, pad(0, 0, 3, 1)),
        (2, 8, 10, 10, 16, 4, 2, pad(2, 3, 0, 1)),
        (1, 24, 6, 8, 17, 4, 2, ConvPad::uniform(0)),
        // few channels: direct convolution (forward depth <= 32, input gradient with <= 4 input channels)
        (3, 1, 28, 28, 64, 3, 1, same(28, 28, 3, 1)),
        (2, 2, 7, 9, 3, 3, 1, pad(1, 0, 2, 0)),
        (1, 3, 5, 12, 11, 2, 1, pad(0, 1, 1, 0)),
        (2, 4, 6, 6, 40, 5, 1, pad(4, 0, 2, 2)),
    ]
}

fn tol(winograd: bool, algo: ConvAlgo) -> f64 {
    if algo != ConvAlgo::Im2col && winograd {
        WINOGRAD_TOL
    } else {
        IM2COL_TOL
    }
}

#[test]
fn forward_and_gradients_match_candle() {
    let mut rng = Rng::new(11);
    for (i, &(b, cin, h, w, cout, k, stride, p)) in cases().iter().enumerate() {
        let g = ConvGeom { batch: b, cin, h, w, cout, kh: k, kw: k, stride, pad: p };
        let x = randn(&mut rng, &[b, cin, h, w]);
        let wt = randn(&mut rng, &[cout, cin, k, k]);
        let want = reference(&x, &wt, stride, p);
        let r = randn(&mut rng, want.dims());
        // reference gradients of sum(y * r)
        let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
        let wv = Var::from_tensor(&wt.to_dtype(DType::F64).unwrap()).unwrap();
        let yr = reference(xv.as_tensor(), wv.as_tensor(), stride, p);
        let gr = (yr * r.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        let (gx_ref, gw_ref) = (gr.get(xv.as_tensor()).unwrap().clone(), gr.get(wv.as_tensor()).unwrap().clone());
        for algo in [ConvAlgo::Im2col, ConvAlgo::Auto] {
            let t = tol(g.winograd_forward(), algo);
            let tx = tol(g.winograd_input_grad(), algo);
            let what = format!("case {i} {g:?} {algo:?}");
            let y = conv2d_with(&x, &wt, stride, p, algo).unwrap();
            let e = rel_err(&y, &want);
            assert!(e < t, "{what}: forward error {e:e}");
            // through autograd
            let xv = Var::from_tensor(&x).unwrap();
            let wv = Var::from_tensor(&wt).unwrap();
            let y = conv2d_with(xv.as_tensor(), wv.as_tensor(), stride, p, algo).unwrap();
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let e = rel_err(grads.get(xv.as_tensor()).unwrap(), &gx_ref);
            assert!(e < tx, "{what}: input gradient error {e:e}");
            let e = rel_err(grads.get(wv.as_tensor()).unwrap(), &gw_ref);
            assert!(e < IM2COL_TOL, "{what}: weight gradient error {e:e}");
            // the gradient ops called directly
            let gx = conv2d_input_grad(&r, &wt, stride, p, (h, w), algo).unwrap();
            assert!(rel_err(&gx, &gx_ref) < tx, "{what}: direct input gradient");
            let gw = conv2d_weight_grad(&x, &r, stride, p, (k, k), algo).unwrap();
            assert!(rel_err(&gw, &gw_ref) < IM2COL_TOL, "{what}: direct weight gradient");
        }
    }
}

#[test]
fn constant_weights_get_no_gradient_and_variables_do() {
    let mut rng = Rng::new(5);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 16, 8, 8])).unwrap();
    let w = randn(&mut rng, &[16, 16, 3, 3]);
    let y = ebm_kernels::conv2d(x.as_tensor(), &w, 1, ConvPad::uniform(1)).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some());
    assert!(grads.get(&w).is_none());
    // a constant input with a variable weight: only the weight gradient
    let xc = randn(&mut rng, &[2, 16, 8, 8]);
    let wv = Var::from_tensor(&w).unwrap();
    let y = ebm_kernels::conv2d(&xc, wv.as_tensor(), 1, ConvPad::uniform(1)).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(wv.as_tensor()).is_some());
    assert!(grads.get(&xc).is_none());
}

/// `<conv(x, w), y> = <x, input_grad(y, w)> = <w, weight_grad(x, y)>`: the three ops are adjoint to each other,
/// which is also what their own backward passes (double backward) rely on.
#[test]
fn the_three_ops_are_adjoint() {
    let mut rng = Rng::new(8);
    for &(b, cin, h, w, cout, k, stride, p) in &cases() {
        let x = randn(&mut rng, &[b, cin, h, w]);
        let wt = randn(&mut rng, &[cout, cin, k, k]);
        for algo in [ConvAlgo::Im2col, ConvAlgo::Winograd] {
            let y = conv2d_with(&x, &wt, stride, p, algo).unwrap();
            let r = randn(&mut rng, y.dims());
            let dot = |a: &Tensor, b: &Tensor| {
                let a = a.to_dtype(DType::F64).unwrap();
                (a * b.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
            };
            let lhs = dot(&y, &r);
            let gx = conv2d_input_grad(&r, &wt, stride, p, (h, w), algo).unwrap();
            let gw = conv2d_weight_grad(&x, &r, stride, p, (k, k), algo).unwrap();
            let scale = lhs.abs().max((y.dims().iter().product::<usize>() as f64).sqrt());
            assert!((lhs - dot(&x, &gx)).abs() < 1e-4 * scale, "input adjoint {lhs} vs {}", dot(&x, &gx));
            assert!((lhs - dot(&wt, &gw)).abs() < 1e-4 * scale, "weight adjoint {lhs} vs {}", dot(&wt, &gw));
        }
    }
}

#[test]
fn second_order_gradient_through_the_input_gradient() {
    // d/dw of <input_grad(r, w), s> = weight_grad(s, r): check against candle on the same bilinear form.
    let mut rng = Rng::new(21);
    let (b, cin, h, w, cout) = (2, 16, 6, 7, 16);
    let p = ConvPad::uniform(1);
    let r = randn(&mut rng, &[b, cout, h, w]);
    let s = randn(&mut rng, &[b, cin, h, w]);
    let wt = randn(&mut rng, &[cout, cin, 3, 3]);
    let wv = Var::from_tensor(&wt).unwrap();
    let gx = conv2d_input_grad(&r, wv.as_tensor(), 1, p, (h, w), ConvAlgo::Auto).unwrap();
    let grads = (gx * &s).unwrap().sum_all().unwrap().backward().unwrap();
    let ours = grads.get(wv.as_tensor()).unwrap();
    // reference: <conv^T(r, w), s> = <r, conv(s, w)>, so the gradient is the weight gradient of conv(s, w) . r
    let wv64 = Var::from_tensor(&wt.to_dtype(DType::F64).unwrap()).unwrap();
    let y = reference(&s, wv64.as_tensor(), 1, p);
    let gr = (y * r.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    let e = rel_err(ours, gr.get(wv64.as_tensor()).unwrap());
    assert!(e < IM2COL_TOL, "second-order error {e:e}");
}

#[test]
fn bad_shapes_are_errors() {
    let mut rng = Rng::new(1);
    let x = randn(&mut rng, &[1, 3, 4, 4]);
    let w = randn(&mut rng, &[2, 4, 3, 3]);
    assert!(ebm_kernels::conv2d(&x, &w, 1, ConvPad::uniform(1)).is_err());
    let w = randn(&mut rng, &[2, 3, 7, 7]);
    assert!(ebm_kernels::conv2d(&x, &w, 1, ConvPad::uniform(1)).is_err());
    let x64 = x.to_dtype(DType::F64).unwrap();
    let w = randn(&mut rng, &[2, 3, 3, 3]);
    assert!(ebm_kernels::conv2d(&x64, &w, 1, ConvPad::uniform(1)).is_err());
}

/// A resumed run repeats its gradients bit for bit only if the weight gradient's sum over the batch does not
/// depend on the thread count or on how the work was split: the same bits with 1, 2 and 3 threads, and run after
/// run (a stride-2 4x4 layer of DspritesNet's, batch 32, whose images fall into many groups).
#[test]
fn weight_gradient_bits_do_not_depend_on_threads() {
    let mut rng = Rng::new(21);
    let (b, cin, h, w, cout, k, stride) = (32, 16, 16, 16, 32, 4, 2);
    let p = same(h, w, k, stride);
    let x = randn(&mut rng, &[b, cin, h, w]);
    let dy = randn(&mut rng, &[b, cout, h / stride, w / stride]);
    let bits = |threads: usize| -> Vec<u32> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| conv2d_weight_grad(&x, &dy, stride, p, (k, k), ConvAlgo::Im2col).unwrap())
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let one = bits(1);
    for threads in [2, 3, 2, 3] {
        assert!(bits(threads) == one, "the weight gradient with {threads} threads differs from 1 thread's");
    }
}
