//! Data loading is not the bottleneck: turning CIFAR-10-format records into a training batch (shuffled indices,
//! dequantised tensor, one-hot labels) is at least 500 times faster (the requirement is 20x; see the bound) than
//! one Langevin step of the paper's ResNet32 (128 filters, 10 classes) on the same batch. The full measurement, with file loading and the paper's batch of
//! 128, is `cargo run --release -p ebm-cd --example data_throughput` (docs/BENCHMARKS.md).

use candle_core::Device;
use ebm_data::cifar::{self, CifarFormat};
use ebm_data::Batches;
use ebm_kernels::Rng;
use ebm_models::{EnergyNet, ModelConfig, ResNet32Config};
use ebm_sampler::one_hot;
use ebm_sampler::Langevin;
use std::time::Instant;

#[test]
fn batching_cifar10_is_at_least_500x_faster_than_a_langevin_step_of_resnet32() {
    ebm_kernels::runtime::default_thread_counts();
    let b = 32;
    let mut rng = Rng::new(1);
    let mut bytes = vec![0u8; 4096 * 3073];
    for rec in bytes.chunks_exact_mut(3073) {
        rec[0] = (rng.next_u64() % 10) as u8;
        for p in rec[1..].iter_mut() {
            *p = rng.next_u64() as u8;
        }
    }
    let set = cifar::parse(&bytes, "synthetic", "c10", CifarFormat::Cifar10).unwrap();
    let mut batches = Batches::new(set.len(), b, true, 7).unwrap();
    let n = 100;
    let t = Instant::now();
    let mut last = None;
    for _ in 0..n {
        let idx = batches.next_batch();
        let (x, y) = set.batch(&idx, Some(&mut rng)).unwrap();
        last = Some((x, one_hot(&y, 10).unwrap()));
    }
    let per_batch = t.elapsed().as_secs_f64() / n as f64;
    let (x, c) = last.unwrap();

    let cfg = ResNet32Config { filters: 128, classes: 10, ..Default::default() };
    let mut model = EnergyNet::new(ModelConfig::ResNet32(cfg), &mut Rng::new(3), &Device::Cpu).unwrap();
    model.refresh().unwrap();
    model.set_frozen(true);
    let sampler = Langevin::igebm(10.0, 0.01, 1);
    sampler.run(&model, &x, Some(&c), None, 0).unwrap(); // warm-up
    let t = Instant::now();
    sampler.run(&model, &x, Some(&c), None, 1).unwrap();
    let step = t.elapsed().as_secs_f64();
    println!(
        "batch of {b}: batching {:.3} ms, one Langevin step {:.3} s, ratio {:.0}",
        per_batch * 1e3,
        step,
        step / per_batch
    );
    // measured here about 2300 (batching 0.68 ms, step 1.5 s); the bound leaves 4x for a slower or busier machine
    // and fails when batching gets about 5x slower than it is (or the step that much faster without batching
    // keeping up): the requirement itself is 20x
    assert!(step / per_batch >= 500.0, "batching {per_batch} s vs Langevin step {step} s: ratio {}", step / per_batch);
}
