//! Measured ceilings of this CPU, to put convolution GFLOP/s in proportion: the FMA throughput of independent
//! register accumulators (the arithmetic peak) and the throughput of the packed GEMM on a large square product.

use super::gemm::{sgemm, simd_available};
use std::time::Instant;

/// f32 GFLOP/s (2 per multiply-add) of `threads` threads each running 12 independent 8-wide FMA chains (AVX2)
/// for about `seconds`; the scalar fallback measures 8 independent scalar chains.
pub fn fma_peak_gflops(threads: usize, seconds: f64) -> f64 {
    let threads = threads.max(1);
    // calibrate the iteration count on one thread
    let mut iters = 1_000_000usize;
    loop {
        let t = Instant::now();
        std::hint::black_box(fma_loop(iters));
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.05 {
            iters = ((iters as f64) * seconds / dt).max(1.0) as usize;
            break;
        }
        iters *= 4;
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || std::hint::black_box(fma_loop(iters)))).collect();
        for h in hs {
            let _ = h.join();
        }
    });
    let dt = t.elapsed().as_secs_f64();
    (threads * iters) as f64 * flops_per_iter() / dt / 1e9
}

fn flops_per_iter() -> f64 {
    if simd_available() {
        12.0 * 8.0 * 2.0
    } else {
        8.0 * 2.0
    }
}

fn fma_loop(iters: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { fma_loop_avx(iters) };
    }
    let mut a = [1.0f32; 8];
    for _ in 0..iters {
        for v in a.iter_mut() {
            *v = v.mul_add(0.999_999, 1e-7);
        }
    }
    a.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let c = _mm256_set1_ps(1e-7);
    let mut a = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in a.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, c);
        }
    }
    let mut s = _mm256_setzero_ps();
    for v in a {
        s = _mm256_add_ps(s, v);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}

/// GFLOP/s of [`sgemm`] on an `n x n x n` product per thread, `threads` threads at once (each its own
/// product): the ceiling of the convolutions' matrix products. Best of `reps`.
pub fn gemm_gflops(threads: usize, n: usize, reps: usize) -> f64 {
    let threads = threads.max(1);
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let mut best = f64::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (a, b) = (&a, &b);
                s.spawn(move || {
                    let mut c = vec![0f32; n * n];
                    sgemm(n, n, n, a, n, 1, b, n, 1, &mut c, n, 1, false);
                    std::hint::black_box(c);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    (threads * 2 * n * n * n) as f64 / best / 1e9
}
