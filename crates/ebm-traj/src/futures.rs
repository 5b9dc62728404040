//! Futures from start states: generated step by step by each model (Langevin on the transition energy, or the
//! predictors), and the simulator's own under the randomised policy; and the measures that compare them.

use crate::generate::{rollout, GenConfig};
use crate::nets::{Normaliser, Predictor};
use crate::scene::{State, STATE_DIM};
use candle_core::{Device, Result, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::{Energy, Langevin};
use rayon::prelude::*;

/// Futures of `starts.len()` start states, `per_start` each, `horizon` steps: `states[((i * per_start + f) *
/// (horizon + 1) + t) * STATE_DIM ..]` is state `t` (0 = the start) of future `f` of start `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Futures {
    pub starts: usize,
    pub per_start: usize,
    pub horizon: usize,
    pub states: Vec<f32>,
}

impl Futures {
    /// State `t` of future `f` of start `i`.
    pub fn state(&self, i: usize, f: usize, t: usize) -> &[f32] {
        let o = ((i * self.per_start + f) * (self.horizon + 1) + t) * STATE_DIM;
        &self.states[o..o + STATE_DIM]
    }

    /// Every generated state (the starts left out), for the feasibility judge.
    pub fn generated(&self) -> Vec<f32> {
        self.generated_between(1, self.horizon)
    }

    /// The states of steps `first..=last` of every future (for violations over time).
    pub fn generated_between(&self, first: usize, last: usize) -> Vec<f32> {
        let last = last.min(self.horizon);
        let steps = (last + 1).saturating_sub(first);
        let mut v = Vec::with_capacity(self.starts * self.per_start * steps * STATE_DIM);
        for i in 0..self.starts {
            for f in 0..self.per_start {
                for t in first..=last {
                    v.extend_from_slice(self.state(i, f, t));
                }
            }
        }
        v
    }

    /// Assembles futures from per-step batches `[starts * per_start, STATE_DIM]` (the start first).
    fn from_steps(starts: usize, per_start: usize, steps: &[Vec<f32>]) -> Self {
        let horizon = steps.len() - 1;
        let n = starts * per_start;
        let mut states = vec![0f32; n * (horizon + 1) * STATE_DIM];
        for (t, batch) in steps.iter().enumerate() {
            for j in 0..n {
                let o = (j * (horizon + 1) + t) * STATE_DIM;
                states[o..o + STATE_DIM].copy_from_slice(&batch[j * STATE_DIM..(j + 1) * STATE_DIM]);
            }
        }
        Self { starts, per_start, horizon, states }
    }
}

/// The smallest box holding every recorded state, coordinate by coordinate: the support the data shows. Clipping
/// generated states into it is the state-space counterpart of the IGEBM clipping image samples to the pixel
/// range; it is read off the data, not written from the scene's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRange {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
}

