//! The classifier objectives of ebm-cd: the hybrid's cross-entropy is the closed-form log-softmax of the negated
//! energies with the gradient finite differences give; PGD breaks a softmax baseline trained here and its L2
//! projection stays in the ball; the hybrid and baseline presets load.

use candle_core::{DType, Device, Tensor};
use ebm_cd::cd::cross_entropy;
use ebm_cd::{image, presets};
use ebm_models::{DigitsNetConfig, EnergyNet, ModelConfig};

#[test]
fn the_cross_entropy_is_the_log_softmax_of_minus_e_and_its_gradient_is_right() {
    let dev = Device::Cpu;
    let cfg = ModelConfig::DigitsNet(DigitsNetConfig { filters: 3, ..Default::default() });
    let mut net = EnergyNet::new(cfg, &mut ebm_kernels::Rng::new(4), &dev).unwrap();
    net.to_dtype(DType::F64).unwrap();
    net.normalise(false).unwrap();
    let mut rng = ebm_kernels::Rng::new(5);
    let x =
        Tensor::from_vec(rng.uniform_vec(4 * 64, 0.0, 1.0), (4, 1, 8, 8), &dev).unwrap().to_dtype(DType::F64).unwrap();
    let y = Tensor::new(&[3u32, 0, 9, 3], &dev).unwrap();
    // the value: mean_i log sum_c exp(-E_ic) + E_iy, in f64 from the energies
    let e = ebm_eval::classify::class_energies(&net, &x, 10).unwrap().to_vec2::<f64>().unwrap();
    let want: f64 = e
        .iter()
        .zip([3usize, 0, 9, 3])
        .map(|(r, yy)| {
            let m = r.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
            m + r.iter().map(|v| (-v - m).exp()).sum::<f64>().ln() + r[yy]
        })
        .sum::<f64>()
        / 4.0;
    let ce = cross_entropy(&net, &x, &y, 10, 1.0).unwrap();
    let got = ce.to_scalar::<f64>().unwrap();
    assert!((got - want).abs() < 1e-12 * want.abs().max(1.0), "{got} vs {want}");
    // the gradient of one weight entry against central differences (the normalised weights recomputed each time)
    let grads = ce.backward().unwrap();
    let (name, var) = net.params().trainable().into_iter().find(|(n, _)| n.ends_with("cweight")).unwrap();
    let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let w0 = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-5;
    // the loss with entry k of the weight moved by d (the normalised weights recomputed from it)
    let mut ce_at = |k: usize, d: f64| {
        let mut w = w0.clone();
        w[k] += d;
        var.set(&Tensor::from_vec(w, var.dims(), &dev).unwrap()).unwrap();
        net.normalise(false).unwrap();
        cross_entropy(&net, &x, &y, 10, 1.0).unwrap().to_scalar::<f64>().unwrap()
    };
    for k in [0usize, 7, 13] {
        let fd = (ce_at(k, h) - ce_at(k, -h)) / (2.0 * h);
        assert!((fd - g[k]).abs() < 1e-5 * (1.0 + g[k].abs()), "{name}[{k}]: autograd {} vs differences {fd}", g[k]);
    }
}

