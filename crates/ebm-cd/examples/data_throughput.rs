//! Is data loading a bottleneck? Loading and batching throughput of CIFAR-10-format data against one Langevin step
//! of the paper's ResNet32 on the same batch (the loop does 60 such steps per batch).
//!
//! ```sh
//! cargo run --release -p ebm-cd --example data_throughput            # batch 128, 128 filters (the paper's)
//! cargo run --release -p ebm-cd --example data_throughput -- --batch 32 --filters 64 --reps 5
//! ```
//!
//! Measured, each the median of `--reps` runs:
//! - loading: `ebm_data::sources::load("cifar10", ..)` of 50000 images from five binary batch files (written to a
//!   temporary folder first, random pixels and labels; the page cache holds them, as after a first epoch);
//! - batching: what the training loop does per iteration before sampling: the next shuffled indices
//!   (`Batches`), `ImageSet::batch` with uniform dequantisation into a `[B, 3, 32, 32]` tensor, and the one-hot
//!   labels;
//! - one Langevin step: `Langevin::igebm(10, 0.01, 1)` on that batch with ResNet32 (10 classes), weights refreshed
//!   and frozen as during training.
//!
//! Prints a markdown table for docs/BENCHMARKS.md.

use candle_core::Device;
use ebm_data::{cifar, sources, Batches, Split};
use ebm_kernels::Rng;
use ebm_models::{EnergyNet, ModelConfig, ResNet32Config};
use ebm_sampler::one_hot;
use ebm_sampler::Langevin;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    ebm_kernels::runtime::default_thread_counts(); // as the ebm-train binary does
    let (b, filters, reps) = (arg("--batch", 128), arg("--filters", 128), arg("--reps", 3).max(1));
    let dev = Device::Cpu;

    // Five CIFAR-10 training files of 10000 records each (plus the test file the loader does not read here).
    let dir = std::env::temp_dir().join(format!("ebm-throughput-{}", std::process::id()));
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin)?;
    let mut rng = Rng::new(1);
    for f in cifar::CIFAR10_TRAIN_FILES.iter().chain([&cifar::CIFAR10_TEST_FILE]) {
        let mut bytes = vec![0u8; 10000 * 3073];
        for rec in bytes.chunks_exact_mut(3073) {
            rec[0] = (rng.next_u64() % 10) as u8;
            for p in rec[1..].chunks_mut(8) {
                let r = rng.next_u64().to_le_bytes();
                p.copy_from_slice(&r[..p.len()]);
            }
        }
        std::fs::write(bin.join(f), bytes)?;
    }
    let mut load_s = Vec::new();
    let mut set = None;
    for _ in 0..reps {
        let t = Instant::now();
        set = Some(sources::load("cifar10", &dir, Split::Train)?);
        load_s.push(t.elapsed().as_secs_f64());
    }
    let set = set.expect("loaded");
    let load = median(load_s);
    let _ = std::fs::remove_dir_all(&dir);

    // Batching as the training loop does it.
    let mut batches = Batches::new(set.len(), b, true, 7)?;
    let n_batches = 200;
    let mut batch_s = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..n_batches {
            let idx = batches.next_batch();
            let (x, y) = set.batch(&idx, Some(&mut rng))?;
            let c = one_hot(&y, 10)?;
            last = Some((x, c));
        }
        batch_s.push(t.elapsed().as_secs_f64() / n_batches as f64);
    }
    let per_batch = median(batch_s);
    let (x, c) = last.expect("batched");

    // One Langevin step of ResNet32 on that batch.
    let cfg = ResNet32Config { filters, classes: 10, ..Default::default() };
    let mut model = EnergyNet::new(ModelConfig::ResNet32(cfg), &mut Rng::new(3), &dev)?;
    model.refresh()?;
    model.set_frozen(true);
    let sampler = Langevin::igebm(10.0, 0.01, 1);
    sampler.run(&model, &x, Some(&c), None, 0)?; // warm-up
    let mut step_s = Vec::new();
    for k in 0..reps {
        let t = Instant::now();
        sampler.run(&model, &x, Some(&c), None, k as u64 + 1)?;
        step_s.push(t.elapsed().as_secs_f64());
    }
    let step = median(step_s);

    let threads = rayon::current_num_threads();
    println!("| measurement (batch {b}, {threads} threads) | time | images/s |");
    println!("|---|---|---|");
    println!("| load 50000 CIFAR-10 images from 5 binary files | {:.3} s | {:.0} |", load, 50000.0 / load);
    println!(
        "| batch: shuffled indices, dequantised [B,3,32,32] tensor, one-hot labels | {:.3} ms | {:.0} |",
        per_batch * 1e3,
        b as f64 / per_batch
    );
    println!(
        "| one Langevin step, ResNet32 ({filters} filters, 10 classes) | {:.3} s | {:.0} |",
        step,
        b as f64 / step
    );
    println!("\nbatching is {:.0}x faster than one Langevin step (requirement: at least 20x)", step / per_batch);
    Ok(())
}
