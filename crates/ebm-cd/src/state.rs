//! Everything a run needs to continue exactly: model, optimizer, replay buffer, random stream, iteration.
//! Saved as one safetensors file, atomically, so a checkpoint is never half-written.

use crate::cd::IterStats;
use crate::config::{RunConfig, TrainLoop};
use crate::driver::Trainer;
use crate::error::{CdError, Result};
use crate::optim::Adam;
use crate::run_dir::RunDir;
use candle_core::Device;
use ebm_io::Bundle;
use ebm_kernels::{Rng, RngState};
use ebm_models::EnergyNet;
use ebm_replay::{ReplayBuffer, Stored};
use std::path::Path;

/// Format tag of training-state files.
pub const STATE_FORMAT: &str = "ebm-train-state/1";

/// The complete state of a training run.
pub struct TrainState<E: Stored> {
    pub cfg: RunConfig,
    pub model: EnergyNet,
    pub opt: Adam,
    pub replay: ReplayBuffer<E>,
    pub rng: Rng,
    /// Iterations completed.
    pub iter: u64,
    /// Position in the shuffled data order (image runs).
    pub data_state: Option<ebm_data::BatchState>,
    /// Times training has rolled back after diverging.
    pub rollbacks: u32,
}

/// The learning rate the schedule starts from: the config's, halved at every rollback.
pub fn base_lr<E: Stored>(st: &TrainState<E>) -> f64 {
    st.cfg.train.adam.lr * 0.5f64.powi(st.rollbacks as i32)
}

/// Stores a generator's state in metadata `key` of a checkpoint.
pub fn rng_meta(b: &mut Bundle, key: &str, s: RngState) {
    b.set_meta(key, format!("{} {} {}", s.seed, s.stream, s.words));
}

/// The generator stored by [`rng_meta`] under `key`; `path` names the file in errors.
pub fn rng_from_meta(b: &Bundle, key: &str, path: &Path) -> Result<Rng> {
    let bad = || CdError::checkpoint(path, format!("metadata `{key}` is not three integers"));
    let v: Vec<u64> = b
        .meta(path, key)?
        .split(' ')
        .map(|t| t.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    if v.len() != 3 {
        return Err(bad());
    }
    Ok(Rng::from_state(RngState { seed: v[0], stream: v[1], words: v[2] }))
}

/// A number in the metadata of a checkpoint.
pub fn meta_number<T: std::str::FromStr>(b: &Bundle, key: &str, path: &Path) -> Result<T> {
    b.meta(path, key)?.parse::<T>().map_err(|_| CdError::checkpoint(path, format!("metadata `{key}` is not a number")))
}

impl<E: Stored> TrainState<E> {
    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(name) = self.model.params().first_non_finite()? {
            return Err(CdError::checkpoint(
                path,
                format!("not written: parameter `{name}` holds non-finite values (NaN or infinity)"),
            ));
        }
        let mut b = Bundle::new();
        for (name, slot) in self.model.params().iter() {
            b.insert(format!("model/{name}"), slot.var.as_tensor().clone());
        }
        self.opt.to_bundle(&mut b, "adam/")?;
        self.replay.to_bundle(&mut b, "replay/")?;
        b.set_meta("ebm.format", STATE_FORMAT);
        b.set_meta(ebm_models::net::CONFIG_KEY, serde_json::to_string(self.model.config())?);
        b.set_meta("run_config", self.cfg.to_toml());
        b.set_meta("iteration", self.iter.to_string());
        b.set_meta("rollbacks", self.rollbacks.to_string());
        if let Some(d) = &self.data_state {
            b.set_meta("data_state", serde_json::to_string(d)?);
        }
        rng_meta(&mut b, "rng", self.rng.state());
        rng_meta(&mut b, "dropout_rng", self.model.dropout_rng().lock().expect("dropout rng").state());
        b.save(path)?;
        Ok(())
    }

    /// Reads a state written by [`TrainState::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let b = Bundle::load(path, device)?;
        if b.metadata.get("ebm.format").map(String::as_str) != Some(STATE_FORMAT) {
            return Err(CdError::checkpoint(path, "not an ebm training checkpoint"));
        }
        let cfg = RunConfig::from_toml(b.meta(path, "run_config")?, &format!("{} (run_config)", path.display()))?;
        let mut model_bundle = Bundle::new();
        for (k, t) in &b.tensors {
            if let Some(name) = k.strip_prefix("model/") {
                model_bundle.insert(name, t.clone());
            }
        }
        model_bundle.set_meta(ebm_models::net::FORMAT_KEY, ebm_models::net::FORMAT);
        model_bundle.set_meta(ebm_models::net::CONFIG_KEY, b.meta(path, ebm_models::net::CONFIG_KEY)?);
        let model = EnergyNet::from_bundle(&model_bundle, path)?;
        *model.dropout_rng().lock().expect("dropout rng") = rng_from_meta(&b, "dropout_rng", path)?;
        let mut opt = Adam::new(model.params().trainable(), cfg.train.adam)?;
        opt.load_bundle(&b, "adam/", path)?;
        if &cfg.model != model.config() {
            return Err(CdError::checkpoint(path, "its run config describes another model than its weights"));
        }
        let replay = ReplayBuffer::from_bundle(&b, "replay/", path)?;
        if replay.sample_shape() != cfg.model.input_shape().as_slice() || replay.cond_dim() != cfg.model.cond_dim() {
            return Err(CdError::checkpoint(
                path,
                format!(
                    "its replay buffer holds samples {:?} with {} conditions, its model takes {:?} with {}",
                    replay.sample_shape(),
                    replay.cond_dim(),
                    cfg.model.input_shape(),
                    cfg.model.cond_dim()
                ),
            ));
        }
        if replay.capacity() != cfg.replay.capacity {
            return Err(CdError::checkpoint(
                path,
                format!(
                    "its replay buffer has capacity {}, its run config says {}",
                    replay.capacity(),
                    cfg.replay.capacity
                ),
            ));
        }
        let iter = meta_number::<u64>(&b, "iteration", path)?;
        let rollbacks = meta_number::<u32>(&b, "rollbacks", path)?;
        let data_state = match b.metadata.get("data_state") {
            Some(s) => Some(
                serde_json::from_str(s)
                    .map_err(|e| CdError::checkpoint(path, format!("metadata `data_state`: {e}")))?,
            ),
            None => None,
        };
        Ok(Self { cfg, model, opt, replay, rng: rng_from_meta(&b, "rng", path)?, iter, data_state, rollbacks })
    }
}

