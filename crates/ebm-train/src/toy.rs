//! Training and evaluating energies of 2D densities.

use crate::cd::{negatives, update, IterStats};
use crate::config::{DataConfig, RunConfig};
use crate::optim::Adam;
use crate::run_dir::RunDir;
use crate::state::{base_lr, TrainState};
use candle_core::{Device, Tensor};
use ebm_data::Toy2d;
use ebm_eval::{mmd2, MmdEstimator};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_replay::{Codec, Policy, ReplayBuffer};
use ebm_sampler::Energy;
use serde::Serialize;

/// The toy density a config trains on.
pub fn density(cfg: &RunConfig) -> anyhow::Result<Toy2d> {
    match &cfg.data {
        DataConfig::Toy2d { name } => Ok(name.parse()?),
        other => anyhow::bail!("not a toy2d run: data is {other:?}"),
    }
}

/// A fresh state for `cfg`.
pub fn init_state(cfg: &RunConfig, device: &Device) -> anyhow::Result<TrainState<f32>> {
    let rng = Rng::new(cfg.seed);
    let model = EnergyNet::new(cfg.model.clone(), &mut rng.fork(1), device)?;
    let opt = Adam::new(model.params().trainable(), cfg.train.adam)?;
    let replay = ReplayBuffer::new(cfg.replay.capacity, &[2], 0, Codec::Uniform256, Policy::Fifo);
    Ok(TrainState { cfg: cfg.clone(), model, opt, replay, rng: rng.fork(2), iter: 0, data_state: None, rollbacks: 0 })
}

/// `n` points uniform in the init box.
pub fn init_noise(cfg: &RunConfig, n: usize, rng: &mut Rng, device: &Device) -> candle_core::Result<Tensor> {
    let [lo, hi] = cfg.sampler.init_range;
    Tensor::from_vec(rng.uniform_vec(2 * n, lo, hi), (n, 2), device)
}

/// Chain starts: from the replay buffer with probability 1 - reinit_prob (once it holds a batch), else noise.
fn chain_starts(st: &mut TrainState<f32>, n: usize, device: &Device) -> candle_core::Result<Tensor> {
    let noise = init_noise(&st.cfg, n, &mut st.rng, device)?;
    if st.replay.len() < n {
        return Ok(noise);
    }
    let idx = st.replay.sample_indices(n, &mut st.rng);
    let (replayed, _) = st.replay.get(&idx, &mut st.rng, device)?;
    let keep: Vec<u8> = (0..n).map(|_| (st.rng.uniform_f64() >= st.cfg.replay.reinit_prob) as u8).collect();
    let keep = Tensor::from_vec(keep, (n, 1), device)?.broadcast_as((n, 2))?;
    keep.where_cond(&replayed, &noise)
}

/// One training iteration on fresh data.
pub fn iteration(st: &mut TrainState<f32>, toy: Toy2d, device: &Device) -> anyhow::Result<IterStats> {
    let b = st.cfg.train.batch_size;
    let x_pos = toy.sample_tensor(b, &mut st.rng, device)?;
    let x0 = chain_starts(st, b, device)?;
    let seed = st.rng.next_u64();
    st.opt.cfg.lr = st.cfg.train.lr_at(base_lr(st), st.iter);
    let sampler = st.cfg.sampler.langevin(st.cfg.sampler.steps);
    let x_neg = negatives(&mut st.model, &sampler, &x0, None, seed)?;
    let t = &st.cfg.train;
    let stats = update(&st.model, &mut [&mut st.opt], &x_pos, None, &x_neg, None, t.ml_coeff, t.l2_coeff)?;
    st.replay.push(&x_neg, None, &mut st.rng)?;
    st.iter += 1;
    Ok(stats)
}

/// Measurements of a trained toy model against its density.
#[derive(Debug, Clone, Serialize)]
pub struct ToyEval {
    pub density: String,
    pub samples: usize,
    pub steps: usize,
    pub bandwidth: f64,
    /// MMD^2 (biased V-statistic) of fresh model samples vs fresh data.
    pub mmd2_model: f64,
    /// MMD^2 of two independent fresh data draws: the finite-sample floor.
    pub mmd2_data_floor: f64,
    /// MMD^2 of the chains' initial noise vs data.
    pub mmd2_init_noise: f64,
}

/// Draws fresh chains (from the init box, not the buffer) for `steps` steps.
pub fn fresh_samples(
    model: &EnergyNet,
    cfg: &RunConfig,
    n: usize,
    steps: usize,
    rng: &mut Rng,
    device: &Device,
) -> anyhow::Result<(Tensor, Tensor)> {
    let x0 = init_noise(cfg, n, rng, device)?;
    let chain = cfg.sampler.langevin(steps).run(model, &x0, None, None, rng.next_u64())?;
    Ok((x0, chain.x))
}

/// Samples fresh chains and compares them with the density by MMD.
pub fn evaluate(
    model: &mut EnergyNet,
    cfg: &RunConfig,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(ToyEval, Tensor)> {
    let toy = density(cfg)?;
    let (n, steps, bw) = (cfg.eval.samples, cfg.eval.steps, cfg.eval.mmd_bandwidth);
    let mut rng = Rng::with_stream(seed, 0xe7a1);
    model.set_frozen(true);
    let (x0, xs) = fresh_samples(model, cfg, n, steps, &mut rng, device)?;
    model.set_frozen(false);
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
    let d1 = flat(&toy.sample_tensor(n, &mut rng, device)?)?;
    let d2 = flat(&toy.sample_tensor(n, &mut rng, device)?)?;
    let ev = ToyEval {
        density: toy.name().to_string(),
        samples: n,
        steps,
        bandwidth: bw,
        mmd2_model: mmd2(&flat(&xs)?, &d1, 2, bw, MmdEstimator::Biased),
        mmd2_data_floor: mmd2(&d2, &d1, 2, bw, MmdEstimator::Biased),
        mmd2_init_noise: mmd2(&flat(&x0)?, &d1, 2, bw, MmdEstimator::Biased),
    };
    Ok((ev, xs))
}

/// Energies of `model` on a `res` x `res` grid over `[lo, hi]^2` (row-major, y from top to bottom).
pub fn energy_grid(model: &EnergyNet, lo: f32, hi: f32, res: usize, device: &Device) -> anyhow::Result<Vec<f32>> {
    let mut pts = Vec::with_capacity(2 * res * res);
    for r in 0..res {
        let y = hi - (r as f32 + 0.5) * (hi - lo) / res as f32;
        for c in 0..res {
            pts.push(lo + (c as f32 + 0.5) * (hi - lo) / res as f32);
            pts.push(y);
        }
    }
    let x = Tensor::from_vec(pts, (res * res, 2), device)?;
    Ok(model.energy(&x, None)?.to_vec1::<f32>()?)
}

/// Trains (or continues) a toy run in `run`, with a progress bar, metrics, figures and checkpoints.
pub fn train(st: &mut TrainState<f32>, run: &mut RunDir, device: &Device) -> anyhow::Result<()> {
    let toy = density(&st.cfg)?;
    crate::driver::run(
        st,
        run,
        device,
        |st| iteration(st, toy, device),
        |st, run| crate::figures::toy_figure(st, toy, &run.file("density.png"), None, device),
        None,
    )
}
