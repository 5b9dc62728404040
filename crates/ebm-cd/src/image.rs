//! Training image EBMs: the IGEBM recipe as the official code runs it (igebm-reference section 1), with a replay
//! buffer that keeps labels (one-hot classes or continuous factors), and divergence rollback.

use crate::cd::{cross_entropy, negatives, update, IterStats};
use crate::config::{DataConfig, Objective, RunConfig, TrainLoop};
use crate::error::{Context, Result};
use crate::run_dir::RunDir;
use crate::state::{base_lr, SingleModel, StateHook, TrainState};
use crate::{bail, ensure};
use candle_core::{Device, Tensor};
use ebm_data::{Batches, ImageData, ImageSet};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_replay::{Codec, Policy, ReplayBuffer};
use ebm_sampler::one_hot;

/// Loads the image set a config names, with a hint on how to get it when it is missing.
///
/// A model conditioned on continuous latents (DspritesNet) needs a source with factors (`dsprites-*`,
/// `shapes-*`) whose condition vector has the model's length; a class-conditional one takes the labels.
pub fn load_data(cfg: &RunConfig) -> Result<ImageData> {
    let DataConfig::Images { source, dir, shapes, .. } = &cfg.data else { bail!("not an image run") };
    let continuous = cfg.model.cond_dim() > 0 && !cfg.model.is_class_conditional();
    if continuous {
        let Some(factor) = source.factor() else {
            bail!(
                "the model `{}` is conditioned on {} continuous latents, but `{}` has no factors to condition on \
                 (use a dsprites-* or shapes-* source)",
                cfg.model.arch_name(),
                cfg.model.cond_dim(),
                source.name()
            )
        };
        ensure!(
            factor.cond_dim() == cfg.model.cond_dim(),
            "the model `{}` takes {} continuous latents but `{}` conditions on the {} ({} values)",
            cfg.model.arch_name(),
            cfg.model.cond_dim(),
            source.name(),
            factor.name(),
            factor.cond_dim()
        );
    }
    let data = ebm_data::sources::load_source(*source, dir.as_deref(), shapes.as_ref());
    let data = if source.is_generated() || *source == ebm_data::ImageSource::Digits {
        data?
    } else {
        data.with_context(|| format!("(get it with `cargo xtask fetch-data {}`, or set data.dir)", source.dataset()))?
    };
    let want = cfg.model.input_shape();
    ensure!(
        data.train.shape()[..] == want[..],
        "data `{}` has images of shape {:?} but the model `{}` takes {:?}",
        source.name(),
        data.train.shape(),
        cfg.model.arch_name(),
        want
    );
    let classes = cfg.model.cond_dim();
    ensure!(
        continuous || classes == 0 || classes == data.train.num_classes(),
        "the model is conditioned on {classes} classes but `{}` has {}",
        source.name(),
        data.train.num_classes()
    );
    Ok(data)
}

/// The condition vectors `[B, cond_dim]` of the training images at `idx`: one-hot labels for a class-conditional
/// model, the source's factor (`ebm_data::dsprites::Factor`) for a continuous one, `None` for an unconditional one.
pub fn conditions(cfg: &RunConfig, set: &ImageSet, labels: &Tensor, idx: &[usize]) -> Result<Option<Tensor>> {
    let d = cfg.model.cond_dim();
    if d == 0 {
        return Ok(None);
    }
    if cfg.model.is_class_conditional() {
        return Ok(Some(one_hot(labels, d)?));
    }
    let DataConfig::Images { source, .. } = &cfg.data else { bail!("not an image run") };
    let Some(factor) = source.factor() else { bail!("`{}` has no factors", source.name()) };
    Ok(Some(factor.batch(set, idx)?))
}

/// A fresh state for `cfg`.
pub fn init_state(cfg: &RunConfig, data: &ImageData, device: &Device) -> Result<TrainState<u8>> {
    let rng = Rng::new(cfg.seed);
    let model = EnergyNet::new(cfg.model.clone(), &mut rng.fork(1), device)?;
    let opt = crate::optim::Adam::new(model.params().trainable(), cfg.train.adam)?;
    let shape = cfg.model.input_shape();
    let replay = ReplayBuffer::new(cfg.replay.capacity, &shape, cfg.model.cond_dim(), Codec::Uniform256, Policy::Fifo);
    let batches = Batches::new(data.train.len(), cfg.train.batch_size, true, rng.fork(3).next_u64())?;
    Ok(TrainState {
        cfg: cfg.clone(),
        model,
        opt,
        replay,
        rng: rng.fork(2),
        iter: 0,
        data_state: Some(batches.state()),
        rollbacks: 0,
    })
}

