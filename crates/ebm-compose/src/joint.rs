//! Joint fine-tuning of the composition experiment's two models, as the official `ebm_combine.py gentest` does
//! (igebm-reference 4.5): contrastive divergence on the *sum* `E_s(x | s) + E_p(x | pos)`, each model still
//! conditioned on its own factor only, over the union of the two training slices (squares of every scale at the
//! centre, squares of scale 0.75 everywhere). No image of a held-out (scale, position) pair is seen; what the
//! sum learns is which part of an image each model has to explain, so that the other can vary freely.
//!
//! Negative chains run the sum with one sampler (the size model's run config), the same noise for both models;
//! the replay buffer keeps the joint condition `[scale, x, y]`. The state (both models, both optimizers, the
//! buffer, the random stream and both data orders) is checkpointed atomically, so an interrupted fine-tune
//! continues exactly where it stopped.

use candle_core::{Device, Tensor};
use ebm_cd::cd::{update, IterStats};
use ebm_cd::config::{RunConfig, TrainLoop};
use ebm_cd::driver::Trainer;
use ebm_cd::error::fs_err;
use ebm_cd::image::load_data;
use ebm_cd::optim::Adam;
use ebm_cd::run_dir::RunDir;
use ebm_cd::state::{meta_number, rng_from_meta, rng_meta};
use ebm_cd::{ensure, CdError, Context, Result, Run};
use ebm_data::dsprites::Factor;
use ebm_data::{BatchState, Batches, ImageData, ImageSet};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_replay::{Codec, Policy, ReplayBuffer};
use ebm_sampler::Energy;
use std::path::{Path, PathBuf};

/// Format tag of a joint fine-tuning checkpoint.
pub const JOINT_FORMAT: &str = "ebm-joint-state/1";

/// The two models as one energy over the joint condition `[scale, x, y]`: `E_s(x | scale) + E_p(x | x, y)`.
pub struct PairEnergy<'a> {
    pub size: &'a EnergyNet,
    pub position: &'a EnergyNet,
}

impl PairEnergy<'_> {
    fn split(cond: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        let c = cond.ok_or_else(|| candle_core::Error::Msg("the joint energy needs a [B, 3] condition".into()))?;
        if c.dims().len() != 2 || c.dims()[1] != 3 {
            candle_core::bail!("the joint energy takes conditions [B, 3] (scale, x, y), got {:?}", c.dims());
        }
        Ok((c.narrow(1, 0, 1)?, c.narrow(1, 1, 2)?))
    }
}

impl Energy for PairEnergy<'_> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (s, p) = Self::split(cond)?;
        self.size.energy(x, Some(&s))? + self.position.energy(x, Some(&p))?
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        let (s, p) = Self::split(cond)?;
        let (es, gs) = self.size.energy_and_grad(x, Some(&s))?;
        let (ep, gp) = self.position.energy_and_grad(x, Some(&p))?;
        Ok(((es + ep)?, (gs + gp)?))
    }
}

/// Everything a joint fine-tune needs to continue exactly.
pub struct JointState {
    pub size: EnergyNet,
    pub position: EnergyNet,
    size_opt: Adam,
    position_opt: Adam,
    replay: ReplayBuffer<u8>,
    rng: Rng,
    /// Iterations completed.
    pub iter: u64,
    /// Times the fine-tune has rolled back after diverging (each halves the learning rates).
    pub rollbacks: u32,
    /// Data order of the size slice and of the position slice.
    orders: [BatchState; 2],
}

/// The two training slices and the models' run configs.
pub struct JointSetup {
    pub size_cfg: RunConfig,
    pub position_cfg: RunConfig,
    size_data: ImageData,
    position_data: ImageData,
}

/// The joint conditions `[B, 3]` (scale, x, y) of the images at `idx`, from the set's generator latents.
fn joint_conditions(set: &ImageSet, idx: &[usize]) -> Result<Tensor> {
    Ok(Tensor::cat(&[Factor::Size.batch(set, idx)?, Factor::Position.batch(set, idx)?], 1)?)
}

