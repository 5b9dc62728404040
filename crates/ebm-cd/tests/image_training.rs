//! The image loop on the embedded digits with a tiny network: exact resume, divergence rollback, bad labels.

use candle_core::Device;
use ebm_cd::config::RunConfig;
use ebm_cd::image;
use ebm_cd::run_dir::{Existing, RunDir};
use ebm_cd::state::TrainState;
use ebm_data::ImageData;
use ebm_models::{DigitsNetConfig, ModelConfig};

fn tiny() -> (RunConfig, ImageData) {
    let mut cfg = ebm_cd::presets::load("digits").unwrap();
    cfg.model = ModelConfig::DigitsNet(DigitsNetConfig { filters: 4, ..Default::default() });
    cfg.train.batch_size = 16;
    cfg.train.iterations = 6;
    cfg.train.checkpoint_every = 2;
    cfg.train.figure_every = 0;
    cfg.sampler.steps = 3;
    cfg.replay.capacity = 40; // full after 3 iterations: FIFO overwriting is exercised too
    let data = image::load_data(&cfg).unwrap();
    (cfg, data)
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-img-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn resume_after_n_equals_an_uninterrupted_run_bit_for_bit() {
    let (cfg, data) = tiny();
    let dev = Device::Cpu;
    let mut straight = image::init_state(&cfg, &data, &dev).unwrap();
    for _ in 0..6 {
        image::iteration(&mut straight, &data, &dev).unwrap();
    }
    let mut first = image::init_state(&cfg, &data, &dev).unwrap();
    for _ in 0..4 {
        image::iteration(&mut first, &data, &dev).unwrap();
    }
    let d = tmpdir("resume");
    std::fs::create_dir_all(&d).unwrap();
    first.save(&d.join("checkpoint.safetensors")).unwrap();
    drop(first);
    let mut resumed = TrainState::<u8>::load(&d.join("checkpoint.safetensors"), &dev).unwrap();
    for _ in 0..2 {
        image::iteration(&mut resumed, &data, &dev).unwrap();
    }
    assert_eq!(
        straight.model.params().bits().unwrap(),
        resumed.model.params().bits().unwrap(),
        "parameters after 4 + 2 iterations differ from 6"
    );
    assert_eq!(straight.rng.state(), resumed.rng.state());
    assert_eq!(straight.data_state, resumed.data_state);
    assert_eq!(straight.opt.steps(), resumed.opt.steps());
}

#[test]
fn a_nan_rolls_back_lowers_the_rate_and_training_finishes() {
    let (cfg, data) = tiny();
    let dev = Device::Cpu;
    let d = tmpdir("nan");
    let mut run = RunDir::create(&d, "run", Some(&d.join("run")), Existing::Refuse).unwrap();
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    let mut injected = false;
    let mut hook = |s: &mut TrainState<u8>| {
        if s.iter == 3 && !injected {
            injected = true;
            // poison one weight: the next iteration's energies are NaN
            let (_, v) = s.model.params().trainable().into_iter().next().unwrap();
            v.set(&(v.as_tensor() * f64::NAN).unwrap()).unwrap();
        }
    };
    image::train(&mut st, &data, &mut run, &dev, Some(&mut hook)).unwrap();
    assert_eq!(st.iter, 6);
    assert_eq!(st.rollbacks, 1);
    let metrics = std::fs::read_to_string(run.file("metrics.jsonl")).unwrap();
    let rollback = metrics.lines().find(|l| l.contains("\"rollback\"")).expect("a rollback event is logged");
    assert!(rollback.contains("\"to\":2"), "rolled back to the checkpoint of iteration 2: {rollback}");
    assert!(st
        .model
        .params()
        .iter()
        .all(|(_, s)| { s.var.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()) }));
    assert_eq!(ebm_cd::state::base_lr(&st), cfg.train.adam.lr * 0.5);
}

