//! Training: the transition energy by contrastive divergence (Langevin on the next state, the state fixed, chains
//! kept in a replay buffer with their states), and the feed-forward predictors by their likelihoods.

use crate::nets::{ContactInput, NetConfig, Normaliser, Predictor, TransitionEnergy};
use crate::scene::STATE_DIM;
use candle_core::{Device, Result, Tensor};
use ebm_cd::config::Order;
use ebm_cd::optim::{Adam, AdamConfig};
use ebm_kernels::Rng;
use ebm_replay::{Codec, Policy, ReplayBuffer};
use ebm_sampler::{Clip, Langevin, NoiseOrder};
use serde::{Deserialize, Serialize};

/// Contrastive-divergence settings of the transition energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbmConfig {
    pub iterations: u64,
    pub batch: usize,
    pub lr: f64,
    /// Langevin steps per negative (training) and per generated state (rollouts).
    pub langevin_steps: usize,
    pub step_size: f32,
    pub noise_std: f32,
    /// Weight of the energies' squared magnitude in the loss (the IGEBM's L2 term).
    pub l2: f64,
    /// Share of chains started afresh from N(0, 1) at the positives' states; the rest continue from the buffer.
    pub reinit_prob: f64,
    pub replay_capacity: usize,
    /// Chains are kept in `[-clamp, clamp]` (normalised units, so 10 is ten standard deviations of a change).
    #[serde(default = "default_clamp")]
    pub clamp: f32,
    /// Per-sample bound on the L2 norm of the energy's gradient in each Langevin step (0: unbounded). It keeps a
    /// chain from being thrown out by one steep step while the energy is young.
    #[serde(default)]
    pub grad_clip: f32,
    /// `textbook` (noise after each gradient step: the last sample keeps its noise) or `official` (the IGEBM order:
    /// noise, then the gradient at the noised point; the last step is noise-free, so samples sit in the modes).
    #[serde(default = "textbook")]
    pub order: Order,
    /// Fresh chains (in training and in rollouts) start from N(0, init_std^2).
    #[serde(default = "default_init_std")]
    pub init_std: f32,
    /// Give the energy the next state's pusher-box gap as an input ([`crate::nets::ContactInput`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contact_input: bool,
    /// Each positive's state is moved by Gaussian noise of this many one-step-change standard deviations (per
    /// dimension) and its change made to end at the same real next state, so the energy also sees states a little
    /// off the data and is fitted to lead back to it (rollouts drift off the data, and their errors compound).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub condition_noise: f32,
    /// Which coordinates `condition_noise` moves: `all`, or `poses` (the positions and the box's angle; the
    /// velocities stay as recorded).
    #[serde(default, skip_serializing_if = "NoiseOn::is_all")]
    pub condition_noise_on: NoiseOn,
}

/// The coordinates of a state that `ebm.condition_noise` moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseOn {
    #[default]
    All,
    Poses,
}

impl NoiseOn {
    fn is_all(&self) -> bool {
        *self == NoiseOn::All
    }