#[test]
fn pgd_breaks_a_softmax_baseline_and_l2_stays_in_the_ball() {
    let dev = Device::Cpu;
    let mut cfg = presets::load("digits-softmax").unwrap();
    cfg.model = ModelConfig::DigitsNet(DigitsNetConfig { filters: 8, ..Default::default() });
    cfg.train.iterations = 150;
    // this test is about the attack, not the preset's augmentation: the tiny model learns faster unshifted
    cfg.train.classify_shift = 0;
    let data = image::load_data(&cfg).unwrap();
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    for _ in 0..cfg.train.iterations {
        let s = image::iteration(&mut st, &data, &dev).unwrap();
        assert!(s.loss.is_finite());
    }
    st.model.set_frozen(true);
    let idx: Vec<usize> = (0..100).collect();
    let (x, y) = data.test.batch(&idx, None).unwrap();
    let y = y.to_vec1::<u32>().unwrap();
    let clf = ebm_eval::robust::EnergyClassifier { energy: &st.model, classes: 10, refine: None };
    let acc = |x: &Tensor| ebm_eval::classify::accuracy(&clf.predict(x, 0, 100).unwrap(), &y);
    let clean = acc(&x);
    let pgd = |norm, eps: f32| ebm_eval::robust::Pgd {
        norm,
        eps,
        steps: 20,
        step_size: 2.5 * eps / 20.0,
        random_start: true,
        loss: ebm_eval::robust::AttackLoss::Ce,
    };
    let adv = ebm_eval::robust::pgd(
        &clf,
        &x,
        &y,
        &pgd(ebm_eval::robust::Norm::Linf, 0.2),
        ebm_eval::robust::Through::Ignore,
        1,
    )
    .unwrap();
    let attacked = acc(&adv);
    let margin =
        ebm_eval::robust::Pgd { loss: ebm_eval::robust::AttackLoss::Margin, ..pgd(ebm_eval::robust::Norm::Linf, 0.2) };
    let by_margin = acc(&ebm_eval::robust::pgd(&clf, &x, &y, &margin, ebm_eval::robust::Through::Ignore, 1).unwrap());
    println!("softmax baseline: clean {clean:.2}, L-inf eps 0.2 PGD {attacked:.2} (margin loss {by_margin:.2})");
    assert!(by_margin <= clean - 0.4, "the margin attack found too few adversarial examples: {clean} -> {by_margin}");
    // measured (150 iterations, 8 filters): clean 0.64, attacked 0.00
    assert!(clean >= 0.5, "the baseline did not learn: {clean}");
    assert!(attacked <= clean - 0.4, "PGD found too few adversarial examples: {clean} -> {attacked}");
    let l2 = ebm_eval::robust::pgd(
        &clf,
        &x,
        &y,
        &pgd(ebm_eval::robust::Norm::L2, 0.5),
        ebm_eval::robust::Through::Ignore,
        2,
    )
    .unwrap();
    let d = (l2 - &x).unwrap().sqr().unwrap().flatten_from(1).unwrap().sum(1).unwrap().sqrt().unwrap();
    let worst = d.max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(worst <= 0.5 + 1e-5, "an L2 perturbation of {worst} left the ball of 0.5");
}

#[test]
fn the_classifier_presets_load_and_say_what_they_train() {
    use ebm_cd::config::Objective;
    for (name, objective, ce) in [
        ("digits-hybrid", Objective::Cd, 0.1),
        ("digits-softmax", Objective::Softmax, 0.0),
        ("digits-adv", Objective::Adversarial, 0.0),
        ("fashion-mnist-hybrid-cpu", Objective::Cd, 0.1),
        ("fashion-mnist-softmax-cpu", Objective::Softmax, 0.0),
        ("fashion-mnist-adv-cpu", Objective::Adversarial, 0.0),
    ] {
        let c = presets::load(name).unwrap();
        assert_eq!((c.train.objective, c.train.classify_weight), (objective, ce), "{name}");
        assert_eq!(c.train.adversarial.is_some(), objective == Objective::Adversarial, "{name}");
        // the Fashion-MNIST models are the standard body + 10-logit head; the digits ones keep class gains
        let logit_head = matches!(&c.model, ebm_models::ModelConfig::CondMnistNet(m) if m.logit_head);
        assert_eq!(logit_head, name.starts_with("fashion"), "{name}");
    }
}

#[test]
fn wrong_labels_never_repeat_the_true_one_and_cover_the_others() {
    let dev = Device::Cpu;
    let y = Tensor::from_vec(vec![3u32; 900], 900, &dev).unwrap();
    let w = image::wrong_labels(&y, 10, &mut ebm_kernels::Rng::new(9)).unwrap().to_vec1::<u32>().unwrap();
    let mut counts = [0usize; 10];
    for &l in &w {
        counts[l as usize] += 1;
    }
    assert_eq!(counts[3], 0, "a wrong label equal to the true one");
    // 900 draws over 9 classes: each expected 100, standard deviation ~9.4; within 40 of it
    for (c, &n) in counts.iter().enumerate().filter(|(c, _)| *c != 3) {
        assert!((60..=140).contains(&n), "class {c} drawn {n} times of 900");
    }
}

