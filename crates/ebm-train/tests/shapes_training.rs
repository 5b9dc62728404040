//! Continuous-condition training: a tiny DspritesNet on generated sprites conditioned on [scale] and [x, y] trains
//! with finite losses and a moving energy gap, resumes bit for bit, reloads to the same energies, and is evaluated
//! by the factor probe.

mod common;

use candle_core::Device;
use common::parameter_bits;
use ebm_data::dsprites::Factor;
use ebm_models::{EnergyNet, ModelConfig};
use ebm_sampler::Energy;
use ebm_train::config::{DataConfig, RunConfig};
use ebm_train::image::{self, ImageData};
use ebm_train::state::TrainState;

fn tiny(preset: &str) -> (RunConfig, ImageData) {
    let mut cfg = ebm_train::presets::load(preset).unwrap();
    if let ModelConfig::DspritesNet(m) = &mut cfg.model {
        m.filters = 2;
        m.image_size = 16;
    }
    if let DataConfig::Images { shapes: Some(s), .. } = &mut cfg.data {
        s.side = 16;
        s.train = 64;
        s.test = 8;
    }
    cfg.train.batch_size = 8;
    cfg.train.iterations = 6;
    cfg.sampler.steps = 3;
    cfg.replay.capacity = 20;
    cfg.eval.samples = 6;
    cfg.eval.steps = 2;
    let data = image::load_data(&cfg).unwrap();
    (cfg, data)
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-shapes-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn continuous_conditions_train_resume_and_reload() {
    let dev = Device::Cpu;
    for (preset, dim) in [("shapes-size-cpu", 1), ("shapes-position-cpu", 2)] {
        let (cfg, data) = tiny(preset);
        assert_eq!(cfg.model.cond_dim(), dim);
        let mut straight = image::init_state(&cfg, &data, &dev).unwrap();
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let s = image::iteration(&mut straight, &data, &dev).unwrap();
            assert!(s.loss.is_finite() && s.e_pos.is_finite() && s.e_neg.is_finite(), "{preset}: {s:?}");
            gaps.push(s.e_pos - s.e_neg);
        }
        assert!(gaps.iter().any(|g| (g - gaps[0]).abs() > 1e-6), "{preset}: the energy gap never moved: {gaps:?}");
        // the buffer holds continuous conditions of the right length, taken from the data's factors
        let (_, c) = straight.replay.get(&[0, 1], &mut ebm_kernels::Rng::new(0), &dev).unwrap();
        assert_eq!(c.unwrap().dims(), [2, dim]);

        let mut first = image::init_state(&cfg, &data, &dev).unwrap();
        for _ in 0..4 {
            image::iteration(&mut first, &data, &dev).unwrap();
        }
        let d = tmpdir(preset);
        first.save(&d.join("checkpoint.safetensors")).unwrap();
        drop(first);
        let mut resumed = TrainState::<u8>::load(&d.join("checkpoint.safetensors"), &dev).unwrap();
        for _ in 0..2 {
            image::iteration(&mut resumed, &data, &dev).unwrap();
        }
        assert_eq!(parameter_bits(&straight), parameter_bits(&resumed), "{preset}: 4 + 2 iterations differ from 6");
        assert_eq!(straight.rng.state(), resumed.rng.state());

        // the saved model gives the same energies under the same conditions (normalised weights recomputed from
        // the stored power-iteration state, as a reloaded model's are)
        straight.model.normalise(false).unwrap();
        straight.model.save(&d.join("model.safetensors")).unwrap();
        let reloaded = EnergyNet::load(&d.join("model.safetensors"), &dev).unwrap();
        let idx: Vec<usize> = (0..4).collect();
        let (x, _) = data.test.batch(&idx, None).unwrap();
        let factor = if dim == 1 { Factor::Size } else { Factor::Position };
        let c = factor.batch(&data.test, &idx).unwrap();
        let e1 = straight.model.energy(&x, Some(&c)).unwrap().to_vec1::<f32>().unwrap();
        let e2 = reloaded.energy(&x, Some(&c)).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(e1, e2, "{preset}");
        // the condition matters
        let other = (c.clone() * 0.5).unwrap();
        let e3 = straight.model.energy(&x, Some(&other)).unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(e1, e3);

        // the end-of-run evaluation judges fresh samples with the probe
        let (ev, samples, conds) = ebm_train::factors::evaluate(&mut straight.model, &cfg, &data, &dev).unwrap();
        assert_eq!(ev.factor, factor.name());
        assert_eq!((samples.dims()[0], conds.dims().to_vec()), (6, vec![6, dim]));
        // (at 16x16 the smallest squares are 2.4 pixels wide, so the probe's reading of the data is not perfect)
        assert!(ev.data_fraction_within >= 0.5, "{preset}: the probe reads the test images' factors: {ev:?}");
        assert!((0.0..=1.0).contains(&ev.fraction_within));
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn a_continuous_model_needs_a_source_with_its_factor() {
    let (mut cfg, _) = tiny("shapes-size-cpu");
    if let ModelConfig::DspritesNet(m) = &mut cfg.model {
        m.cond_dim = 2;
    }
    let e = image::load_data(&cfg).err().unwrap().to_string();
    assert!(e.contains("takes 2 continuous latents") && e.contains("size (1 values)"), "{e}");
    let mut digits = ebm_train::presets::load("digits").unwrap();
    digits.model = cfg.model.clone();
    let e = image::load_data(&digits).err().unwrap().to_string();
    assert!(e.contains("has no factors"), "{e}");
}
