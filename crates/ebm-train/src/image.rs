//! Training image EBMs: the IGEBM recipe as the official code runs it (igebm-reference section 1), with a replay
//! buffer that keeps labels, divergence rollback, and an end-of-run evaluation.

use crate::cd::{negatives, update, IterStats};
use crate::config::{DataConfig, ImageSource, RunConfig};
use crate::driver::Hook;
use crate::optim::Adam;
use crate::run_dir::RunDir;
use crate::state::{base_lr, TrainState};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ebm_data::shapes::ShapesConfig;
use ebm_data::{Batches, ImageSet, Split};
use ebm_eval::{ClassifierConfig, PixelClassifier};
use ebm_kernels::Rng;
use ebm_models::{one_hot, EnergyNet};
use ebm_replay::{Codec, Policy, ReplayBuffer};
use serde::Serialize;
use std::path::PathBuf;

/// The train and test splits of a run's image set.
pub struct ImageData {
    pub train: ImageSet,
    pub test: ImageSet,
}

/// Where a source's files live unless the config says otherwise.
pub fn default_dir(source: ImageSource) -> PathBuf {
    PathBuf::from("data/cache").join(source.dataset())
}

/// The generator settings of a `shapes-*` source: the config's, or the slice where the source's factor varies.
pub fn shapes_config(source: ImageSource, given: Option<&ShapesConfig>) -> Option<ShapesConfig> {
    use ebm_data::dsprites::Factor;
    if !source.is_generated() {
        return None;
    }
    Some(given.cloned().unwrap_or_else(|| match source.factor() {
        Some(Factor::Size) => ShapesConfig::size_varies(),
        Some(Factor::Position) => ShapesConfig::position_varies(),
        Some(Factor::Shape) => ShapesConfig::shape_varies(),
        _ => ShapesConfig::rotation_varies(),
    }))
}

/// Loads the image set a config names, with a hint on how to get it when it is missing.
///
/// A model conditioned on continuous latents (DspritesNet) needs a source with factors (`dsprites-*`,
/// `shapes-*`) whose condition vector has the model's length; a class-conditional one takes the labels.
pub fn load_data(cfg: &RunConfig) -> anyhow::Result<ImageData> {
    let DataConfig::Images { source, dir, shapes, .. } = &cfg.data else { anyhow::bail!("not an image run") };
    let dir = dir.clone().unwrap_or_else(|| default_dir(*source));
    let hint = || format!("(get it with `cargo xtask fetch-data {}`, or set data.dir)", source.dataset());
    let continuous = cfg.model.cond_dim() > 0 && !cfg.model.is_class_conditional();
    if continuous {
        let factor = source.factor().ok_or_else(|| {
            anyhow::anyhow!(
                "the model `{}` is conditioned on {} continuous latents, but `{}` has no factors to condition on \
                 (use a dsprites-* or shapes-* source)",
                cfg.model.arch_name(),
                cfg.model.cond_dim(),
                source.name()
            )
        })?;
        anyhow::ensure!(
            factor.cond_dim() == cfg.model.cond_dim(),
            "the model `{}` takes {} continuous latents but `{}` conditions on the {} ({} values)",
            cfg.model.arch_name(),
            cfg.model.cond_dim(),
            source.name(),
            factor.name(),
            factor.cond_dim()
        );
    }
    let (train, test) = match source {
        ImageSource::Digits => ebm_data::digits::train_test(),
        s if s.is_generated() => {
            let sc = shapes_config(*s, shapes.as_ref()).expect("a generated source");
            sc.generate(s.name())?
        }
        s if s.dataset() == "dsprites" => {
            // dSprites has no test split: evaluation conditions come from every 500th training image
            let train = ebm_data::sources::load(s.dataset(), &dir, Split::Train).with_context(hint)?;
            let every: Vec<usize> = (0..train.len()).step_by(500).collect();
            let test = train.subset(&every)?.with_name("dsprites-every-500th");
            (train, test)
        }
        other => (
            ebm_data::sources::load(other.dataset(), &dir, Split::Train).with_context(hint)?,
            ebm_data::sources::load(other.dataset(), &dir, Split::Test).with_context(hint)?,
        ),
    };
    let want = cfg.model.input_shape();
    anyhow::ensure!(
        train.shape()[..] == want[..],
        "data `{}` has images of shape {:?} but the model `{}` takes {:?}",
        source.name(),
        train.shape(),
        cfg.model.arch_name(),
        want
    );
    let classes = cfg.model.cond_dim();
    anyhow::ensure!(
        continuous || classes == 0 || classes == train.num_classes(),
        "the model is conditioned on {classes} classes but `{}` has {}",
        source.name(),
        train.num_classes()
    );
    Ok(ImageData { train, test })
}