impl DataRange {
    /// The range of `[M, STATE_DIM]` state vectors (M > 0).
    pub fn of(states: &[f32]) -> Self {
        let (mut lo, mut hi) = (vec![f32::INFINITY; STATE_DIM], vec![f32::NEG_INFINITY; STATE_DIM]);
        for v in states.chunks_exact(STATE_DIM) {
            for k in 0..STATE_DIM {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
        Self { lo, hi }
    }

    /// States `[B, STATE_DIM]` clipped into the range.
    pub fn clip(&self, s: &Tensor) -> Result<Tensor> {
        let row = |v: &[f32]| Tensor::from_slice(v, (1, STATE_DIM), &Device::Cpu);
        s.broadcast_maximum(&row(&self.lo)?)?.broadcast_minimum(&row(&self.hi)?)
    }
}

fn repeated(starts: &[State], per_start: usize) -> Vec<f32> {
    starts.iter().flat_map(|s| std::iter::repeat_n(s.to_vec(), per_start).flatten()).collect()
}

fn normal(n: usize, std: f32, rng: &mut Rng) -> Result<Tensor> {
    let v: Vec<f32> = (0..n * STATE_DIM).map(|_| std * rng.normal()).collect();
    Tensor::from_vec(v, (n, STATE_DIM), &Device::Cpu)
}

/// Futures by the transition energy: each next state is a Langevin chain on the change `z`, started from
/// N(0, init_std^2), with the current state fixed. With `candidates` > 1, each step runs that many chains per
/// future and keeps the one the energy scores lowest (best of K by the energy itself). With `range`, every
/// generated state is clipped into it.
#[allow(clippy::too_many_arguments)]
pub fn energy_futures<E: Energy + ?Sized>(
    energy: &E,
    norm: &Normaliser,
    sampler: &Langevin,
    init_std: f32,
    range: Option<&DataRange>,
    starts: &[State],
    per_start: usize,
    horizon: usize,
    candidates: usize,
    seed: u64,
) -> Result<Futures> {
    let n = starts.len() * per_start;
    let k = candidates.max(1);
    let mut rng = Rng::with_named_stream(seed, 0, "traj-ebm-futures");
    let mut s = Tensor::from_vec(repeated(starts, per_start), (n, STATE_DIM), &Device::Cpu)?;
    let mut steps = vec![s.flatten_all()?.to_vec1::<f32>()?];
    for t in 0..horizon {
        let c = norm.states(&s)?;
        let step_seed = seed ^ (t as u64 + 1) << 20;
        let z = if k == 1 {
            sampler.run(energy, &normal(n, init_std, &mut rng)?, Some(&c), None, step_seed)?.x
        } else {
            // K copies of every future, copy-major: row j * n + i is candidate j of future i
            let ck = c.repeat((k, 1))?;
            let zk = sampler.run(energy, &normal(n * k, init_std, &mut rng)?, Some(&ck), None, step_seed)?.x;
            let e = energy.energy(&zk, Some(&ck))?.to_vec1::<f32>()?;
            let best: Vec<u32> = (0..n)
                .map(|i| {
                    let j = (0..k).min_by(|&a, &b| e[a * n + i].total_cmp(&e[b * n + i])).unwrap_or(0);
                    (j * n + i) as u32
                })
                .collect();
            zk.index_select(&Tensor::from_vec(best, n, &Device::Cpu)?, 0)?
        };
        s = norm.next(&s, &z)?;
        if let Some(r) = range {
            s = r.clip(&s)?;
        }
        steps.push(s.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Futures::from_steps(starts.len(), per_start, &steps))
}

/// Futures by a feed-forward predictor (the deterministic one gives `per_start` identical futures).
pub fn predictor_futures(
    p: &Predictor,
    norm: &Normaliser,
    starts: &[State],
    per_start: usize,
    horizon: usize,
    seed: u64,
) -> Result<Futures> {
    let n = starts.len() * per_start;
    let mut rng = Rng::with_named_stream(seed, 0, "traj-predictor-futures");
    let mut s = Tensor::from_vec(repeated(starts, per_start), (n, STATE_DIM), &Device::Cpu)?;
    let mut steps = vec![s.flatten_all()?.to_vec1::<f32>()?];
    for _ in 0..horizon {
        let z = p.sample(&norm.states(&s)?, &normal(n, 1.0, &mut rng)?)?;
        s = norm.next(&s, &z)?;
        steps.push(s.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Futures::from_steps(starts.len(), per_start, &steps))
}

/// The simulator's own futures: the randomised policy (a fresh hidden goal and random actions each time) run from
/// each start.
pub fn real_futures(cfg: &GenConfig, starts: &[State], per_start: usize, horizon: usize, seed: u64) -> Futures {
    let runs: Vec<Vec<f32>> = (0..starts.len() * per_start)
        .into_par_iter()
        .map(|j| {
            let rng = Rng::with_named_stream(seed, j as u64, "traj-real-futures");
            rollout(cfg, &starts[j / per_start], rng, horizon + 1).0
        })
        .collect();
    Futures { starts: starts.len(), per_start, horizon, states: runs.concat() }
}

fn config_dist(a: &[f32], b: &[f32]) -> f64 {
    let (a, b) = (State::from_slice(a).config(), State::from_slice(b).config());
    a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt()
}

/// Mean pairwise distance (metres, over the positions `[px, py, bx, by]`) between the futures of each start at
/// step `t`, averaged over the starts.
pub fn diversity(f: &Futures, t: usize) -> f64 {
    let mut total = 0.0;
    for i in 0..f.starts {
        let (mut s, mut pairs) = (0.0, 0usize);
        for a in 0..f.per_start {
            for b in a + 1..f.per_start {
                s += config_dist(f.state(i, a, t), f.state(i, b, t));
                pairs += 1;
            }
        }
        total += if pairs > 0 { s / pairs as f64 } else { 0.0 };
    }
    total / f.starts as f64
}

/// Distance of a generated future to the nearest real future from the same start (the mean over steps 1..=horizon
/// of the positions' distance), averaged over futures and starts. With `leave_one_out` (real against real) a
/// future is not compared with itself.
pub fn nearest_real(gen: &Futures, real: &Futures, leave_one_out: bool) -> f64 {
    let mut total = 0.0;
    for i in 0..gen.starts {
        for g in 0..gen.per_start {
            let best = (0..real.per_start)
                .filter(|&r| !(leave_one_out && r == g))
                .map(|r| {
                    (1..=gen.horizon).map(|t| config_dist(gen.state(i, g, t), real.state(i, r, t))).sum::<f64>()
                        / gen.horizon as f64
                })
                .fold(f64::INFINITY, f64::min);
            total += best;
        }
    }
    total / (gen.starts * gen.per_start) as f64
}