#[test]
fn relabelled_negatives_take_the_place_of_chains_and_raise_wrong_label_energies() {
    // A tiny digits IGEBM trained twice from the same seed, with the official negatives and with half of each
    // negative batch made of relabelled data: the replay buffer receives chains only (32 of 64 per iteration), and
    // the held-out images' energy under the wrong labels rises above their energy under their own label, which
    // the official loss never asks for (its margin stays near zero).
    let dev = Device::Cpu;
    let margin = |fraction: f64| {
        let mut cfg = presets::load("digits").unwrap();
        cfg.model = ModelConfig::DigitsNet(DigitsNetConfig { filters: 8, ..Default::default() });
        cfg.train.wrong_label_negatives = fraction;
        cfg.train.iterations = 200;
        cfg.validate("test").unwrap();
        let data = image::load_data(&cfg).unwrap();
        let mut st = image::init_state(&cfg, &data, &dev).unwrap();
        let chains = 64 - cfg.train.wrong_label_count();
        for i in 0..cfg.train.iterations {
            let s = image::iteration(&mut st, &data, &dev).unwrap();
            assert!(s.loss.is_finite());
            assert_eq!(st.replay.len(), (chains * (i as usize + 1)).min(cfg.replay.capacity), "chains only");
        }
        st.model.set_frozen(true);
        st.model.refresh().unwrap();
        let idx: Vec<usize> = (0..data.test.len()).collect();
        let (x, y) = data.test.batch(&idx, None).unwrap();
        let e = ebm_eval::classify::class_energies(&st.model, &x, 10).unwrap().to_vec2::<f32>().unwrap();
        let y = y.to_vec1::<u32>().unwrap();
        // the mean of the nine wrong labels' energies minus the own label's
        let per_image = e.iter().zip(&y).map(|(row, &l)| {
            let own = row[l as usize] as f64;
            (row.iter().map(|&v| v as f64).sum::<f64>() - own) / 9.0 - own
        });
        per_image.sum::<f64>() / y.len() as f64
    };
    let (plain, relabelled) = (margin(0.0), margin(0.5));
    println!("held-out mean E(x, wrong) - E(x, own): official negatives {plain:.4}, relabelled half {relabelled:.4}");
    // measured (200 iterations, 8 filters): official 0.0054, relabelled 0.0324
    assert!(relabelled > 0.02 && relabelled > 3.0 * plain.abs(), "relabelled {relabelled} vs official {plain}");
    // the fraction is checked: a whole batch of relabelled data would leave no chain
    let mut cfg = presets::load("digits").unwrap();
    cfg.train.wrong_label_negatives = 0.999;
    assert!(cfg.validate("t").unwrap_err().to_string().contains("wrong_label_negatives"));
}

#[test]
fn extra_cross_entropy_batches_take_fresh_data_and_train_the_classifier_faster() {
    let dev = Device::Cpu;
    let mut cfg = presets::load("digits-hybrid").unwrap();
    cfg.model = ModelConfig::DigitsNet(DigitsNetConfig { filters: 4, ..Default::default() });
    cfg.train.classify_shift = 0;
    cfg.sampler.steps = 2;
    let data = image::load_data(&cfg).unwrap();
    // the held-out cross-entropy (at the preset's temperature) after `n` iterations with `k` extra batches, and
    // the data order's state
    let run = |k: u32, n: usize| {
        let mut c = cfg.clone();
        c.train.classify_extra_batches = k;
        c.validate("t").unwrap();
        let mut st = image::init_state(&c, &data, &dev).unwrap();
        for _ in 0..n {
            assert!(image::iteration(&mut st, &data, &dev).unwrap().loss.is_finite());
        }
        let idx: Vec<usize> = (0..200).collect();
        let (x, y) = data.test.batch(&idx, None).unwrap();
        let ce =
            cross_entropy(&st.model, &x, &y, 10, c.train.classify_temperature).unwrap().to_scalar::<f32>().unwrap();
        (ce, st.data_state.unwrap())
    };
    // one iteration with 2 extra batches consumes 3 batches of the same order
    let b = cfg.train.batch_size;
    let init = image::init_state(&cfg, &data, &dev).unwrap().data_state.unwrap();
    let mut order = ebm_data::Batches::from_state(data.train.len(), b, true, init).unwrap();
    for _ in 0..3 {
        order.next_batch();
    }
    assert_eq!(run(2, 1).1, order.state(), "the extra steps must draw the next batches of the data order");
    let (plain, _) = run(0, 30);
    let (extra, _) = run(3, 30);
    println!("held-out cross-entropy after 30 iterations: {plain:.3} without extra batches, {extra:.3} with 3");
    assert!(
        extra < plain - 0.1,
        "3 extra cross-entropy batches did not train the classifier faster: {plain} -> {extra}"
    );
}
