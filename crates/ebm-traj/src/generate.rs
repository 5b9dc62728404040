//! Trajectories of the pushing scene under a scripted reach-and-push policy with injected randomness, and the
//! safetensors file that holds them with their generation config.

use crate::scene::{Scene, SceneConfig, State, ACTION_DIM, STATE_DIM};
use crate::TrajError;
use candle_core::{Device, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How many trajectories, how long, from which seed, and how random the policy is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenConfig {
    pub trajectories: usize,
    /// States per trajectory (the start included).
    pub length: usize,
    pub seed: u64,
    /// Every `random_every`-th action is uniformly random (the paper: every 4th); 0 for none.
    pub random_every: usize,
    /// The policy's pushing speed (m/s).
    pub push_speed: f32,
    /// Share of trajectories held out for testing (the last ones).
    pub test_fraction: f64,
    pub scene: SceneConfig,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            trajectories: 2000,
            length: 100,
            seed: 0,
            random_every: 4,
            push_speed: 0.3,
            test_fraction: 0.1,
            scene: SceneConfig::default(),
        }
    }
}

impl GenConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.scene.validate()?;
        if self.trajectories < 2 || self.trajectories > 10_000_000 {
            return Err(format!("data.trajectories must be in 2..=10000000, got {}", self.trajectories));
        }
        if self.length < 2 || self.length > 100_000 {
            return Err(format!("data.length must be in 2..=100000, got {}", self.length));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(format!("data.test_fraction must be in (0, 1), got {}", self.test_fraction));
        }
        if !(self.push_speed.is_finite() && self.push_speed > 0.0) {
            return Err(format!("data.push_speed must be positive, got {}", self.push_speed));
        }
        let floats = self.trajectories as u128 * self.length as u128 * (STATE_DIM + ACTION_DIM) as u128;
        if floats * 4 > 8 << 30 {
            return Err(format!(
                "data: {} trajectories of {} states would take {} GB",
                self.trajectories,
                self.length,
                (floats * 4) >> 30
            ));
        }
        Ok(())
    }

    /// Number of held-out (test) trajectories.
    pub fn test_count(&self) -> usize {
        ((self.trajectories as f64 * self.test_fraction).round() as usize).clamp(1, self.trajectories - 1)
    }
}

/// The scripted policy: walk round to the far side of the box from a hidden goal, then push the box towards it;
/// a new goal when the box arrives. Its goals are what makes futures from one state multi-modal; every
/// `random_every`-th action is replaced by a uniform random one.
pub struct PushPolicy {
    scene: SceneConfig,
    speed: f32,
    random_every: usize,
    goal: [f32; 2],
    t: usize,
    rng: Rng,
}

impl PushPolicy {
    pub fn new(scene: SceneConfig, speed: f32, random_every: usize, mut rng: Rng) -> Self {
        let goal = Self::draw_goal(&scene, &mut rng);
        Self { scene, speed, random_every, goal, t: 0, rng }
    }

    fn draw_goal(scene: &SceneConfig, rng: &mut Rng) -> [f32; 2] {
        let r = scene.table_half - 3.0 * scene.box_half;
        [(2.0 * rng.uniform() - 1.0) * r, (2.0 * rng.uniform() - 1.0) * r]
    }

    /// The hidden goal the box is being pushed to.
    pub fn goal(&self) -> [f32; 2] {
        self.goal
    }

    /// The next action in state `s`.
    pub fn act(&mut self, s: &State) -> [f32; 2] {
        self.t += 1;
        let m = self.scene.max_action;
        if self.random_every > 0 && self.t % self.random_every == 0 {
            return [(2.0 * self.rng.uniform() - 1.0) * m, (2.0 * self.rng.uniform() - 1.0) * m];
        }
        let (b, p) = (s.box_pos, s.pusher);
        let mut to_goal = [self.goal[0] - b[0], self.goal[1] - b[1]];
        if norm(to_goal) < 0.03 {
            self.goal = Self::draw_goal(&self.scene, &mut self.rng);
            to_goal = [self.goal[0] - b[0], self.goal[1] - b[1]];
        }
        let dir = unit(to_goal);
        let reach = 1.45 * self.scene.box_half + self.scene.pusher_radius + 0.01;
        let behind = [b[0] - dir[0] * reach, b[1] - dir[1] * reach];
        let off = [behind[0] - p[0], behind[1] - p[1]];
        let v = if norm(off) < 0.025 {
            // in place: push through the box towards the goal, correcting any sideways drift
            [dir[0] * self.speed + 2.0 * off[0], dir[1] * self.speed + 2.0 * off[1]]
        } else {
            // walk to the pushing point, stepping sideways round the box when it is in the way
            let mut v = scale_to(off, self.speed.min(4.0 * norm(off)));
            let rel = [p[0] - b[0], p[1] - b[1]];
            let clear = self.scene.box_half * 1.5 + self.scene.pusher_radius + 0.02;
            if norm(rel) < clear + 0.03 && dot(rel, dir) > -0.5 * reach {
                let side = if rel[0] * dir[1] - rel[1] * dir[0] >= 0.0 { 1.0 } else { -1.0 };
                let tangent = [side * dir[1], -side * dir[0]];
                let away = unit(rel);
                v = scale_to(
                    [tangent[0] + 0.7 * away[0] - 0.3 * dir[0], tangent[1] + 0.7 * away[1] - 0.3 * dir[1]],
                    self.speed,
                );
            }
            v
        };
        [v[0].clamp(-m, m), v[1].clamp(-m, m)]
    }
}