impl JointSetup {
    /// Reads both run configs and generates (or loads) both slices.
    pub fn new(size_cfg: RunConfig, position_cfg: RunConfig) -> Result<Self> {
        ensure!(
            size_cfg.model.input_shape() == position_cfg.model.input_shape(),
            "the size and position models take images of different shapes ({:?} and {:?})",
            size_cfg.model.input_shape(),
            position_cfg.model.input_shape()
        );
        ensure!(
            size_cfg.train.batch_size >= 2,
            "joint fine-tuning draws half of each batch from each slice: batch_size must be at least 2"
        );
        let size_data = load_data(&size_cfg).context("the size model's data")?;
        let position_data = load_data(&position_cfg).context("the position model's data")?;
        for d in [&size_data.train, &position_data.train] {
            joint_conditions(d, &[0])
                .with_context(|| format!("{}: joint fine-tuning needs factor latents", d.name()))?;
        }
        Ok(Self { size_cfg, position_cfg, size_data, position_data })
    }

    fn half(&self) -> usize {
        self.size_cfg.train.batch_size / 2
    }

    /// A fresh state from the two separately trained models.
    pub fn init(&self, size: EnergyNet, position: EnergyNet, seed: u64) -> Result<JointState> {
        let rng = Rng::with_stream(seed, 0x10);
        let shape = self.size_cfg.model.input_shape();
        let replay = ReplayBuffer::new(self.size_cfg.replay.capacity, &shape, 3, Codec::Uniform256, Policy::Fifo);
        let h = self.half();
        let orders = [
            Batches::new(self.size_data.train.len(), h, true, rng.fork(1).next_u64())?.state(),
            Batches::new(self.position_data.train.len(), h, true, rng.fork(2).next_u64())?.state(),
        ];
        Ok(JointState {
            size_opt: Adam::new(size.params().trainable(), self.size_cfg.train.adam)?,
            position_opt: Adam::new(position.params().trainable(), self.position_cfg.train.adam)?,
            size,
            position,
            replay,
            rng: rng.fork(3),
            iter: 0,
            rollbacks: 0,
            orders,
        })
    }

    /// One iteration: half a batch from each slice under its joint conditions, negatives from the sum (replayed
    /// or fresh, as in single-model training), the CD + L2 loss on the summed energies, a step of each optimizer.
    pub fn iteration(&self, st: &mut JointState, total: u64, device: &Device) -> Result<IterStats> {
        let cfg = &self.size_cfg;
        let (h, shape) = (self.half(), cfg.model.input_shape());
        let mut xs = Vec::with_capacity(2);
        let mut cs = Vec::with_capacity(2);
        for (k, set) in [&self.size_data.train, &self.position_data.train].into_iter().enumerate() {
            let mut batches = Batches::from_state(set.len(), h, true, st.orders[k])?;
            let idx = batches.next_batch();
            st.orders[k] = batches.state();
            xs.push(set.batch(&idx, None)?.0);
            cs.push(joint_conditions(set, &idx)?);
        }
        let x_pos = Tensor::cat(&xs, 0)?.to_device(device)?;
        let cond_pos = Tensor::cat(&cs, 0)?.to_device(device)?;
        let b = 2 * h;
        let (x0, cond_neg) = ebm_sampler::starts::replay_mixed(
            &st.replay,
            &mut st.rng,
            b,
            &shape,
            [0.0, 1.0],
            Some(&cond_pos),
            cfg.replay.reinit_prob,
            device,
        )?;
        let Some(cond_neg) = cond_neg else { ebm_cd::bail!("joint chains are conditioned") };
        let seed = st.rng.next_u64();
        let sampler = cfg.sampler.langevin(cfg.sampler.steps);
        for m in [&mut st.size, &mut st.position] {
            m.refresh()?;
            m.set_frozen(true);
        }
        let chain =
            sampler.run(&PairEnergy { size: &st.size, position: &st.position }, &x0, Some(&cond_neg), None, seed);
        st.size.set_frozen(false);
        st.position.set_frozen(false);
        let x_neg = chain?.x;
        // each model's own schedule, stretched over the fine-tune's `total` iterations, halved at each rollback
        let halving = 0.5f64.powi(st.rollbacks as i32);
        for (opt, c) in [(&mut st.size_opt, &cfg.train), (&mut st.position_opt, &self.position_cfg.train)] {
            let schedule = TrainLoop { iterations: total, ..c.clone() };
            opt.cfg.lr = schedule.lr_at(c.adam.lr * halving, st.iter.min(total));
        }
        let pair = PairEnergy { size: &st.size, position: &st.position };
        let (ml, l2) = (cfg.train.ml_coeff, cfg.train.l2_coeff);
        let opts = &mut [&mut st.size_opt, &mut st.position_opt];
        let stats = update(&pair, opts, &x_pos, Some(&cond_pos), &x_neg, Some(&cond_neg), ml, l2, None)?;
        st.replay.push(&x_neg, Some(&cond_neg), &mut st.rng)?;
        st.iter += 1;
        Ok(stats)
    }
}