/// The condition vectors `[B, cond_dim]` of the training images at `idx`: one-hot labels for a class-conditional
/// model, the source's factor (`ebm_data::dsprites::Factor`) for a continuous one, `None` for an unconditional one.
pub fn conditions(cfg: &RunConfig, set: &ImageSet, labels: &Tensor, idx: &[usize]) -> anyhow::Result<Option<Tensor>> {
    let d = cfg.model.cond_dim();
    if d == 0 {
        return Ok(None);
    }
    if cfg.model.is_class_conditional() {
        return Ok(Some(one_hot(labels, d)?));
    }
    let DataConfig::Images { source, .. } = &cfg.data else { anyhow::bail!("not an image run") };
    let factor = source.factor().ok_or_else(|| anyhow::anyhow!("`{}` has no factors", source.name()))?;
    Ok(Some(factor.batch(set, idx)?))
}

/// A fresh state for `cfg`.
pub fn init_state(cfg: &RunConfig, data: &ImageData, device: &Device) -> anyhow::Result<TrainState<u8>> {
    let rng = Rng::new(cfg.seed);
    let model = EnergyNet::new(cfg.model.clone(), &mut rng.fork(1), device)?;
    let opt = Adam::new(model.params().trainable(), cfg.train.adam)?;
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

/// `n` images of `shape` drawn uniformly in `range` (the starts of fresh chains), `[n, ...shape]`.
pub fn uniform_images(
    n: usize,
    shape: &[usize],
    range: [f32; 2],
    rng: &mut Rng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let per: usize = shape.iter().product();
    let dims: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    Tensor::from_vec(rng.uniform_vec(n * per, range[0], range[1]), dims, device)
}

/// The starts of `b` negative chains and their conditions: replayed chains under their stored conditions, except
/// a fraction `reinit_prob` (drawn per chain) that start from uniform noise under the batch's conditions
/// `cond_pos`; all from noise while the buffer holds fewer than `b`.
pub(crate) fn chain_starts(
    replay: &ReplayBuffer<u8>,
    rng: &mut Rng,
    b: usize,
    shape: &[usize],
    cond_pos: Option<&Tensor>,
    reinit_prob: f64,
    device: &Device,
) -> anyhow::Result<(Tensor, Option<Tensor>)> {
    let noise = uniform_images(b, shape, [0.0, 1.0], rng, device)?;
    if replay.len() < b {
        return Ok((noise, cond_pos.cloned()));
    }
    let ridx = replay.sample_indices(b, rng);
    let (xr, cr) = replay.get(&ridx, rng, device)?;
    let keep: Vec<u8> = (0..b).map(|_| (rng.uniform_f64() >= reinit_prob) as u8).collect();
    let keep = Tensor::from_vec(keep, b, device)?;
    let mut kshape = vec![b];
    kshape.extend(std::iter::repeat_n(1, shape.len()));
    let x0 = keep.reshape(kshape.as_slice())?.broadcast_as(noise.shape())?.where_cond(&xr, &noise)?;
    let c = match (cr, cond_pos) {
        (Some(cr), Some(cp)) => Some(keep.reshape((b, 1))?.broadcast_as(cp.shape())?.where_cond(&cr, cp)?),
        _ => None,
    };
    Ok((x0, c))
}

/// One iteration: a data batch, chain starts (95% replay under their stored conditions, 5% noise under the batch's
/// conditions), negatives, the update, and the negatives into the buffer. Conditions are one-hot labels or
/// continuous factors ([`conditions`]); the buffer stores either as float vectors.
pub fn iteration(st: &mut TrainState<u8>, data: &ImageData, device: &Device) -> anyhow::Result<IterStats> {
    let cfg = &st.cfg;
    let (b, shape) = (cfg.train.batch_size, cfg.model.input_shape());
    let DataConfig::Images { dequantize, .. } = cfg.data else { anyhow::bail!("not an image run") };
    let mut batches =
        Batches::from_state(data.train.len(), b, true, st.data_state.expect("image runs keep a data state"))?;
    let idx = batches.next_batch();
    st.data_state = Some(batches.state());
    let (x_pos, y_pos) = data.train.batch(&idx, if dequantize { Some(&mut st.rng) } else { None })?;
    let x_pos = x_pos.to_device(device)?;
    let cond_pos = conditions(cfg, &data.train, &y_pos, &idx)?.map(|c| c.to_device(device)).transpose()?;
    let (x0, cond_neg) =
        chain_starts(&st.replay, &mut st.rng, b, &shape, cond_pos.as_ref(), cfg.replay.reinit_prob, device)?;
    let seed = st.rng.next_u64();
    st.opt.cfg.lr = st.cfg.train.lr_at(base_lr(st), st.iter);
    let sampler = cfg.sampler.langevin(cfg.sampler.steps);
    let (ml, l2) = (cfg.train.ml_coeff, cfg.train.l2_coeff);
    st.model.set_training(true);
    let x_neg = negatives(&mut st.model, &sampler, &x0, cond_neg.as_ref(), seed)?;
    let stats = update(&st.model, &mut [&mut st.opt], &x_pos, cond_pos.as_ref(), &x_neg, cond_neg.as_ref(), ml, l2);
    st.model.set_training(false);
    let stats = stats?;
    st.replay.push(&x_neg, cond_neg.as_ref(), &mut st.rng)?;
    st.iter += 1;
    Ok(stats)
}

/// Trains (or continues) an image run, writing metrics, figures and checkpoints into `run`.
pub fn train(
    st: &mut TrainState<u8>,
    data: &ImageData,
    run: &mut RunDir,
    device: &Device,
    hook: Option<Hook<u8>>,
) -> anyhow::Result<()> {
    crate::driver::run(
        st,
        run,
        device,
        |st| iteration(st, data, device),
        |st, run| {
            crate::figures::replay_grid(st, &run.file("samples.png"), device)?;
            crate::figures::curves(&run.file("metrics.jsonl"), &run.file("curves.png"))
        },
        hook,
    )
}

/// What an image run measures at its end.
#[derive(Debug, Clone, Serialize)]
pub struct ImageEval {
    /// Held-out accuracy of `argmin_y E(x, y)` on the test split (conditional models).
    pub heldout_accuracy: Option<f64>,
    pub test_images: usize,
    /// Fraction of fresh class-conditional samples that the judge classifier labels as the class asked for.
    pub conditional_sample_accuracy: Option<f64>,
    pub samples_per_class: usize,
    pub sample_steps: usize,
    /// The judge's own accuracy on the test split.
    pub judge_test_accuracy: f64,
}

/// Fresh chains from uniform noise: `per_class` per class (or `per_class` unconditional), `steps` steps.
pub fn fresh_samples(
    model: &mut EnergyNet,
    cfg: &RunConfig,
    per_class: usize,
    steps: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(Tensor, Vec<u32>)> {
    let mut rng = Rng::with_stream(seed, 0x5a);
    let sampler = cfg.sampler.langevin(steps);
    model.set_frozen(true);
    let out = fresh_per_class(model, &sampler, [0.0, 1.0], cfg.model.cond_dim(), per_class, &mut rng, device);
    model.set_frozen(false);
    out
}

/// Chains of `sampler` from uniform noise in `range`, `per_class` under each of `classes` one-hot labels (or
/// `per_class` unconditioned when `classes` is 0), with their labels; each class's starts and chain seed come from
/// `rng` in turn. The model should be frozen.
pub fn fresh_per_class(
    model: &EnergyNet,
    sampler: &ebm_sampler::Langevin,
    range: [f32; 2],
    classes: usize,
    per_class: usize,
    rng: &mut Rng,
    device: &Device,
) -> anyhow::Result<(Tensor, Vec<u32>)> {
    let shape = model.config().input_shape();
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes.max(1) {
        let x0 = uniform_images(per_class, &shape, range, rng, device)?;
        let y = vec![c as u32; per_class];
        let cond =
            if classes > 0 { Some(one_hot(&Tensor::from_slice(&y, per_class, device)?, classes)?) } else { None };
        xs.push(sampler.run(model, &x0, cond.as_ref(), None, rng.next_u64())?.x);
        labels.extend(y);
    }
    Ok((Tensor::cat(&xs, 0)?, labels))
}

/// Held-out classification, and conditional samples judged by a classifier trained on the train split.
pub fn evaluate(
    model: &mut EnergyNet,
    cfg: &RunConfig,
    data: &ImageData,
    device: &Device,
) -> anyhow::Result<(ImageEval, Tensor)> {
    let classes = cfg.model.cond_dim();
    let all: Vec<usize> = (0..data.test.len()).collect();
    let (x_test, y_test) = data.test.batch(&all, None)?;
    let y_test = y_test.to_vec1::<u32>()?;
    let heldout = if classes > 0 {
        let pred = ebm_eval::classify::predict(&*model, &x_test.to_device(device)?, classes, 256)?;
        Some(ebm_eval::classify::accuracy(&pred, &y_test))
    } else {
        None
    };
    let tr: Vec<usize> = (0..data.train.len()).collect();
    let (x_train, y_train) = data.train.batch(&tr, None)?;
    let judge = PixelClassifier::train(
        &x_train,
        &y_train.to_vec1::<u32>()?,
        data.train.num_classes(),
        ClassifierConfig::default(),
    )?;
    let judge_acc = judge.accuracy(&x_test, &y_test)?;
    let (per, steps) = (cfg.eval.per_class, cfg.eval.steps);
    let (samples, labels) = fresh_samples(model, cfg, per, steps, cfg.seed ^ 0xe7a1, device)?;
    let cond_acc = if classes > 0 {
        Some(judge.accuracy(&samples.to_device(&Device::Cpu)?.to_dtype(DType::F32)?, &labels)?)
    } else {
        None
    };
    let ev = ImageEval {
        heldout_accuracy: heldout,
        test_images: data.test.len(),
        conditional_sample_accuracy: cond_acc,
        samples_per_class: per,
        sample_steps: steps,
        judge_test_accuracy: judge_acc,
    };
    Ok((ev, samples))
}