/// One iteration: a data batch, chain starts (95% replay under their stored conditions, 5% noise under the batch's
/// conditions, [`ebm_sampler::starts::replay_mixed`]), negatives (with `train.wrong_label_negatives`, the batch's
/// tail under wrong labels takes the place of some chains), the update, and the chains into the buffer.
/// Conditions are one-hot labels or continuous factors ([`conditions`]); the buffer stores either as float vectors.
pub fn iteration(st: &mut TrainState<u8>, data: &ImageData, device: &Device) -> Result<IterStats> {
    let (idx, x_pos, y_pos) = next_train_batch(st, data)?;
    let cfg = &st.cfg;
    let (b, shape) = (cfg.train.batch_size, cfg.model.input_shape());
    let x_pos = x_pos.to_device(device)?;
    let cond_pos = conditions(cfg, &data.train, &y_pos, &idx)?.map(|c| c.to_device(device)).transpose()?;
    if cfg.train.objective != Objective::Cd {
        return classifier_iteration(st, &x_pos, &y_pos.to_device(device)?);
    }
    // the batch's tail serves as relabelled negatives (`train.wrong_label_negatives`); chains fill the rest
    let relabelled = cfg.train.wrong_label_count();
    let chains = b - relabelled;
    let cond_chains = cond_pos.as_ref().map(|c| c.narrow(0, 0, chains)).transpose()?;
    let (x0, cond_neg) = ebm_sampler::starts::replay_mixed(
        &st.replay,
        &mut st.rng,
        chains,
        &shape,
        [0.0, 1.0],
        cond_chains.as_ref(),
        cfg.replay.reinit_prob,
        device,
    )?;
    let seed = st.rng.next_u64();
    st.opt.cfg.lr = st.cfg.train.lr_at(base_lr(st), st.iter);
    let sampler = cfg.sampler.langevin(cfg.sampler.steps);
    let (ml, l2) = (cfg.train.ml_coeff, cfg.train.l2_coeff);
    let (classify, classes) = (cfg.train.classify_weight, cfg.model.cond_dim());
    let wrong = match relabelled {
        0 => None,
        _ => Some(one_hot(&wrong_labels(&y_pos.narrow(0, chains, relabelled)?, classes, &mut st.rng)?, classes)?),
    };
    st.model.set_training(true);
    let x_neg = negatives(&mut st.model, &sampler, &x0, cond_neg.as_ref(), seed)?;
    let (x_all, cond_all) = if let (Some(wrong), Some(c)) = (&wrong, &cond_neg) {
        let x = Tensor::cat(&[&x_neg, &x_pos.narrow(0, chains, relabelled)?], 0)?;
        (x, Some(Tensor::cat(&[c, &wrong.to_device(device)?.to_dtype(c.dtype())?], 0)?))
    } else {
        (x_neg.clone(), cond_neg.clone())
    };
    let stats = (|| {
        let ce = if classify > 0.0 {
            let x_ce = classifier_view(&x_pos, &cfg.train, &mut st.rng)?;
            let y = y_pos.to_device(device)?;
            Some((cross_entropy(&st.model, &x_ce, &y, classes, cfg.train.classify_temperature)? * classify)?)
        } else {
            None
        };
        update(&st.model, &mut [&mut st.opt], &x_pos, cond_pos.as_ref(), &x_all, cond_all.as_ref(), ml, l2, ce)
    })();
    st.model.set_training(false);
    let stats = stats?;
    st.replay.push(&x_neg, cond_neg.as_ref(), &mut st.rng)?;
    for _ in 0..st.cfg.train.classify_extra_batches {
        hybrid_classifier_step(st, data, device)?;
    }
    st.iter += 1;
    Ok(stats)
}

/// The next training batch of the run's data order, which it advances, dequantised if the run says so: the
/// images' indices, the images and their labels.
fn next_train_batch(st: &mut TrainState<u8>, data: &ImageData) -> Result<(Vec<usize>, Tensor, Tensor)> {
    let DataConfig::Images { dequantize, .. } = st.cfg.data else { bail!("not an image run") };
    let Some(order) = st.data_state else { bail!("an image run keeps its data order in its state") };
    let mut batches = Batches::from_state(data.train.len(), st.cfg.train.batch_size, true, order)?;
    let idx = batches.next_batch();
    st.data_state = Some(batches.state());
    let (x, y) = data.train.batch(&idx, if dequantize { Some(&mut st.rng) } else { None })?;
    Ok((idx, x, y))
}

/// What the cross-entropy sees of the images `x`: shifted and noised as `train.classify_shift` and
/// `train.classify_noise` say (the hybrid's term and the classifier objectives alike).
fn classifier_view(x: &Tensor, t: &TrainLoop, rng: &mut Rng) -> candle_core::Result<Tensor> {
    ebm_data::augment::gaussian_noise(
        &ebm_data::augment::random_shift(x, t.classify_shift, rng)?,
        t.classify_noise,
        rng,
    )
}

