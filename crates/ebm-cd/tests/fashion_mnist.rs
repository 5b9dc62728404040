//! End to end on real data: a few training iterations on Fashion-MNIST (what `.ci/run` installs with
//! `apt-get install -y dataset-fashion-mnist` and `cargo xtask fetch-data fashion-mnist --from
//! /usr/share/datasets/fashion-mnist`) with a tiny CondMnistNet and the fashion-mnist-cpu recipe.
//!
//! Checks: the data loads through the preset's `data` section (60000 / 10000 images); every iteration's losses and
//! energies are finite; training moves the energy gap the right way (held-out images end up with lower energy
//! than uniform noise under the same labels, and the gap falls by a clear margin from the untrained model's); and
//! a saved checkpoint reloads to the same energies, bit for bit.
//!
//! Without the data the test says SKIPPED on the terminal with how to get it and passes, except under CI
//! (`CI=true`), where it fails.

use candle_core::{Device, Tensor};
use ebm_cd::config::DataConfig;
use ebm_cd::state::TrainState;
use ebm_cd::{image, presets};
use ebm_kernels::Rng;
use ebm_models::{CondMnistNetConfig, EnergyNet, ModelConfig};
use ebm_sampler::one_hot;
use ebm_sampler::Energy;
use std::path::{Path, PathBuf};

fn data_dir() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cache/fashion-mnist");
    let debian = PathBuf::from("/usr/share/datasets/fashion-mnist");
    for d in [&cache, &debian] {
        if d.join("train-images-idx3-ubyte.gz").is_file() {
            return Some(d.clone());
        }
    }
    let how = "run `apt-get install -y dataset-fashion-mnist` then `cargo xtask fetch-data fashion-mnist --from \
               /usr/share/datasets/fashion-mnist`";
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but Fashion-MNIST is missing from {}: {how}", cache.display());
    }
    use std::io::Write; // past the harness's output capture, so that the skip is seen
    let _ = writeln!(std::io::stderr(), "SKIPPED: Fashion-MNIST is not on this machine; {how}");
    None
}

/// Energies of `x` under labels `c`, from the model's current weights and stored spectral-norm state.
fn energies(model: &mut EnergyNet, x: &Tensor, c: &Tensor) -> Vec<f32> {
    model.normalise(false).unwrap();
    model.energy(x, Some(c)).unwrap().to_vec1::<f32>().unwrap()
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&e| e as f64).sum::<f64>() / v.len() as f64
}

#[test]
fn a_short_run_on_fashion_mnist_learns_and_its_checkpoint_reloads() {
    let Some(dir) = data_dir() else { return };
    ebm_kernels::runtime::default_thread_counts(); // as the ebm-train binary does
    let mut cfg = presets::load("fashion-mnist-cpu").unwrap();
    let DataConfig::Images { dir: data_dir, .. } = &mut cfg.data else { panic!("an image preset") };
    *data_dir = Some(dir);
    cfg.model = ModelConfig::CondMnistNet(CondMnistNetConfig { filters: 8, ..Default::default() });
    cfg.train.batch_size = 32;
    cfg.train.iterations = 40;
    cfg.sampler.steps = 10;
    cfg.replay.capacity = 1000;
    let data = image::load_data(&cfg).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60000, 10000));
    let dev = Device::Cpu;
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();

    // A fixed probe: 100 held-out images (every class) and 100 uniform-noise images under the same labels.
    let idx: Vec<usize> = (0..100).map(|i| i * 97).collect();
    let (x, y) = data.test.batch(&idx, None).unwrap();
    let c = one_hot(&y, 10).unwrap();
    let noise = Tensor::from_vec(Rng::new(9).uniform_vec(100 * 784, 0.0, 1.0), (100, 1, 28, 28), &dev).unwrap();
    let gap = |m: &mut EnergyNet| mean(&energies(m, &x, &c)) - mean(&energies(m, &noise, &c));
    let gap_before = gap(&mut st.model);

    let mut gaps = Vec::new();
    for _ in 0..cfg.train.iterations {
        let s = image::iteration(&mut st, &data, &dev).unwrap();
        assert!(
            s.loss.is_finite() && s.e_pos.is_finite() && s.e_neg.is_finite() && s.grad_norm.is_finite(),
            "iteration {}: {s:?}",
            st.iter
        );
        gaps.push(s.e_pos - s.e_neg);
    }
    let gap_after = gap(&mut st.model);
    println!("data-minus-noise energy gap: {gap_before:.4} before, {gap_after:.4} after; batch gaps {gaps:?}");
    // Measured (x86-64, seed 0): +1.09 before (the untrained net happens to prefer noise), -1.03 after 40
    // iterations, the batch gap E+ - E- falling from +5.7 to about -0.3 on the way.
    assert!(
        gap_after < -0.5 && gap_after < gap_before - 1.0,
        "training did not lower the energy of data below that of noise: {gap_before} -> {gap_after}"
    );

    // The checkpoint reloads to the same energies, bit for bit.
    let ck = std::env::temp_dir().join(format!("ebm-fashion-{}.safetensors", std::process::id()));
    st.save(&ck).unwrap();
    let mut back = TrainState::<u8>::load(&ck, &dev).unwrap();
    let _ = std::fs::remove_file(&ck);
    assert_eq!(back.iter, cfg.train.iterations);
    let both = Tensor::cat(&[&x, &noise], 0).unwrap();
    let cc = Tensor::cat(&[&c, &c], 0).unwrap();
    let (a, b) = (energies(&mut st.model, &both, &cc), energies(&mut back.model, &both, &cc));
    assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}
