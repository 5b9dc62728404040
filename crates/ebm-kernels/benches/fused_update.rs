//! The fused Langevin update (drawing its own noise) against what a user would otherwise write with candle:
//! noise from `Tensor::randn`, then the formula as tensor operations. Run with
//! `RAYON_NUM_THREADS=2 cargo bench -p ebm-kernels --bench fused_update`.

use candle_core::{Device, Tensor};
use ebm_kernels::{langevin_update_, Clip, LangevinUpdate, NoiseOrder, Rng};
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

fn main() {
    let threads = rayon::current_num_threads();
    println!("| elements | fused (ms) | candle randn + tensor ops (ms) | speed-up |");
    println!("|---|---|---|---|");
    for n in [1usize << 20, 1 << 24] {
        let mut rng = Rng::new(1);
        let x = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), (n / 1024, 1024), &Device::Cpu).unwrap();
        let g = Tensor::from_vec(rng.normal_vec(n, 0.0, 0.02), (n / 1024, 1024), &Device::Cpu).unwrap();
        let mut p = LangevinUpdate {
            step_size: 10.0,
            noise_std: 0.005,
            clip: Clip::Elementwise(0.01),
            clamp: Some((0.0, 1.0)),
            order: NoiseOrder::Textbook,
            seed: 3,
            step: 0,
        };
        let reps = if n > 1 << 22 { 9 } else { 21 };
        let fused = median_ms(reps, || {
            p.step += 1;
            langevin_update_(&x, Some(&g), None, &p).unwrap();
        });
        let plain = median_ms(reps, || {
            let noise = Tensor::randn(0f32, 1.0, x.shape(), &Device::Cpu).unwrap();
            let y = ((&x - (g.clamp(-0.01f32, 0.01f32).unwrap() * 10.0).unwrap()).unwrap() + (noise * 0.005).unwrap())
                .unwrap()
                .clamp(0f32, 1f32)
                .unwrap();
            std::hint::black_box(y);
        });
        println!("| {n} | {fused:.2} | {plain:.2} | {:.1}x |", plain / fused);
    }
    println!("(medians; {threads} rayon threads)");
}