impl JointState {
    /// Writes the state to `path` atomically, with `sources` (the separately trained models it started from).
    pub fn save(&self, path: &Path, sources: &str) -> Result<()> {
        for m in [&self.size, &self.position] {
            if let Some(name) = m.params().first_non_finite()? {
                return Err(CdError::checkpoint(path, format!("not written: parameter `{name}` is non-finite")));
            }
        }
        let mut b = Bundle::new();
        b.set_meta("sources", sources);
        for (prefix, m) in [("size/", &self.size), ("position/", &self.position)] {
            for (name, slot) in m.params().iter() {
                b.insert(format!("{prefix}{name}"), slot.var.as_tensor().clone());
            }
        }
        self.size_opt.to_bundle(&mut b, "adam_size/")?;
        self.position_opt.to_bundle(&mut b, "adam_position/")?;
        self.replay.to_bundle(&mut b, "replay/")?;
        b.set_meta("ebm.format", JOINT_FORMAT);
        b.set_meta("iteration", self.iter.to_string());
        b.set_meta("rollbacks", self.rollbacks.to_string());
        b.set_meta("data_orders", serde_json::to_string(&self.orders)?);
        rng_meta(&mut b, "rng", self.rng.state());
        b.save(path)?;
        Ok(())
    }

    /// Continues `self` (built by [`JointSetup::init`] from the models named by `sources`) from a checkpoint
    /// written by [`JointState::save`]; a checkpoint of a fine-tune of other models is refused.
    pub fn restore(&mut self, path: &Path, sources: &str, device: &Device) -> Result<()> {
        let b = Bundle::load(path, device)?;
        if b.metadata.get("ebm.format").map(String::as_str) != Some(JOINT_FORMAT) {
            return Err(CdError::checkpoint(path, "not a joint fine-tuning checkpoint"));
        }
        let theirs = b.meta(path, "sources")?;
        if theirs != sources {
            return Err(CdError::checkpoint(
                path,
                format!("a joint fine-tune of {theirs}, not of {sources}; choose another --out or remove that folder"),
            ));
        }
        self.size.load_tensors_prefixed(&b, "size/", path)?;
        self.position.load_tensors_prefixed(&b, "position/", path)?;
        self.size_opt.load_bundle(&b, "adam_size/", path)?;
        self.position_opt.load_bundle(&b, "adam_position/", path)?;
        self.replay = ReplayBuffer::from_bundle(&b, "replay/", path)?;
        self.iter = meta_number(&b, "iteration", path)?;
        self.rollbacks = if b.metadata.contains_key("rollbacks") { meta_number(&b, "rollbacks", path)? } else { 0 };
        self.orders = serde_json::from_str(b.meta(path, "data_orders")?)
            .map_err(|e| CdError::checkpoint(path, format!("metadata `data_orders`: {e}")))?;
        self.rng = rng_from_meta(&b, "rng", path)?;
        Ok(())
    }
}

/// The run folders of the fine-tuned pair inside `out`.
pub fn pair_dirs(out: &Path) -> (PathBuf, PathBuf) {
    (out.join("size"), out.join("position"))
}

/// A joint fine-tune driven by [`ebm_cd::driver::run`].
struct JointRun<'a> {
    setup: &'a JointSetup,
    st: JointState,
    schedule: TrainLoop,
    sources: String,
    out: PathBuf,
    device: &'a Device,
}