/// One cross-entropy-only update of the hybrid (`train.classify_extra_batches`) on the next training batch, with
/// the hybrid's shift, noise, temperature and weight; the spectral norms are refreshed first, as every update does.
fn hybrid_classifier_step(st: &mut TrainState<u8>, data: &ImageData, device: &Device) -> Result<()> {
    let (_, x, y) = next_train_batch(st, data)?;
    let x = classifier_view(&x.to_device(device)?, &st.cfg.train, &mut st.rng)?;
    let y = y.to_device(device)?;
    let (t, classes) = (&st.cfg.train, st.cfg.model.cond_dim());
    st.model.refresh()?;
    st.model.set_training(true);
    let out = (|| {
        let loss = (cross_entropy(&st.model, &x, &y, classes, t.classify_temperature)? * t.classify_weight)?;
        crate::cd::step(&loss, &mut [&mut st.opt])
    })();
    st.model.set_training(false);
    out?;
    Ok(())
}

/// For each label of `y` (`[k]`, integers below `classes`), one drawn uniformly from the other classes.
pub fn wrong_labels(y: &Tensor, classes: usize, rng: &mut Rng) -> Result<Tensor> {
    ensure!(classes >= 2, "a wrong label needs at least 2 classes, got {classes}");
    let y = y.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
    let wrong: Vec<u32> = y.iter().map(|&l| (l + 1 + rng.below(classes as u64 - 1) as u32) % classes as u32).collect();
    Ok(Tensor::from_vec(wrong, y.len(), &Device::Cpu)?)
}

/// One iteration of a classifier baseline on the batch `x` with labels `y`: the cross-entropy of the conditional
/// energies as logits, on the clean batch (`softmax`) or on its PGD adversarial examples (`adversarial`, the attack
/// run against the current weights, frozen); no Langevin, no replay. The statistics report the loss, with the mean
/// energy of the true class as E+ and of the other classes as E-.
fn classifier_iteration(st: &mut TrainState<u8>, x: &Tensor, y: &Tensor) -> Result<IterStats> {
    let classes = st.cfg.model.cond_dim();
    st.opt.cfg.lr = st.cfg.train.lr_at(base_lr(st), st.iter);
    st.model.refresh()?;
    let x = &classifier_view(x, &st.cfg.train, &mut st.rng)?;
    let x_train = match (st.cfg.train.objective, st.cfg.train.adversarial) {
        (Objective::Adversarial, Some(a)) => {
            let p = ebm_eval::robust::Pgd {
                norm: a.norm.norm(),
                eps: a.eps,
                steps: a.steps,
                step_size: a.step_factor * a.eps / a.steps as f32,
                random_start: true,
                loss: ebm_eval::robust::AttackLoss::Ce,
            };
            st.model.set_frozen(true);
            let clf = ebm_eval::robust::EnergyClassifier { energy: &st.model, classes, refine: None };
            let labels = y.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
            let adv = ebm_eval::robust::pgd(&clf, x, &labels, &p, ebm_eval::robust::Through::Ignore, st.rng.next_u64());
            st.model.set_frozen(false);
            adv?
        }
        _ => x.clone(),
    };
    st.model.set_training(true);
    let out = (|| {
        let e = ebm_eval::classify::class_energies(&st.model, &x_train, classes)?; // [B, C]
        let onehot = one_hot(y, classes)?.to_dtype(e.dtype())?;
        let e_true = (&e * &onehot)?.sum(1)?;
        let e_other = ((&e * (1.0 - &onehot)?)?.sum(1)? / (classes.max(2) - 1) as f64)?;
        let loss = crate::cd::cross_entropy_of(&e, y)?;
        let gn = crate::cd::step(&loss, &mut [&mut st.opt])?;
        let f =
            |t: &Tensor| -> candle_core::Result<f32> { t.mean_all()?.to_dtype(candle_core::DType::F32)?.to_scalar() };
        Ok::<_, crate::CdError>(IterStats { e_pos: f(&e_true)?, e_neg: f(&e_other)?, loss: f(&loss)?, grad_norm: gn })
    })();
    st.model.set_training(false);
    let stats = out?;
    st.iter += 1;
    Ok(stats)
}

/// Trains (or continues) an image run, writing metrics, figures and checkpoints into `run`; `hook` (tests) sees
/// the state after every iteration.
pub fn train(
    st: &mut TrainState<u8>,
    data: &ImageData,
    run: &mut RunDir,
    device: &Device,
    hook: Option<StateHook<u8>>,
) -> Result<()> {
    let mut t = SingleModel::new(
        st,
        device,
        |st| iteration(st, data, device),
        |st, run| {
            crate::figures::replay_grid(st, &run.file("samples.png"), device)?;
            crate::figures::curves_of(&run.file("metrics.jsonl"), &run.file("curves.png"))
        },
    );
    match hook {
        Some(h) => crate::driver::run(&mut t, run, Some(&mut |t: &mut SingleModel<u8>| h(t.st))),
        None => crate::driver::run(&mut t, run, None),
    }
}