#[test]
fn persistent_divergence_stops_with_a_clear_message() {
    let (mut cfg, data) = tiny();
    cfg.train.max_rollbacks = 2;
    let dev = Device::Cpu;
    let d = tmpdir("diverge");
    let mut run = RunDir::create(&d, "run", Some(&d.join("run")), Existing::Refuse).unwrap();
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    let mut hook = |s: &mut TrainState<u8>| {
        let (_, v) = s.model.params().trainable().into_iter().next().unwrap();
        v.set(&(v.as_tensor() * f64::NAN).unwrap()).unwrap();
    };
    let err = image::train(&mut st, &data, &mut run, &dev, Some(&mut hook)).unwrap_err().to_string();
    assert!(err.contains("diverged") && err.contains("after 2 rollbacks"), "{err}");
}

/// A bound below the fresh model's own energies fails at once with what to change: rolling back to iteration 0
/// would replay the same measurement whatever the learning rate.
#[test]
fn a_bound_the_fresh_model_already_exceeds_is_named_not_retried() {
    let (mut cfg, data) = tiny();
    cfg.train.divergence_bound = 1e-9;
    cfg.train.max_rollbacks = 3;
    let dev = Device::Cpu;
    let d = tmpdir("bound");
    let mut run = RunDir::create(&d, "run", Some(&d.join("run")), Existing::Refuse).unwrap();
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    let err = image::train(&mut st, &data, &mut run, &dev, None).unwrap_err().to_string();
    assert!(err.contains("iteration 1") && err.contains("raise train.divergence_bound"), "{err}");
    let metrics = std::fs::read_to_string(run.file("metrics.jsonl")).unwrap_or_default();
    assert!(!metrics.contains("\"rollback\""), "no rollback is logged: {metrics}");
}

#[test]
fn a_config_for_the_wrong_image_size_is_refused() {
    let (mut cfg, _) = tiny();
    cfg.model = ModelConfig::CondMnistNet(Default::default());
    let err = image::load_data(&cfg).err().unwrap().to_string();
    assert!(err.contains("[1, 8, 8]") && err.contains("cond_mnist_net"), "{err}");
}

/// Weights that turn infinite on the very last step are caught before the final checkpoint: the run rolls back
/// instead of saving them, and every checkpoint and model written holds finite values only.
#[test]
fn non_finite_weights_never_reach_a_checkpoint() {
    let (mut cfg, data) = tiny();
    cfg.train.max_rollbacks = 1;
    cfg.train.checkpoint_every = 1;
    let dev = Device::Cpu;
    let d = tmpdir("inf");
    let mut run = RunDir::create(&d, "run", Some(&d.join("run")), Existing::Refuse).unwrap();
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    // every step from iteration 5 on poisons a weight with infinity (the energies stay finite for that step)
    let mut hook = |s: &mut TrainState<u8>| {
        if s.iter >= 5 {
            let (_, v) = s.model.params().trainable().into_iter().next().unwrap();
            v.set(&(v.as_tensor() * f64::INFINITY).unwrap()).unwrap();
        }
    };
    let err = image::train(&mut st, &data, &mut run, &dev, Some(&mut hook)).unwrap_err().to_string();
    assert!(err.contains("non-finite") && err.contains("after 1 rollbacks"), "{err}");
    let back = TrainState::<u8>::load(&run.file("checkpoint.safetensors"), &dev).unwrap();
    assert_eq!(back.iter, 4, "the last good checkpoint is the one before the poisoned step");
    assert!(back.model.params().first_non_finite().unwrap().is_none());
    assert!(!run.file("model.safetensors").exists(), "no model file from a run that did not finish");
    // and a state with such weights refuses to be written at all
    let (_, v) = st.model.params().trainable().into_iter().next().unwrap();
    v.set(&(v.as_tensor() * f64::NAN).unwrap()).unwrap();
    let e = st.save(&d.join("x.safetensors")).unwrap_err().to_string();
    assert!(e.contains("x.safetensors") && e.contains("non-finite"), "{e}");
    assert!(!d.join("x.safetensors").exists());
}