/// One model trained by the driver: its state, how it steps, and the figures it draws.
pub struct SingleModel<'a, E: Stored> {
    pub st: &'a mut TrainState<E>,
    device: &'a Device,
    step: StepFn<'a, E>,
    figures: FiguresFn<'a, E>,
}

/// One iteration of a [`SingleModel`].
type StepFn<'a, E> = Box<dyn FnMut(&mut TrainState<E>) -> Result<IterStats> + 'a>;
/// The figures of a [`SingleModel`].
type FiguresFn<'a, E> = Box<dyn FnMut(&TrainState<E>, &RunDir) -> Result<()> + 'a>;
/// Test-only fault injection into a single-model run: called after each iteration with the state.
pub type StateHook<'a, E> = &'a mut dyn FnMut(&mut TrainState<E>);

impl<'a, E: Stored> SingleModel<'a, E> {
    /// `st` trained by `step` (one iteration), drawing `figures` into the run folder.
    pub fn new(
        st: &'a mut TrainState<E>,
        device: &'a Device,
        step: impl FnMut(&mut TrainState<E>) -> Result<IterStats> + 'a,
        figures: impl FnMut(&TrainState<E>, &RunDir) -> Result<()> + 'a,
    ) -> Self {
        Self { st, device, step: Box::new(step), figures: Box::new(figures) }
    }
}

impl<E: Stored> Trainer for SingleModel<'_, E> {
    fn label(&self) -> String {
        self.st.cfg.name.clone()
    }
    fn done(&self) -> u64 {
        self.st.iter
    }
    fn schedule(&self) -> &TrainLoop {
        &self.st.cfg.train
    }
    fn step(&mut self) -> Result<IterStats> {
        (self.step)(self.st)
    }
    fn lr(&self) -> f64 {
        self.st.opt.cfg.lr
    }
    fn base_lr(&self) -> f64 {
        base_lr(self.st)
    }
    fn rollbacks(&self) -> u32 {
        self.st.rollbacks
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.st.save(path)
    }
    fn restore(&mut self, path: &Path, rollbacks: u32) -> Result<()> {
        let iterations = self.st.cfg.train.iterations;
        *self.st = TrainState::load(path, self.device)?;
        self.st.cfg.train.iterations = iterations;
        self.st.rollbacks = rollbacks; // halves the learning rate from here on (`base_lr`)
        Ok(())
    }
    fn figures(&mut self, run: &RunDir) -> Result<()> {
        (self.figures)(self.st, run)
    }
    fn save_models(&mut self, run: &RunDir) -> Result<()> {
        let meta = [(ebm_models::net::RUN_CONFIG_KEY, self.st.cfg.to_toml())];
        Ok(self.st.model.save_with(&run.file("model.safetensors"), &meta)?)
    }
    fn non_finite(&self) -> Result<Option<String>> {
        Ok(self.st.model.params().first_non_finite()?.map(String::from))
    }
}