impl Trainer for JointRun<'_> {
    fn label(&self) -> String {
        "joint fine-tune".into()
    }
    fn done(&self) -> u64 {
        self.st.iter
    }
    fn schedule(&self) -> &TrainLoop {
        &self.schedule
    }
    fn step(&mut self) -> Result<IterStats> {
        self.setup.iteration(&mut self.st, self.schedule.iterations, self.device)
    }
    fn lr(&self) -> f64 {
        self.st.size_opt.cfg.lr
    }
    fn base_lr(&self) -> f64 {
        self.setup.size_cfg.train.adam.lr * 0.5f64.powi(self.st.rollbacks as i32)
    }
    fn rollbacks(&self) -> u32 {
        self.st.rollbacks
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.st.save(path, &self.sources)
    }
    fn restore(&mut self, path: &Path, rollbacks: u32) -> Result<()> {
        self.st.restore(path, &self.sources, self.device)?;
        self.st.rollbacks = rollbacks;
        Ok(())
    }
    fn non_finite(&self) -> Result<Option<String>> {
        for (which, m) in [("size", &self.st.size), ("position", &self.st.position)] {
            if let Some(p) = m.params().first_non_finite()? {
                return Ok(Some(format!("{which} model's {p}")));
            }
        }
        Ok(None)
    }
    fn figures(&mut self, run: &RunDir) -> Result<()> {
        ebm_cd::figures::curves_of(&run.file("metrics.jsonl"), &run.file("curves.png"))
    }
    fn save_models(&mut self, _run: &RunDir) -> Result<()> {
        let (size_out, position_out) = pair_dirs(&self.out);
        let iterations = self.schedule.iterations;
        let setup = self.setup;
        for (dir, m, cfg) in
            [(&size_out, &self.st.size, &setup.size_cfg), (&position_out, &self.st.position, &setup.position_cfg)]
        {
            std::fs::create_dir_all(dir).map_err(fs_err(dir))?;
            let mut cfg = cfg.clone();
            cfg.name = format!("{}-joint", cfg.name);
            cfg.description = format!(
                "{} Fine-tuned jointly with its partner for {iterations} iterations (ebm-train compose-shapes \
                 --joint-iterations).",
                cfg.description
            );
            ebm_io::write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
            m.save_with(&dir.join("model.safetensors"), &[(ebm_models::net::RUN_CONFIG_KEY, cfg.to_toml())])?;
        }
        Ok(())
    }
}

/// Fine-tunes the models of the run folders `size_dir` and `position_dir` jointly for `iterations` into `out`
/// (`out/size`, `out/position`: run folders that `compose-shapes` and `sample` read; `out/metrics.jsonl`,
/// `out/checkpoint.safetensors`), through the training driver (divergence rolls back with halved learning rates).
/// A finished fine-tune in `out` is reused; an interrupted one continues.
pub fn finetune(
    size_dir: &Path,
    position_dir: &Path,
    out: &Path,
    iterations: u64,
    seed: u64,
    device: &Device,
) -> Result<(PathBuf, PathBuf)> {
    let (size_out, position_out) = pair_dirs(out);
    let ckpt = out.join("checkpoint.safetensors");
    let (size, size_cfg) = Run::open_folder(size_dir, device)?;
    let (position, position_cfg) = Run::open_folder(position_dir, device)?;
    let setup = JointSetup::new(size_cfg, position_cfg)?;
    let sources = format!("size model {} and position model {}", size_dir.display(), position_dir.display());
    let mut st = setup.init(size, position, seed)?;
    std::fs::create_dir_all(out).map_err(fs_err(out))?;
    let mut run = if ckpt.exists() {
        st.restore(&ckpt, &sources, device)?;
        ebm_cd::run_dir::truncate_metrics(out, st.iter)?;
        if st.iter >= iterations && size_out.join("model.safetensors").exists() {
            tracing::info!("reusing the joint fine-tune in {} ({} iterations)", out.display(), st.iter);
            return Ok((size_out, position_out));
        }
        tracing::info!("continuing the joint fine-tune in {} from iteration {}", out.display(), st.iter);
        RunDir::open(out.to_path_buf(), true)?
    } else {
        tracing::info!(
            "fine-tuning {} and {} jointly for {iterations} iterations into {}",
            size_dir.display(),
            position_dir.display(),
            out.display()
        );
        RunDir::open(out.to_path_buf(), false)?
    };
    let schedule = TrainLoop { iterations, ..setup.size_cfg.train.clone() };
    let mut t = JointRun { setup: &setup, st, schedule, sources, out: out.to_path_buf(), device };
    ebm_cd::driver::run(&mut t, &mut run, None).with_context(|| {
        format!("the joint fine-tune in {} (its models' configs: {})", out.display(), size_dir.display())
    })?;
    Ok((size_out, position_out))
}
