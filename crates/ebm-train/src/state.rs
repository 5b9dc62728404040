//! Everything a run needs to continue exactly: model, optimizer, replay buffer, random stream, iteration.
//! Saved as one safetensors file, atomically, so a checkpoint is never half-written.

use crate::config::RunConfig;
use crate::optim::Adam;
use anyhow::Context;
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

pub(crate) fn rng_meta(b: &mut Bundle, key: &str, s: RngState) {
    b.set_meta(key, format!("{} {} {}", s.seed, s.stream, s.words));
}

pub(crate) fn rng_from_meta(b: &Bundle, key: &str, path: &Path) -> anyhow::Result<Rng> {
    let v: Vec<u64> = b
        .meta(path, key)?
        .split(' ')
        .map(|t| t.parse::<u64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: metadata `{key}` is not three integers", path.display()))?;
    anyhow::ensure!(v.len() == 3, "{}: metadata `{key}` is not three integers", path.display());
    Ok(Rng::from_state(RngState { seed: v[0], stream: v[1], words: v[2] }))
}

impl<E: Stored> TrainState<E> {
    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
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
    pub fn load(path: &Path, device: &Device) -> anyhow::Result<Self> {
        let b = Bundle::load(path, device)?;
        anyhow::ensure!(
            b.metadata.get("ebm.format").map(String::as_str) == Some(STATE_FORMAT),
            "{}: not an ebm training checkpoint",
            path.display()
        );
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
        let replay = ReplayBuffer::from_bundle(&b, "replay/", path)?;
        let iter =
            b.meta(path, "iteration")?.parse::<u64>().with_context(|| format!("{}: iteration", path.display()))?;
        let rollbacks =
            b.meta(path, "rollbacks")?.parse::<u32>().with_context(|| format!("{}: rollbacks", path.display()))?;
        let data_state = match b.metadata.get("data_state") {
            Some(s) => Some(serde_json::from_str(s).with_context(|| format!("{}: data_state", path.display()))?),
            None => None,
        };
        Ok(Self { cfg, model, opt, replay, rng: rng_from_meta(&b, "rng", path)?, iter, data_state, rollbacks })
    }
}
