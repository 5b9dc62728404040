//! The GPU update equals the CPU update (feature `cuda`). Without a CUDA driver the tests say so and pass, unless
//! `EBM_REQUIRE_CUDA=1` asks for a GPU (as the GPU check script does).
#![cfg(feature = "cuda")]

use ebm_kernels::cuda::CudaLangevin;
use ebm_kernels::langevin::update_slices;
use ebm_kernels::{Clip, LangevinUpdate, NoiseOrder, Rng};

fn gpu() -> Option<CudaLangevin> {
    if !CudaLangevin::available() {
        assert!(std::env::var("EBM_REQUIRE_CUDA").is_err(), "EBM_REQUIRE_CUDA is set but no CUDA device is available");
        use std::io::Write; // past the harness's output capture, so that the skip is seen
        let _ = writeln!(std::io::stderr(), "SKIPPED: no CUDA device, the GPU comparison did not run");
        return None;
    }
    Some(CudaLangevin::new(0).expect("kernels compile"))
}

fn params(order: NoiseOrder, clip: Clip, noise: f32) -> LangevinUpdate {
    LangevinUpdate { step_size: 3.0, noise_std: noise, clip, clamp: Some((0.0, 1.0)), order, seed: 77, step: 12345 }
}

fn run_both(
    k: &CudaLangevin,
    n: usize,
    sample_len: usize,
    p: &LangevinUpdate,
    with_grad: bool,
    with_mask: bool,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(n as u64);
    let x = rng.uniform_vec(n, -0.1, 1.1);
    let g = rng.normal_vec(n, 0.0, 0.05);
    let m: Vec<f32> = rng.uniform_vec(n, 0.0, 1.0).iter().map(|u| (*u > 0.3) as u8 as f32).collect();
    let mut cpu = x.clone();
    update_slices(&mut cpu, with_grad.then_some(&g[..]), with_mask.then_some(&m[..]), p, sample_len);
    let s = k.stream();
    let mut xd = s.clone_htod(&x).unwrap();
    let gd = s.clone_htod(&g).unwrap();
    let md = s.clone_htod(&m).unwrap();
    k.update(&mut xd, with_grad.then_some(&gd), with_mask.then_some(&md), p, sample_len).unwrap();
    (cpu, s.clone_dtoh(&xd).unwrap())
}

#[test]
fn gpu_equals_cpu_bit_for_bit() {
    let Some(k) = gpu() else { return };
    let n = (1 << 20) + 3; // not a multiple of 4: the last Philox block is partial
    for order in [NoiseOrder::Textbook, NoiseOrder::NoiseFirst] {
        for clip in [Clip::None, Clip::Elementwise(0.02)] {
            for (grad, mask) in [(true, false), (true, true), (false, false), (false, true)] {
                let p = params(order, clip, 0.05);
                let (cpu, gpu) = run_both(&k, n, 1, &p, grad, mask);
                let diff = cpu.iter().zip(&gpu).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(diff, 0, "{order:?} {clip:?} grad={grad} mask={mask}: {diff} of {n} elements differ");
            }
        }
    }
}

#[test]
fn gpu_matches_cpu_with_per_sample_l2_clipping() {
    let Some(k) = gpu() else { return };
    let (n, sl) = (64 * 3 * 32 * 32, 3 * 32 * 32);
    let p = params(NoiseOrder::NoiseFirst, Clip::SampleL2(0.5), 0.005);
    let (cpu, gpu) = run_both(&k, n, sl, &p, true, false);
    let worst = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-6, "max difference {worst}");
}

/// Not an assertion: the GPU's time for the 16M-element update, for docs/BENCHMARKS.md.
#[test]
fn gpu_update_timing() {
    let Some(k) = gpu() else { return };
    let n = 1 << 24;
    let s = k.stream();
    let mut x = s.clone_htod(&vec![0.5f32; n]).unwrap();
    let g = s.clone_htod(&vec![0.001f32; n]).unwrap();
    let mut p = params(NoiseOrder::NoiseFirst, Clip::Elementwise(0.01), 0.005);
    k.update(&mut x, Some(&g), None, &p, 1).unwrap();
    s.synchronize().unwrap();
    let mut ts = Vec::new();
    for _ in 0..21 {
        p.step += 1;
        let t = std::time::Instant::now();
        k.update(&mut x, Some(&g), None, &p, 1).unwrap();
        s.synchronize().unwrap();
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("GPU fused update, 16M elements: median {:.3} ms", ts[ts.len() / 2]);
}
