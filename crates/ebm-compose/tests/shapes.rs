//! Continuous-condition training: a tiny DspritesNet on generated sprites conditioned on [scale] and [x, y] trains
//! with finite losses and a moving energy gap, resumes bit for bit, reloads to the same energies, and is evaluated
//! by the factor probe.

use candle_core::Device;
use ebm_cd::config::{DataConfig, RunConfig};
use ebm_cd::image;
use ebm_cd::state::TrainState;
use ebm_data::dsprites::Factor;
use ebm_data::ImageData;
use ebm_models::{EnergyNet, ModelConfig};
use ebm_sampler::Energy;

fn tiny(preset: &str) -> (RunConfig, ImageData) {
    let mut cfg = ebm_cd::presets::load(preset).unwrap();
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
        assert_eq!(
            straight.model.params().bits().unwrap(),
            resumed.model.params().bits().unwrap(),
            "{preset}: 4 + 2 iterations differ from 6"
        );
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
        let sampler = cfg.sampler.langevin(cfg.eval.steps);
        let (ev, samples, conds) =
            ebm_eval::factors::evaluate(&mut straight.model, &sampler, factor, &data, cfg.eval.samples, cfg.seed, &dev)
                .unwrap();
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
    let mut digits = ebm_cd::presets::load("digits").unwrap();
    digits.model = cfg.model.clone();
    let e = image::load_data(&digits).err().unwrap().to_string();
    assert!(e.contains("has no factors"), "{e}");
}

/// `E(x | s) = a sum_p (x_p - s)^2 + b sum_p x_p^3 w_p`: an analytic conditional energy whose second part does not
/// depend on the condition (a stand-in for "is there a centred sprite").
struct Analytic {
    a: f64,
    b: f64,
}

impl ebm_sampler::Energy for Analytic {
    fn energy(
        &self,
        x: &candle_core::Tensor,
        cond: Option<&candle_core::Tensor>,
    ) -> candle_core::Result<candle_core::Tensor> {
        let s = cond.expect("a condition").reshape((x.dims()[0], 1, 1, 1))?;
        let d = x.broadcast_sub(&s)?.sqr()?.flatten_from(1)?.sum(1)?;
        let w = candle_core::Tensor::arange(0f32, x.dims()[3] as f32, x.device())?.reshape((1, 1, 1, x.dims()[3]))?;
        let c = x.powf(3.0)?.broadcast_mul(&w)?.flatten_from(1)?.sum(1)?;
        (d * self.a)? + (c * self.b)?
    }
}