    /// 1 for each state coordinate moved, 0 for the others (the layout of [`crate::scene::State::to_vec`]).
    pub fn mask(self) -> [f32; STATE_DIM] {
        match self {
            NoiseOn::All => [1.0; STATE_DIM],
            NoiseOn::Poses => [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        }
    }
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn default_clamp() -> f32 {
    10.0
}

fn textbook() -> Order {
    Order::Textbook
}

fn default_init_std() -> f32 {
    1.0
}

impl EbmConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let ok = self.batch > 0
            && self.batch <= 1 << 16
            && self.langevin_steps > 0
            && self.langevin_steps <= 10_000
            && self.lr.is_finite()
            && self.lr > 0.0
            && self.step_size.is_finite()
            && self.step_size > 0.0
            && self.noise_std.is_finite()
            && self.noise_std >= 0.0
            && self.l2.is_finite()
            && self.l2 >= 0.0
            && (0.0..=1.0).contains(&self.reinit_prob)
            && self.replay_capacity > 0
            && self.replay_capacity <= 1 << 24
            && self.clamp.is_finite()
            && self.clamp > 0.0
            && self.grad_clip.is_finite()
            && self.grad_clip >= 0.0
            && self.init_std.is_finite()
            && self.init_std >= 0.0
            && self.condition_noise.is_finite()
            && self.condition_noise >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(format!("ebm: a setting is out of range: {self:?}"))
        }
    }

    /// The sampler of negatives and of rollouts.
    pub fn sampler(&self) -> Langevin {
        Langevin {
            steps: self.langevin_steps,
            step_size: self.step_size,
            noise_std: self.noise_std,
            clip: if self.grad_clip > 0.0 { Clip::SampleL2(self.grad_clip) } else { Clip::None },
            clamp: Some((-self.clamp, self.clamp)),
            temperature: 1.0,
            order: match self.order {
                Order::Textbook => NoiseOrder::Textbook,
                Order::Official => NoiseOrder::NoiseFirst,
            },
            early_stop: None,
            record: Default::default(),
        }
    }
}

/// Settings of the feed-forward predictors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictorConfig {
    pub iterations: u64,
    pub batch: usize,
    pub lr: f64,
}

impl PredictorConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.batch == 0 || self.batch > 1 << 16 || !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("baselines: a setting is out of range: {self:?}"));
        }
        Ok(())
    }
}

/// Normalised training transitions: states `c` and changes `z`, `[M, STATE_DIM]` each.
pub struct TrainSet {
    pub c: Tensor,
    pub z: Tensor,
    /// `delta_std / state_std` per dimension: a move of the raw state by one change standard deviation, in
    /// normalised state units.
    pub change_in_state_units: Tensor,
}

impl TrainSet {
    pub fn new(norm: &Normaliser, s: &[f32], s1: &[f32]) -> Result<Self> {
        let m = s.len() / STATE_DIM;
        let st = Tensor::from_slice(s, (m, STATE_DIM), &Device::Cpu)?;
        let st1 = Tensor::from_slice(s1, (m, STATE_DIM), &Device::Cpu)?;
        let ratio: Vec<f32> = norm.delta_std.iter().zip(&norm.state_std).map(|(d, s)| d / s).collect();
        Ok(Self {
            c: norm.states(&st)?,
            z: norm.deltas(&(st1 - &st)?)?,
            change_in_state_units: Tensor::from_vec(ratio, (1, STATE_DIM), &Device::Cpu)?,
        })
    }

    pub fn len(&self) -> usize {
        self.c.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The transitions `(c, z)` from states moved by Gaussian noise of `scale` one-step-change standard deviations
    /// to the same next states (`ebm.condition_noise`); unchanged, with nothing drawn, when `scale` is 0.
    pub fn move_states(
        &self,
        c: Tensor,
        z: Tensor,
        scale: f32,
        on: NoiseOn,
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor)> {
        if scale == 0.0 {
            return Ok((c, z));
        }
        // s~ = s + a d n (d the change's std): c moves by a n d / s_std, and z = (s' - s~ - mean) / d by -a n
        let (b, _) = c.dims2()?;
        let mask = on.mask();
        let n: Vec<f32> = (0..b * STATE_DIM).map(|i| scale * rng.normal() * mask[i % STATE_DIM]).collect();
        let n = Tensor::from_vec(n, (b, STATE_DIM), &Device::Cpu)?;
        Ok(((c + n.broadcast_mul(&self.change_in_state_units)?)?, (z - n)?))
    }

    /// This set with `more`'s transitions after its own (both normalised by the same normaliser).
    pub fn appended(&self, more: &TrainSet) -> Result<Self> {
        Ok(Self {
            c: Tensor::cat(&[&self.c, &more.c], 0)?,
            z: Tensor::cat(&[&self.z, &more.z], 0)?,
            change_in_state_units: self.change_in_state_units.clone(),
        })
    }

    /// A batch of `n` transitions drawn with replacement.
    pub fn batch(&self, n: usize, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let idx: Vec<u32> = (0..n).map(|_| rng.below(self.len() as u64) as u32).collect();
        let idx = Tensor::from_vec(idx, n, &Device::Cpu)?;
        Ok((self.c.index_select(&idx, 0)?, self.z.index_select(&idx, 0)?))
    }
}

/// One iteration's figures, for the metrics log.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EbmStats {
    pub iteration: u64,
    pub e_pos: f32,
    pub e_neg: f32,
    pub loss: f32,
}

