//! Training energies of 2D densities.

use crate::cd::{negatives, update, IterStats};
use crate::config::{DataConfig, RunConfig};
use crate::error::{CdError, Result};
use crate::run_dir::RunDir;
use crate::state::{base_lr, SingleModel, TrainState};
use candle_core::Device;
use ebm_data::Toy2d;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_replay::{Codec, Policy, ReplayBuffer};

/// The toy density a config trains on.
pub fn density(cfg: &RunConfig) -> Result<Toy2d> {
    match &cfg.data {
        DataConfig::Toy2d { name } => name.parse().map_err(|e| CdError::config("data.name", format!("{e}"))),
        other => Err(CdError::Msg(format!("not a toy2d run: data is {other:?}"))),
    }
}

/// A fresh state for `cfg`.
pub fn init_state(cfg: &RunConfig, device: &Device) -> Result<TrainState<f32>> {
    let rng = Rng::new(cfg.seed);
    let model = EnergyNet::new(cfg.model.clone(), &mut rng.fork(1), device)?;
    let opt = crate::optim::Adam::new(model.params().trainable(), cfg.train.adam)?;
    let replay = ReplayBuffer::new(cfg.replay.capacity, &[2], 0, Codec::Uniform256, Policy::Fifo);
    Ok(TrainState { cfg: cfg.clone(), model, opt, replay, rng: rng.fork(2), iter: 0, data_state: None, rollbacks: 0 })
}

/// One training iteration on fresh data; chains start from the buffer with probability 1 - reinit_prob (once it
/// holds a batch), else from uniform noise in the init box.
pub fn iteration(st: &mut TrainState<f32>, toy: Toy2d, device: &Device) -> Result<IterStats> {
    let b = st.cfg.train.batch_size;
    let x_pos = toy.sample_tensor(b, &mut st.rng, device)?;
    let (range, reinit) = (st.cfg.sampler.init_range, st.cfg.replay.reinit_prob);
    let (x0, _) = ebm_sampler::starts::replay_mixed(&st.replay, &mut st.rng, b, &[2], range, None, reinit, device)?;
    let seed = st.rng.next_u64();
    st.opt.cfg.lr = st.cfg.train.lr_at(base_lr(st), st.iter);
    let sampler = st.cfg.sampler.langevin(st.cfg.sampler.steps);
    let x_neg = negatives(&mut st.model, &sampler, &x0, None, seed)?;
    let t = &st.cfg.train;
    let stats = update(&st.model, &mut [&mut st.opt], &x_pos, None, &x_neg, None, t.ml_coeff, t.l2_coeff, None)?;
    st.replay.push(&x_neg, None, &mut st.rng)?;
    st.iter += 1;
    Ok(stats)
}

/// Trains (or continues) a toy run in `run`, with a progress bar, metrics, figures and checkpoints.
pub fn train(st: &mut TrainState<f32>, run: &mut RunDir, device: &Device) -> Result<()> {
    let toy = density(&st.cfg)?;
    let mut t = SingleModel::new(
        st,
        device,
        |st| iteration(st, toy, device),
        |st, run| crate::figures::toy_figure(st, toy, &run.file("density.png"), None, device),
    );
    crate::driver::run(&mut t, run, None)
}