#[test]
fn size_classifier_term_is_nonnegative_and_ignores_what_all_scales_share() {
    use candle_core::{Device, Tensor};
    use ebm_sampler::Energy;
    use std::sync::Arc;
    let dev = Device::Cpu;
    let mut rng = ebm_kernels::Rng::new(3);
    let x = Tensor::from_vec(rng.uniform_vec(4 * 16, 0.0, 1.0), (4, 1, 4, 4), &dev).unwrap();
    let grid = [0.5f32, 0.6, 0.7, 0.8, 0.9, 1.0];
    let scale = Tensor::from_vec(vec![0.5f32, 0.7, 0.9, 1.0], (4, 1), &dev).unwrap();
    let plain = ebm_compose::shapes::size_classifier(Arc::new(Analytic { a: 2.0, b: 0.0 }), &scale, &grid).unwrap();
    let shared = ebm_compose::shapes::size_classifier(Arc::new(Analytic { a: 2.0, b: 5.0 }), &scale, &grid).unwrap();
    let (e0, g0) = plain.energy_and_grad(&x, None).unwrap();
    let (e1, g1) = shared.energy_and_grad(&x, None).unwrap();
    let (e0, e1) = (e0.to_vec1::<f32>().unwrap(), e1.to_vec1::<f32>().unwrap());
    let xs = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    for (i, (&a, &b)) in e0.iter().zip(&e1).enumerate() {
        assert!(a >= -1e-5, "-log p(s | x) = {a} < 0");
        assert!((a - b).abs() < 1e-4, "adding a scale-independent energy changed the term: {a} vs {b}");
        // closed form: E(x | s) - E(x | s_k) = 2 sum_p ((x_p - s)^2 - (x_p - s_k)^2)
        let e = |s: f32| 2.0 * xs[i].iter().map(|&v| ((v - s) as f64).powi(2)).sum::<f64>();
        let s = [0.5, 0.7, 0.9, 1.0][i];
        let want = e(s) + grid.iter().map(|&g| (-e(g)).exp()).sum::<f64>().ln();
        assert!((a as f64 - want).abs() < 1e-3 * want.abs().max(1.0), "term {a}, closed form {want}");
    }
    let dg = (g0 - g1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(dg < 1e-4, "adding a scale-independent energy changed the gradient by {dg}");
}

#[test]
fn recentred_energy_translates_and_its_gradient_is_the_transpose() {
    use candle_core::{Device, Tensor};
    use ebm_compose::shapes::{recentring_shift, translate, Recentred};
    use ebm_sampler::Energy;
    use std::sync::Arc;
    let dev = Device::Cpu;
    // position 0.5 is the centre; 0.2 and 0.8 are 5.76 pixels away on 32x32, so 6 whole pixels
    assert_eq!(recentring_shift([0.5, 0.5], 32), (0, 0));
    assert_eq!(recentring_shift([0.2, 0.8], 32), (6, -6));
    let mut rng = ebm_kernels::Rng::new(4);
    let x = Tensor::from_vec(rng.uniform_vec(2 * 25, 0.0, 1.0), (2, 1, 5, 5), &dev).unwrap();
    let tv = translate(&x, &[(1, 0), (-2, 1)]).unwrap().flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    let xv = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(tv[0][2 * 5 + 3], xv[0][2 * 5 + 2]);
    assert_eq!(tv[0][2 * 5], 0.0);
    assert_eq!(tv[1][3 * 5 + 1], xv[1][2 * 5 + 3]);
    assert_eq!(tv[1][4], 0.0);
    let cond = Tensor::from_vec(vec![0.3f32, 0.8], (2, 1), &dev).unwrap();
    let r = Recentred { inner: Arc::new(Analytic { a: 1.0, b: 2.0 }), shifts: vec![(1, 0), (-2, 1)] };
    let (e, g) = r.energy_and_grad(&x, Some(&cond)).unwrap();
    // the energy is the inner one of the translated images
    let inner = Analytic { a: 1.0, b: 2.0 }.energy(&translate(&x, &[(1, 0), (-2, 1)]).unwrap(), Some(&cond)).unwrap();
    let d = (&e - inner).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-5);
    let gv = g.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    // central differences on every pixel (those the translation drops have gradient 0)
    let h = 1e-2f32;
    let at = |row: usize, p: usize, d: f32| {
        let mut xp = xv.clone();
        xp[row][p] += d;
        let xt = Tensor::from_vec(xp.concat(), (2, 1, 5, 5), &dev).unwrap();
        r.energy(&xt, Some(&cond)).unwrap().to_vec1::<f32>().unwrap()[row]
    };
    for (row, p) in (0..2).flat_map(|r| (0..25).map(move |p| (r, p))) {
        let fd = (at(row, p, h) - at(row, p, -h)) / (2.0 * h);
        assert!((fd - gv[row][p]).abs() < 0.05 * (1.0 + fd.abs()), "pixel {p} of row {row}: {fd} vs {}", gv[row][p]);
    }
}

