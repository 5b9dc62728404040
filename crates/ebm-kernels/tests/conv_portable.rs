//! The portable (non-SIMD) code of every convolution path, forced on this process with
//! `conv_gemm::force_portable_kernels`, against candle's reference ops in f64: what runs on CPUs without AVX2.

use candle_core::{DType, Device, Tensor, Var};
use ebm_kernels::conv::ConvGeom;
use ebm_kernels::conv::{force_portable_kernels, simd_available};
use ebm_kernels::{conv2d_with, ConvAlgo, ConvPad, Rng};

fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), shape, &Device::Cpu).unwrap()
}

fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    let a = ours.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = reference.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f64, f64::max);
    diff / b.iter().map(|y| y.abs()).fold(0f64, f64::max).max(f64::MIN_POSITIVE)
}

#[test]
fn portable_kernels_match_candle() {
    force_portable_kernels();
    assert!(!simd_available());
    let mut rng = Rng::new(9);
    let same = |h: usize, k: usize, s: usize| {
        let t = ((h.div_ceil(s) - 1) * s + k).saturating_sub(h);
        ConvPad { top: t / 2, bottom: t - t / 2, left: t / 2, right: t - t / 2 }
    };
    // (batch, cin, h, w, cout, k, stride, pad): direct, Winograd F(4,3), F(4,2), im2col
    let cases = [
        (2, 3, 9, 11, 20, 3, 1, same(9, 3, 1)),
        (2, 20, 9, 7, 17, 3, 1, ConvPad { top: 2, bottom: 0, left: 1, right: 1 }),
        (2, 16, 14, 14, 24, 4, 2, same(14, 4, 2)),
        (3, 5, 10, 10, 7, 5, 3, ConvPad { top: 2, bottom: 1, left: 0, right: 3 }),
    ];
    for (b, cin, h, w, cout, k, stride, p) in cases {
        let g = ConvGeom { batch: b, cin, h, w, cout, kh: k, kw: k, stride, pad: p };
        let x = randn(&mut rng, &[b, cin, h, w]);
        let wt = randn(&mut rng, &[cout, cin, k, k]);
        let r = randn(&mut rng, &[b, cout, g.ho(), g.wo()]);
        let reference = |x: &Tensor, w: &Tensor| {
            let xp = x.pad_with_zeros(2, p.top, p.bottom).unwrap().pad_with_zeros(3, p.left, p.right).unwrap();
            xp.conv2d(w, 0, stride, 1, 1).unwrap()
        };
        let (xv, wv) = (
            Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap(),
            Var::from_tensor(&wt.to_dtype(DType::F64).unwrap()).unwrap(),
        );
        let want = reference(xv.as_tensor(), wv.as_tensor());
        let gr = (&want * r.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        for algo in [ConvAlgo::Im2col, ConvAlgo::Auto] {
            let (xo, wo) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&wt).unwrap());
            let y = conv2d_with(xo.as_tensor(), wo.as_tensor(), stride, p, algo).unwrap();
            let go = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let what = format!("{g:?} {algo:?}");
            assert!(rel_err(&y, &want) < 1e-4, "{what}: forward");
            let ex = rel_err(go.get(xo.as_tensor()).unwrap(), gr.get(xv.as_tensor()).unwrap());
            assert!(ex < 1e-4, "{what}: input gradient {ex:e}");
            let ew = rel_err(go.get(wo.as_tensor()).unwrap(), gr.get(wv.as_tensor()).unwrap());
            assert!(ew < 1e-4, "{what}: weight gradient {ew:e}");
        }
    }
}
