//! On-policy relabelling (DAgger, Ross, Gordon & Bagnell 2011) for the transition energy. A rollout of the energy
//! drifts to states the recorded data never visits, where the energy was never told what comes next, and its
//! errors compound (the per-window violations rise along a rollout). Each round rolls the current energy out from
//! training states, asks the expert (the simulator driven by the scripted policy, which keeps the hidden goal it had
//! at the rollout's origin) what follows every visited state, and adds those transitions to the training set.

use crate::futures::{energy_futures, DataRange, Futures};
use crate::generate::{policy_at, Trajectories};
use crate::judge::Judge;
use crate::nets::Normaliser;
use crate::scene::{Scene, State, STATE_DIM};
use candle_core::Result;
use ebm_kernels::Rng;
use ebm_sampler::{Energy, Langevin};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How much on-policy data the energy is trained on (the `[dagger]` table; absent: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaggerConfig {
    /// Relabelling rounds. Training is cut into `rounds + 1` equal pieces with a round after each but the last;
    /// 0: the recorded transitions only.
    pub rounds: usize,
    /// Rollouts per round, each from a random state of a random training trajectory.
    pub rollouts: usize,
    /// Steps per rollout.
    pub horizon: usize,
    /// Share of each training batch's positives drawn from the relabelled transitions once there are any.
    pub share: f64,
    /// Ask the expert only at visited states the judge finds feasible. From an infeasible state (bodies
    /// overlapping, a speed past its bound) rapier's answer is its one-step repair, a jump the recorded data never
    /// holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_infeasible: bool,
}

impl DaggerConfig {
    pub fn is_off(&self) -> bool {
        self.rounds == 0
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.is_off() {
            return Ok(());
        }
        if self.rounds > 100
            || self.rollouts == 0
            || self.rollouts > 1 << 20
            || self.horizon == 0
            || self.horizon > 10_000
        {
            return Err(format!(
                "dagger: rounds must be in 0..=100, rollouts in 1..=1048576 and horizon in 1..=10000, got {self:?}"
            ));
        }
        if !(self.share > 0.0 && self.share <= 1.0) {
            return Err(format!("dagger.share must be in (0, 1], got {}", self.share));
        }
        Ok(())
    }
}

/// One round's relabelled transitions and what the rollouts visited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relabelled {
    /// Visited states and the expert's next states, `[M, STATE_DIM]` each.
    pub s: Vec<f32>,
    pub s1: Vec<f32>,
    /// Generated states visited (the rollouts' origins left out).
    pub visited: usize,
    /// Of those, the ones the judge finds infeasible.
    pub infeasible: usize,
}

impl Relabelled {
    /// Number of transitions kept.
    pub fn len(&self) -> usize {
        self.s.len() / STATE_DIM
    }

    pub fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    /// Appends another round's transitions and counts.
    pub fn extend(&mut self, other: Relabelled) {
        self.s.extend(other.s);
        self.s1.extend(other.s1);
        self.visited += other.visited;
        self.infeasible += other.infeasible;
    }
}

/// The expert's answer at every generated state of a rollout from state `t0` of trajectory `i`: the policy (as it
/// stood at `t0`) acts on each state in turn, and the simulator, reset to the state, takes that action. A pair is
/// kept only when the next state is feasible and the change is within `max_change` normalised units on every
/// coordinate (a Langevin chain clamped there could not reach it).
fn relabel_one(
    data: &Trajectories,
    (i, t0): (usize, usize),
    states: &[&[f32]],
    judge: &Judge,
    norm: &Normaliser,
    max_change: f32,
    skip_infeasible: bool,
) -> Relabelled {
    let mut policy = policy_at(data, i, t0);
    let mut out = Relabelled::default();
    for (t, &v) in states.iter().enumerate() {
        if v.iter().any(|x| !x.is_finite()) {
            // a chain that left the numbers behind: nothing after it can be asked about
            out.visited += states.len() - t;
            out.infeasible += states.len() - t;
            break;
        }
        let s = State::from_slice(v);
        let action = policy.act(&s);
        if t == 0 {
            continue; // the origin is a recorded state: its transition is in the data already
        }
        out.visited += 1;
        let infeasible = judge.check(v).any();
        out.infeasible += infeasible as usize;
        if infeasible && skip_infeasible {
            continue;
        }
        let mut scene = Scene::new(data.cfg.scene, &s);
        scene.step(action);
        let next = scene.state().to_vec();
        // the change in the chains' normalised units, as `Normaliser::deltas` computes it
        let change_ok = (0..STATE_DIM).all(|k| {
            let z = (next[k] - v[k] - norm.delta_mean[k]) / norm.delta_std[k];
            z.abs() <= max_change
        });
        if change_ok && !judge.check(&next).any() {
            out.s.extend_from_slice(v);
            out.s1.extend_from_slice(&next);
        }
    }
    out
}

/// One round: `cfg.rollouts` rollouts of `energy` (each next state a `sampler` chain from N(0, init_std^2), clipped
/// into `range` if given, as rollouts at evaluation run) from random states of `data`'s training trajectories,
/// relabelled by the expert.
#[allow(clippy::too_many_arguments)]
pub fn round(
    energy: &dyn Energy,
    norm: &Normaliser,
    sampler: &Langevin,
    init_std: f32,
    range: Option<&DataRange>,
    data: &Trajectories,
    cfg: &DaggerConfig,
    seed: u64,
) -> Result<Relabelled> {
    let (train, _) = data.split();
    let mut rng = Rng::with_named_stream(seed, 0, "traj-dagger-origins");
    let len = data.cfg.length;
    let origins: Vec<(usize, usize)> = (0..cfg.rollouts)
        .map(|_| {
            let i = train.start + rng.below(train.len() as u64) as usize;
            (i, rng.below(len as u64 - 1) as usize)
        })
        .collect();
    let starts: Vec<State> = origins.iter().map(|&(i, t)| State::from_slice(data.state(i, t))).collect();
    let f = energy_futures(energy, norm, sampler, init_std, range, &starts, 1, cfg.horizon, 1, seed)?;
    let max_change = sampler.clamp.map_or(f32::INFINITY, |(_, hi)| hi);
    Ok(relabel(data, &origins, &f, norm, max_change, cfg.skip_infeasible))
}

/// The expert's answers along rollouts `f` (one future per start), future `j` having started from state
/// `origins[j] = (i, t0)` of trajectory `i` of `data`: the transitions from every generated state whose next
/// state is feasible and whose change is within `max_change` normalised units per coordinate (and, with
/// `skip_infeasible`, whose state is feasible too).
pub fn relabel(
    data: &Trajectories,
    origins: &[(usize, usize)],
    f: &Futures,
    norm: &Normaliser,
    max_change: f32,
    skip_infeasible: bool,
) -> Relabelled {
    let judge = Judge::new(data.cfg.scene);
    let parts: Vec<Relabelled> = origins
        .par_iter()
        .enumerate()
        .map(|(j, &o)| {
            let states: Vec<&[f32]> = (0..=f.horizon).map(|t| f.state(j, 0, t)).collect();
            relabel_one(data, o, &states, &judge, norm, max_change, skip_infeasible)
        })
        .collect();
    parts.into_iter().fold(Relabelled::default(), |mut all, p| {
        all.extend(p);
        all
    })
}