/// Trains `energy` by contrastive divergence; `log` sees every iteration's figures.
pub fn train_energy(
    energy: &TransitionEnergy,
    data: &TrainSet,
    cfg: &EbmConfig,
    seed: u64,
    log: &mut dyn FnMut(EbmStats),
) -> crate::Result<()> {
    EnergyTrainer::new(energy, cfg, seed)?.train_until(data, None, cfg.iterations, log)
}

/// Contrastive divergence that can stop and go on: its optimiser, replay buffer and random stream are kept
/// between calls, so training in pieces (with transitions added in between, [`crate::dagger`]) draws exactly
/// what one uninterrupted run would while nothing is added.
pub struct EnergyTrainer<'a> {
    energy: &'a TransitionEnergy,
    cfg: EbmConfig,
    seed: u64,
    rng: Rng,
    opt: Adam,
    replay: ReplayBuffer<f32>,
    sampler: Langevin,
    done: u64,
}

impl<'a> EnergyTrainer<'a> {
    pub fn new(energy: &'a TransitionEnergy, cfg: &EbmConfig, seed: u64) -> Result<Self> {
        let adam = AdamConfig { lr: cfg.lr, ..Default::default() };
        Ok(Self {
            energy,
            cfg: *cfg,
            seed,
            rng: Rng::with_named_stream(seed, 0, "traj-ebm"),
            opt: Adam::new(energy.net.params(), adam)?,
            replay: ReplayBuffer::new(cfg.replay_capacity, &[STATE_DIM], STATE_DIM, Codec::Uniform256, Policy::Fifo),
            sampler: cfg.sampler(),
            done: 0,
        })
    }

    /// Iterations run so far.
    pub fn iterations_done(&self) -> u64 {
        self.done
    }

