//! A short toy run learns its density; a stopped and resumed run equals an uninterrupted one bit for bit.

use candle_core::Device;
use ebm_cd::state::TrainState;
use ebm_cd::{presets, toy};

/// 400 iterations (a sixth of the preset) on 8 Gaussians. The MMD^2 (bandwidth 0.5, 500 fresh samples after 300
/// steps) of the initial uniform noise to the data is 0.047; a model that learnt nothing stays near it. Bound: the
/// samples must be under a third of that, i.e. most of the way from noise to the data (the full preset reaches
/// the data-vs-data floor within 3x; see docs/RESULTS.md).
#[test]
fn a_short_run_moves_samples_most_of_the_way_to_the_data() {
    let mut cfg = presets::load("toy-8gaussians").unwrap();
    cfg.train.iterations = 400;
    cfg.eval.samples = 500;
    cfg.eval.steps = 300;
    let dev = Device::Cpu;
    let mut st = toy::init_state(&cfg, &dev).unwrap();
    let density = toy::density(&cfg).unwrap();
    for _ in 0..cfg.train.iterations {
        let s = toy::iteration(&mut st, density, &dev).unwrap();
        assert!(s.loss.is_finite());
    }
    let sampler = cfg.sampler.langevin(cfg.eval.steps);
    let (n, bw, range) = (cfg.eval.samples, cfg.eval.mmd_bandwidth, cfg.sampler.init_range);
    let (ev, _) = ebm_eval::end_of_run::toy(&mut st.model, &sampler, range, density, n, bw, 7, &dev).unwrap();
    println!("{ev:?}");
    assert!(ev.mmd2_model < ev.mmd2_init_noise / 3.0, "{ev:?}");
}

#[test]
fn stop_and_resume_is_bit_identical() {
    let mut cfg = presets::load("toy-moons").unwrap();
    cfg.train.batch_size = 32;
    cfg.sampler.steps = 5;
    let dev = Device::Cpu;
    let density = toy::density(&cfg).unwrap();
    let dir = std::env::temp_dir().join(format!("ebm-toy-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("checkpoint.safetensors");

    let mut straight = toy::init_state(&cfg, &dev).unwrap();
    for _ in 0..12 {
        toy::iteration(&mut straight, density, &dev).unwrap();
    }
    let mut first = toy::init_state(&cfg, &dev).unwrap();
    for _ in 0..7 {
        toy::iteration(&mut first, density, &dev).unwrap();
    }
    first.save(&ck).unwrap();
    drop(first);
    let mut resumed = TrainState::<f32>::load(&ck, &dev).unwrap();
    assert_eq!(resumed.iter, 7);
    for _ in 0..5 {
        toy::iteration(&mut resumed, density, &dev).unwrap();
    }
    assert_eq!(straight.model.params().bits().unwrap(), resumed.model.params().bits().unwrap());
    assert_eq!(straight.rng.state(), resumed.rng.state());
}