fn norm(v: [f32; 2]) -> f32 {
    (v[0] * v[0] + v[1] * v[1]).sqrt()
}
fn dot(a: [f32; 2], b: [f32; 2]) -> f32 {
    a[0] * b[0] + a[1] * b[1]
}
fn unit(v: [f32; 2]) -> [f32; 2] {
    let n = norm(v).max(1e-9);
    [v[0] / n, v[1] / n]
}
fn scale_to(v: [f32; 2], len: f32) -> [f32; 2] {
    let u = unit(v);
    [u[0] * len, u[1] * len]
}

/// A random start: the box somewhere in the middle of the table at any angle, the pusher anywhere clear of it,
/// both at rest.
pub fn random_start(scene: &SceneConfig, rng: &mut Rng) -> State {
    let rb = scene.table_half - 4.0 * scene.box_half;
    let box_pos = [(2.0 * rng.uniform() - 1.0) * rb, (2.0 * rng.uniform() - 1.0) * rb];
    let box_angle = (rng.uniform() - 0.5) * std::f32::consts::FRAC_PI_2;
    let rp = scene.joint_limit - 0.02;
    let clear = scene.box_half * std::f32::consts::SQRT_2 + scene.pusher_radius + 0.02;
    let pusher = loop {
        let p = [(2.0 * rng.uniform() - 1.0) * rp, (2.0 * rng.uniform() - 1.0) * rp];
        if norm([p[0] - box_pos[0], p[1] - box_pos[1]]) > clear {
            break p;
        }
    };
    State { pusher, pusher_vel: [0.0; 2], box_pos, box_angle, box_vel: [0.0; 2], box_spin: 0.0 }
}

/// One rollout of the policy from `start`: `length` state vectors and the `length - 1` actions taken.
pub fn rollout(cfg: &GenConfig, start: &State, rng: Rng, length: usize) -> (Vec<f32>, Vec<f32>) {
    let mut scene = Scene::new(cfg.scene, start);
    let mut policy = PushPolicy::new(cfg.scene, cfg.push_speed, cfg.random_every, rng);
    let mut states = Vec::with_capacity(length * STATE_DIM);
    let mut actions = Vec::with_capacity((length - 1) * ACTION_DIM);
    states.extend_from_slice(&start.to_vec());
    let mut s = *start;
    for _ in 1..length {
        let a = policy.act(&s);
        scene.step(a);
        s = scene.state();
        actions.extend_from_slice(&a);
        states.extend_from_slice(&s.to_vec());
    }
    (states, actions)
}

/// Replays recorded `actions` from `start`: the states the simulator produces (the start included).
pub fn replay(scene_cfg: SceneConfig, start: &State, actions: &[f32]) -> Vec<f32> {
    let mut scene = Scene::new(scene_cfg, start);
    let mut states = start.to_vec().to_vec();
    for a in actions.chunks_exact(ACTION_DIM) {
        scene.step([a[0], a[1]]);
        states.extend_from_slice(&scene.state().to_vec());
    }
    states
}

/// The random stream of trajectory `i`'s policy: the generator and [`policy_at`] must draw the same one.
fn policy_stream(cfg: &GenConfig, i: usize) -> Rng {
    Rng::with_named_stream(cfg.seed, i as u64, "traj-policy")
}

/// The policy of trajectory `i` of `data` as it stood before acting at step `t`: rebuilt from the generator's
/// seed by replaying its decisions on the recorded states, so it holds the hidden goal and the place in the
/// random-action cycle it had there. The expert that on-policy relabelling ([`crate::dagger`]) asks.
pub fn policy_at(data: &Trajectories, i: usize, t: usize) -> PushPolicy {
    let cfg = &data.cfg;
    let mut policy = PushPolicy::new(cfg.scene, cfg.push_speed, cfg.random_every, policy_stream(cfg, i));
    for k in 0..t.min(cfg.length - 1) {
        policy.act(&State::from_slice(data.state(i, k)));
    }
    policy
}

