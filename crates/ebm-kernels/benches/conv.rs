//! Per-layer timings of the fast convolutions against candle's, for the conv shapes of the benchmark models
//! (resnet32 with 64 filters at batch 32, MnistNet at batch 64): forward, input gradient, weight gradient.
//!
//! `cargo bench -p ebm-kernels --bench conv` (set `RAYON_NUM_THREADS`; `-- --quick` for fewer repetitions).

use candle_core::{Device, Tensor};
use ebm_kernels::conv::{conv2d_input_grad, conv2d_weight_grad, ConvGeom};
use ebm_kernels::{conv2d_with, ConvAlgo, ConvPad, Rng};
use std::time::Instant;

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ts[ts.len() / 2]
}

fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), shape, &Device::Cpu).unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 3 } else { 7 };
    let same = |h: usize, k: usize, s: usize| {
        let t = ((h.div_ceil(s) - 1) * s + k).saturating_sub(h);
        ConvPad { top: t / 2, bottom: t - t / 2, left: t / 2, right: t - t / 2 }
    };
    // (name, batch, cin, h, cout, k, stride)
    let layers = [
        ("resnet c1_pre", 32, 3, 32, 64, 3, 1),
        ("resnet 64@32", 32, 64, 32, 64, 3, 1),
        ("resnet 64@16", 32, 64, 16, 64, 3, 1),
        ("resnet 64->128@16", 32, 64, 16, 128, 3, 1),
        ("resnet 128@16", 32, 128, 16, 128, 3, 1),
        ("resnet 128@8", 32, 128, 8, 128, 3, 1),
        ("resnet 128@4", 32, 128, 4, 128, 3, 1),
        ("mnist c1_pre", 64, 1, 28, 64, 3, 1),
        ("mnist c1", 64, 64, 28, 64, 4, 2),
        ("mnist c2", 64, 64, 14, 128, 4, 2),
        ("mnist c3", 64, 128, 7, 256, 4, 2),
    ];
    let mut rng = Rng::new(0);
    println!(
        "{:<20} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | ms, GFLOP/s of the direct conv's 2*MACs",
        "layer", "MFLOP", "fwd", "dx", "dw", "candle", "c-dx", "c-dw"
    );
    for (name, b, cin, h, cout, k, s) in layers {
        let pad = same(h, k, s);
        let g = ConvGeom { batch: b, cin, h, w: h, cout, kh: k, kw: k, stride: s, pad };
        let x = randn(&mut rng, &[b, cin, h, h]);
        let w = randn(&mut rng, &[cout, cin, k, k]);
        let dy = randn(&mut rng, &[b, cout, g.ho(), g.wo()]);
        let fwd = median_ms(reps, || {
            conv2d_with(&x, &w, s, pad, ConvAlgo::Auto).unwrap();
        });
        let dx = median_ms(reps, || {
            conv2d_input_grad(&dy, &w, s, pad, (h, h), ConvAlgo::Auto).unwrap();
        });
        let dw = median_ms(reps, || {
            conv2d_weight_grad(&x, &dy, s, pad, (k, k), ConvAlgo::Auto).unwrap();
        });
        let xp = x.pad_with_zeros(2, pad.top, pad.bottom).unwrap().pad_with_zeros(3, pad.left, pad.right).unwrap();
        let cf = median_ms(reps.min(3), || {
            xp.conv2d(&w, 0, s, 1, 1).unwrap();
        });
        let cdx = median_ms(reps.min(3), || {
            dy.conv_transpose2d(&w, 0, 0, s, 1).unwrap();
        });
        let cdw = median_ms(reps.min(3), || {
            xp.transpose(0, 1).unwrap().conv2d(&dy.transpose(0, 1).unwrap(), 0, 1, s, 1).unwrap();
        });
        let gf = 2.0 * g.macs() as f64 / 1e6;
        let r = |ms: f64| format!("{ms:7.2}/{:<5.0}", gf / ms);
        println!("{name:<20} {gf:>8.0} | {} {} {} | {} {} {}", r(fwd), r(dx), r(dw), r(cf), r(cdx), r(cdw));
    }
}