#[test]
fn joint_fine_tune_of_the_pair_resumes_bit_for_bit() {
    use ebm_compose::joint::JointSetup;
    let dev = Device::Cpu;
    let (size_cfg, _) = tiny("shapes-size-cpu");
    let (position_cfg, _) = tiny("shapes-position-cpu");
    let setup = JointSetup::new(size_cfg.clone(), position_cfg.clone()).unwrap();
    let models = || {
        let rng = ebm_kernels::Rng::new(11);
        (
            EnergyNet::new(size_cfg.model.clone(), &mut rng.fork(1), &dev).unwrap(),
            EnergyNet::new(position_cfg.model.clone(), &mut rng.fork(2), &dev).unwrap(),
        )
    };
    let (s0, p0) = models();
    let before = (s0.params().bits().unwrap(), p0.params().bits().unwrap());
    let mut straight = setup.init(s0, p0, 5).unwrap();
    for _ in 0..6 {
        let s = setup.iteration(&mut straight, 6, &dev).unwrap();
        assert!(s.loss.is_finite() && s.e_pos.is_finite() && s.e_neg.is_finite() && s.grad_norm > 0.0, "{s:?}");
    }
    // both models were trained by the summed loss
    assert_ne!(straight.size.params().bits().unwrap(), before.0);
    assert_ne!(straight.position.params().bits().unwrap(), before.1);

    let (s0, p0) = models();
    let mut first = setup.init(s0, p0, 5).unwrap();
    for _ in 0..4 {
        setup.iteration(&mut first, 6, &dev).unwrap();
    }
    let d = tmpdir("joint");
    let ckpt = d.join("joint.safetensors");
    first.save(&ckpt, "test pair").unwrap();
    drop(first);
    let (s0, p0) = models();
    let mut resumed = setup.init(s0, p0, 5).unwrap();
    let e = resumed.restore(&ckpt, "another pair", &dev).unwrap_err().to_string();
    assert!(e.contains("joint.safetensors") && e.contains("test pair") && e.contains("another pair"), "{e}");
    resumed.restore(&ckpt, "test pair", &dev).unwrap();
    assert_eq!(resumed.iter, 4);
    for _ in 0..2 {
        setup.iteration(&mut resumed, 6, &dev).unwrap();
    }
    assert_eq!(
        straight.size.params().bits().unwrap(),
        resumed.size.params().bits().unwrap(),
        "size model: 4 + 2 iterations differ from 6"
    );
    assert_eq!(
        straight.position.params().bits().unwrap(),
        resumed.position.params().bits().unwrap(),
        "position model differs"
    );

    // a single-model checkpoint is refused with the file's name
    let single = image::init_state(&size_cfg, &image::load_data(&size_cfg).unwrap(), &dev).unwrap();
    single.save(&d.join("single.safetensors")).unwrap();
    let e = resumed.restore(&d.join("single.safetensors"), "test pair", &dev).unwrap_err().to_string();
    assert!(e.contains("single.safetensors") && e.contains("not a joint"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_pair_energy_is_the_sum_of_the_models_and_its_gradient_the_sum_of_theirs() {
    use candle_core::Tensor;
    use ebm_compose::joint::PairEnergy;
    let dev = Device::Cpu;
    let (size_cfg, data) = tiny("shapes-size-cpu");
    let (position_cfg, _) = tiny("shapes-position-cpu");
    let rng = ebm_kernels::Rng::new(2);
    let mut size = EnergyNet::new(size_cfg.model.clone(), &mut rng.fork(1), &dev).unwrap();
    let mut position = EnergyNet::new(position_cfg.model.clone(), &mut rng.fork(2), &dev).unwrap();
    let idx: Vec<usize> = (0..3).collect();
    let (x, _) = data.test.batch(&idx, None).unwrap();
    let cond = Tensor::from_vec(vec![0.5f32, 0.2, 0.8, 0.9, 0.5, 0.5, 0.7, 0.8, 0.3], (3, 3), &dev).unwrap();
    let pair = PairEnergy { size: &size, position: &position };
    let e = pair.energy(&x, Some(&cond)).unwrap().to_vec1::<f32>().unwrap();
    let es = size.energy(&x, Some(&cond.narrow(1, 0, 1).unwrap())).unwrap().to_vec1::<f32>().unwrap();
    let ep = position.energy(&x, Some(&cond.narrow(1, 1, 2).unwrap())).unwrap().to_vec1::<f32>().unwrap();
    for i in 0..3 {
        assert!((e[i] - es[i] - ep[i]).abs() < 1e-6, "row {i}: {} vs {} + {}", e[i], es[i], ep[i]);
    }
    let (_, g_auto) = ebm_sampler::autograd_energy_and_grad(&pair, &x, Some(&cond)).unwrap();
    size.set_frozen(true);
    position.set_frozen(true);
    let (e_fast, g_fast) = PairEnergy { size: &size, position: &position }.energy_and_grad(&x, Some(&cond)).unwrap();
    let de = e_fast.to_vec1::<f32>().unwrap().iter().zip(&e).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let dg = (g_fast - &g_auto).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = g_auto.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(de < 1e-5 && dg <= 1e-4 * scale.max(1e-6), "energy off by {de}, gradient by {dg} (of {scale})");
    let e = PairEnergy { size: &size, position: &position }.energy(&x, Some(&cond.narrow(1, 0, 2).unwrap()));
    assert!(e.unwrap_err().to_string().contains("[B, 3]"));
}