    /// Trains until `until` iterations have run in all. Each batch's positives come from `data`, or, with
    /// `extra = Some((set, share))`, a `share` of them from `set`.
    pub fn train_until(
        &mut self,
        data: &TrainSet,
        extra: Option<(&TrainSet, f64)>,
        until: u64,
        log: &mut dyn FnMut(EbmStats),
    ) -> crate::Result<()> {
        let (cfg, energy, rng) = (&self.cfg, self.energy, &mut self.rng);
        let b = cfg.batch;
        // the extra set and how many positives of each batch it gives; none while it is empty
        let mix = extra
            .filter(|(set, _)| !set.is_empty())
            .map(|(set, share)| (set, ((share * b as f64).round() as usize).min(b)))
            .filter(|&(_, n)| n > 0);
        for it in self.done..until {
            let (c_pos, z_pos) = match mix {
                None => data.batch(b, rng)?,
                Some((set, n)) if n == b => set.batch(b, rng)?,
                Some((set, n)) => {
                    let (c2, z2) = set.batch(n, rng)?;
                    let (c1, z1) = data.batch(b - n, rng)?;
                    (Tensor::cat(&[c1, c2], 0)?, Tensor::cat(&[z1, z2], 0)?)
                }
            };
            let (c_pos, z_pos) = data.move_states(c_pos, z_pos, cfg.condition_noise, cfg.condition_noise_on, rng)?;
            // fresh chains at the positives' own states; the others continue a stored chain under its own state
            let fresh = (0..b).filter(|_| self.replay.is_empty() || rng.uniform_f64() < cfg.reinit_prob).count();
            let noise: Vec<f32> = (0..fresh * STATE_DIM).map(|_| cfg.init_std * rng.normal()).collect();
            let mut z0 = vec![Tensor::from_vec(noise, (fresh, STATE_DIM), &Device::Cpu)?];
            let mut c0 = vec![c_pos.narrow(0, 0, fresh)?];
            if fresh < b {
                let idx = self.replay.sample_indices(b - fresh, rng);
                let (z, c) = self.replay.get(&idx, rng, &Device::Cpu)?;
                z0.push(z);
                c0.push(c.expect("the buffer keeps each chain's state"));
            }
            let (z0, c_neg) = (Tensor::cat(&z0, 0)?, Tensor::cat(&c0, 0)?);
            let chain_seed = self.seed ^ (it + 1).wrapping_mul(0x9e37_79b9);
            let z_neg = self.sampler.run(energy, &z0, Some(&c_neg), None, chain_seed)?.x;
            let e_pos = ebm_sampler::Energy::energy(energy, &z_pos, Some(&c_pos))?;
            let e_neg = ebm_sampler::Energy::energy(energy, &z_neg.detach(), Some(&c_neg))?;
            let loss = ebm_cd::cd::cd_loss(&e_pos, &e_neg, 1.0, cfg.l2)?;
            let lv = loss.to_scalar::<f32>()?;
            if !lv.is_finite() {
                return Err(crate::TrajError::Config(format!(
                    "the transition energy diverged at iteration {it} (loss {lv}); lower ebm.lr or ebm.step_size"
                )));
            }
            ebm_cd::cd::step(&loss, &mut [&mut self.opt])?;
            self.replay.push(&z_neg, Some(&c_neg), rng)?;
            self.done = it + 1;
            log(EbmStats {
                iteration: it + 1,
                e_pos: e_pos.mean_all()?.to_scalar()?,
                e_neg: e_neg.mean_all()?.to_scalar()?,
                loss: lv,
            });
        }
        Ok(())
    }
}

/// Trains a feed-forward predictor; `log` sees `(iteration, loss)`.
pub fn train_predictor(
    p: &Predictor,
    data: &TrainSet,
    cfg: &PredictorConfig,
    seed: u64,
    log: &mut dyn FnMut(u64, f32),
) -> crate::Result<()> {
    let name = if p.gaussian { "traj-gauss" } else { "traj-fc" };
    let mut rng = Rng::with_named_stream(seed, 0, name);
    let adam = AdamConfig { lr: cfg.lr, beta1: 0.9, clip: false, ..Default::default() };
    let mut opt = Adam::new(p.net.params(), adam)?;
    for it in 0..cfg.iterations {
        let (c, z) = data.batch(cfg.batch, &mut rng)?;
        let loss = p.loss(&c, &z)?;
        let lv = loss.to_scalar::<f32>()?;
        if !lv.is_finite() {
            return Err(crate::TrajError::Config(format!("the {name} predictor diverged at iteration {it}")));
        }
        ebm_cd::cd::step(&loss, &mut [&mut opt])?;
        log(it + 1, lv);
    }
    Ok(())
}

/// The test-set loss of a predictor (mean squared error or Gaussian NLL per dimension, in normalised units).
pub fn predictor_loss(p: &Predictor, data: &TrainSet) -> Result<f32> {
    p.loss(&data.c, &data.z)?.to_scalar::<f32>()
}

/// For tests and callers that build their own: a fresh energy (with the contact input if given) and predictors
/// from one seed.
pub fn build(
    cfg: NetConfig,
    contact: Option<ContactInput>,
    seed: u64,
) -> Result<(TransitionEnergy, Predictor, Predictor)> {
    // one stream per network, so that the energy's inputs do not change the baselines' initial weights
    let rng = |name| Rng::with_named_stream(seed, 0, name);
    Ok((
        TransitionEnergy::new(cfg, contact, &mut rng("traj-init-energy"))?,
        Predictor::new(false, cfg, &mut rng("traj-init-fc"))?,
        Predictor::new(true, cfg, &mut rng("traj-init-gauss"))?,
    ))
}