/// A set of trajectories: `states` `[N, T, STATE_DIM]` and `actions` `[N, T - 1, 2]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectories {
    pub cfg: GenConfig,
    pub states: Vec<f32>,
    pub actions: Vec<f32>,
}

impl Trajectories {
    /// Number of trajectories.
    pub fn len(&self) -> usize {
        self.states.len() / (self.cfg.length * STATE_DIM)
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The state vector `t` of trajectory `i`.
    pub fn state(&self, i: usize, t: usize) -> &[f32] {
        let o = (i * self.cfg.length + t) * STATE_DIM;
        &self.states[o..o + STATE_DIM]
    }

    /// The actions of trajectory `i`.
    pub fn actions_of(&self, i: usize) -> &[f32] {
        let n = (self.cfg.length - 1) * ACTION_DIM;
        &self.actions[i * n..(i + 1) * n]
    }

    /// The indices of the training and the held-out trajectories.
    pub fn split(&self) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let n = self.len();
        let test = self.cfg.test_count();
        (0..n - test, n - test..n)
    }

    /// Every transition `(s_t, s_{t+1})` of the trajectories in `range`, as two `[M, STATE_DIM]` buffers.
    pub fn transitions(&self, range: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
        let (mut s, mut s1) = (Vec::new(), Vec::new());
        for i in range {
            for t in 0..self.cfg.length - 1 {
                s.extend_from_slice(self.state(i, t));
                s1.extend_from_slice(self.state(i, t + 1));
            }
        }
        (s, s1)
    }

    /// Writes the file (atomically), the generation config in its metadata as `ebm.traj_data`.
    pub fn save(&self, path: &Path) -> Result<(), TrajError> {
        let (n, t) = (self.len(), self.cfg.length);
        let mut b = Bundle::new();
        b.insert("states", Tensor::from_slice(&self.states, (n, t, STATE_DIM), &Device::Cpu)?);
        b.insert("actions", Tensor::from_slice(&self.actions, (n, t - 1, ACTION_DIM), &Device::Cpu)?);
        b.set_meta("ebm.traj_data", serde_json::to_string(&self.cfg).expect("a config serialises"));
        b.save(path)?;
        Ok(())
    }

    /// Reads a file written by [`Trajectories::save`], checking its shapes against its config.
    pub fn load(path: &Path) -> Result<Self, TrajError> {
        let bad = |reason: String| TrajError::File { path: path.display().to_string(), reason };
        let b = Bundle::load(path, &Device::Cpu)?;
        let cfg: GenConfig = serde_json::from_str(b.meta(path, "ebm.traj_data")?)
            .map_err(|e| bad(format!("its `ebm.traj_data` metadata is not a generation config: {e}")))?;
        cfg.validate().map_err(|e| bad(format!("its generation config is invalid: {e}")))?;
        let states = b.get(path, "states")?;
        let actions = b.get(path, "actions")?;
        let (n, t) = (cfg.trajectories, cfg.length);
        if states.dims() != [n, t, STATE_DIM] || actions.dims() != [n, t - 1, ACTION_DIM] {
            return Err(bad(format!(
                "`states` {:?} and `actions` {:?} do not match its config ({n} trajectories of {t} states)",
                states.dims(),
                actions.dims()
            )));
        }
        let f = |x: &Tensor| -> Result<Vec<f32>, TrajError> {
            Ok(x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let out = Self { cfg, states: f(states)?, actions: f(actions)? };
        if out.states.iter().chain(&out.actions).any(|v| !v.is_finite()) {
            return Err(bad("it holds non-finite values".into()));
        }
        Ok(out)
    }
}

/// Generates `cfg.trajectories` trajectories, in parallel; trajectory `i` depends only on `(cfg.seed, i)`.
pub fn generate(cfg: &GenConfig) -> Result<Trajectories, TrajError> {
    cfg.validate().map_err(TrajError::Config)?;
    let runs: Vec<(Vec<f32>, Vec<f32>)> = (0..cfg.trajectories)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::with_named_stream(cfg.seed, i as u64, "traj-start");
            let start = random_start(&cfg.scene, &mut rng);
            rollout(cfg, &start, policy_stream(cfg, i), cfg.length)
        })
        .collect();
    let mut states = Vec::with_capacity(cfg.trajectories * cfg.length * STATE_DIM);
    let mut actions = Vec::with_capacity(cfg.trajectories * (cfg.length - 1) * ACTION_DIM);
    for (s, a) in runs {
        states.extend(s);
        actions.extend(a);
    }
    Ok(Trajectories { cfg: *cfg, states, actions })
}
