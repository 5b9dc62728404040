//! The networks of the experiment, all the same MLP body: the transition energy `E(s, s')`, the deterministic
//! next-state predictor (the paper's FC baseline) and the Gaussian one; and the per-dimension normalisation
//! they share.

use crate::scene::{SceneConfig, STATE_DIM};
use candle_core::{DType, Device, Result, Tensor, Var};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_sampler::Energy;
use serde::{Deserialize, Serialize};

/// Width and depth of every network's body (hidden layers of SiLU units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub hidden: usize,
    pub depth: usize,
}

impl NetConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.hidden == 0 || self.hidden > 8192 || self.depth == 0 || self.depth > 16 {
            return Err(format!("model: hidden must be in 1..=8192 and depth in 1..=16, got {self:?}"));
        }
        Ok(())
    }
}

/// A multilayer perceptron `in -> hidden (x depth, SiLU) -> out`, its weights initialised from a seeded stream
/// with variance 1 / fan-in.
pub struct Mlp {
    layers: Vec<(Var, Var)>,
}

impl Mlp {
    pub fn new(input: usize, output: usize, cfg: NetConfig, rng: &mut Rng) -> Result<Self> {
        let mut dims = vec![input];
        dims.extend(std::iter::repeat_n(cfg.hidden, cfg.depth));
        dims.push(output);
        let layers = dims
            .windows(2)
            .map(|w| {
                let std = (1.0 / w[0] as f32).sqrt();
                let vals: Vec<f32> = (0..w[0] * w[1]).map(|_| rng.normal() * std).collect();
                let wt = Var::from_tensor(&Tensor::from_vec(vals, (w[1], w[0]), &Device::Cpu)?)?;
                let b = Var::from_tensor(&Tensor::zeros(w[1], DType::F32, &Device::Cpu)?)?;
                Ok((wt, b))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
            if i + 1 < self.layers.len() {
                h = h.silu()?;
            }
        }
        Ok(h)
    }

    /// The parameters by name (`l{i}/w`, `l{i}/b`), for the optimizer and the model file.
    pub fn params(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            v.push((format!("l{i}/w"), w.clone()));
            v.push((format!("l{i}/b"), b.clone()));
        }
        v
    }

    /// Stores the weights under `prefix`.
    pub fn to_bundle(&self, b: &mut Bundle, prefix: &str) {
        for (name, p) in self.params() {
            b.insert(format!("{prefix}{name}"), p.as_tensor().clone());
        }
    }

    /// Restores weights written by [`Mlp::to_bundle`] (every one present, with its shape).
    pub fn load_bundle(&self, b: &Bundle, prefix: &str, path: &std::path::Path) -> crate::Result<()> {
        for (name, p) in self.params() {
            let t = b.get(path, &format!("{prefix}{name}"))?;
            if t.dims() != p.dims() {
                return Err(crate::TrajError::File {
                    path: path.display().to_string(),
                    reason: format!("`{prefix}{name}` has shape {:?}, the model {:?}", t.dims(), p.dims()),
                });
            }
            p.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// Per-dimension means and standard deviations of the states and of the one-step changes `s' - s`: the networks
/// see `(s - mean_s) / std_s` and produce changes in units of `std_d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    pub state_mean: Vec<f32>,
    pub state_std: Vec<f32>,
    pub delta_mean: Vec<f32>,
    pub delta_std: Vec<f32>,
}

impl Normaliser {
    /// Checks a normaliser read from a file: `STATE_DIM` values per statistic, finite, spreads positive (a zero or
    /// non-finite spread would turn every rollout into NaNs without an error).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let stats = [&self.state_mean, &self.state_std, &self.delta_mean, &self.delta_std];
        if stats.iter().any(|v| v.len() != STATE_DIM) {
            return Err(format!("the normaliser does not hold {STATE_DIM} values per statistic"));
        }
        if stats.iter().any(|v| v.iter().any(|x| !x.is_finite()))
            || [&self.state_std, &self.delta_std].iter().any(|v| v.iter().any(|&x| x <= 0.0))
        {
            return Err("the normaliser holds a non-finite value or a spread that is not positive".into());
        }
        Ok(())
    }

    /// From paired `[M, STATE_DIM]` buffers of states and next states.
    pub fn fit(s: &[f32], s1: &[f32]) -> Self {
        let d = STATE_DIM;
        let stats = |f: &dyn Fn(usize, usize) -> f32| {
            let n = s.len() / d;
            let (mut m, mut v) = (vec![0f64; d], vec![0f64; d]);
            for i in 0..n {
                for (k, mk) in m.iter_mut().enumerate() {
                    *mk += f(i, k) as f64;
                }
            }
            m.iter_mut().for_each(|x| *x /= n as f64);
            for i in 0..n {
                for (k, vk) in v.iter_mut().enumerate() {
                    *vk += (f(i, k) as f64 - m[k]).powi(2);
                }
            }
            let std = v.iter().map(|x| ((x / n as f64).sqrt() as f32).max(1e-4)).collect();
            (m.iter().map(|x| *x as f32).collect(), std)
        };
        let (state_mean, state_std) = stats(&|i, k| s[i * d + k]);
        let (delta_mean, delta_std) = stats(&|i, k| s1[i * d + k] - s[i * d + k]);
        Self { state_mean, state_std, delta_mean, delta_std }
    }

    fn row(v: &[f32]) -> Result<Tensor> {
        Tensor::from_slice(v, (1, v.len()), &Device::Cpu)
    }

    /// States `[B, D]` to network inputs.
    pub fn states(&self, s: &Tensor) -> Result<Tensor> {
        s.broadcast_sub(&Self::row(&self.state_mean)?)?.broadcast_div(&Self::row(&self.state_std)?)
    }

    /// Network inputs back to states: the inverse of [`Normaliser::states`].
    pub fn unstates(&self, c: &Tensor) -> Result<Tensor> {
        c.broadcast_mul(&Self::row(&self.state_std)?)?.broadcast_add(&Self::row(&self.state_mean)?)
    }

    /// Changes `s' - s` `[B, D]` to normalised units.
    pub fn deltas(&self, d: &Tensor) -> Result<Tensor> {
        d.broadcast_sub(&Self::row(&self.delta_mean)?)?.broadcast_div(&Self::row(&self.delta_std)?)
    }

    /// The next states from states `s` and normalised changes `z`.
    pub fn next(&self, s: &Tensor, z: &Tensor) -> Result<Tensor> {
        s + z.broadcast_mul(&Self::row(&self.delta_std)?)?.broadcast_add(&Self::row(&self.delta_mean)?)?
    }

    /// The next states from normalised states `c` and normalised changes `z`: what an energy of `z` given `c`
    /// scores, in the units of the scene.
    pub fn next_of_normalised(&self, c: &Tensor, z: &Tensor) -> Result<Tensor> {
        self.next(&self.unstates(c)?, z)
    }
}

/// The transition energy `E(s, s')`, written as an energy of the normalised change `z` given the normalised
/// state `c` (the condition): `E(z | c) = MLP([c, z])`, or `MLP([c, z, g])` with the contact inputs `g`.
/// Langevin moves `z` only; `s` stays fixed.
pub struct TransitionEnergy {
    pub net: Mlp,
    pub contact: Option<ContactInput>,
}

/// Two more inputs of the transition energy: the pusher-box gap of the next state
/// ([`crate::feasible::pusher_box_gap`]) at two scales, `tanh(gap / (2 u))` with `u` the pusher's one-step
/// spread (sharp at contact) and `tanh(gap / (r + h))` with the pusher's radius and the box's half-side (still
/// graded at a pass-through's depth, where the first has saturated). From raw coordinates an MLP must build the
/// box's rotation and the square's distance function itself before it can tell a push from a pass-through; this
/// hands it that one quantity. What the energy does with it is learned: the inputs carry no penalty.
#[derive(Debug, Clone)]
pub struct ContactInput {
    pub norm: Normaliser,
    pub scene: SceneConfig,
}

impl ContactInput {
    /// How many inputs it adds.
    pub const WIDTH: usize = 2;

    /// The inputs `[B, 2]` for normalised states `c` and changes `z`.
    pub fn feature(&self, c: &Tensor, z: &Tensor) -> Result<Tensor> {
        let s1 = self.norm.next_of_normalised(c, z)?;
        let gap = crate::feasible::pusher_box_gap(&s1, &self.scene)?;
        let unit = 0.5 * (self.norm.delta_std[0] + self.norm.delta_std[1]) as f64;
        let size = (self.scene.pusher_radius + self.scene.box_half) as f64;
        Tensor::cat(&[(&gap / (2.0 * unit))?.tanh()?, (&gap / size)?.tanh()?], 1)
    }
}

impl TransitionEnergy {
    /// An energy over `[c, z]`, plus the contact inputs when `contact` is given.
    pub fn new(cfg: NetConfig, contact: Option<ContactInput>, rng: &mut Rng) -> Result<Self> {
        let inputs = 2 * STATE_DIM + if contact.is_some() { ContactInput::WIDTH } else { 0 };
        Ok(Self { net: Mlp::new(inputs, 1, cfg, rng)?, contact })
    }
}

impl Energy for TransitionEnergy {
    fn energy(&self, z: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let c = cond.ok_or_else(|| candle_core::Error::Msg("the transition energy needs the state".into()))?;
        let input = match &self.contact {
            None => Tensor::cat(&[c, z], 1)?,
            Some(k) => Tensor::cat(&[c, z, &k.feature(c, z)?], 1)?,
        };
        self.net.forward(&input)?.squeeze(1)
    }
}

/// The feed-forward predictors: the deterministic one (`z = MLP(c)`, trained by squared error) and the Gaussian
/// one (`z ~ N(mu(c), diag sigma(c)^2)`, trained by negative log-likelihood).
pub struct Predictor {
    pub net: Mlp,
    pub gaussian: bool,
}

/// Bounds of the Gaussian predictor's log-variance.
const LOGVAR: (f64, f64) = (-10.0, 4.0);

impl Predictor {
    pub fn new(gaussian: bool, cfg: NetConfig, rng: &mut Rng) -> Result<Self> {
        let out = if gaussian { 2 * STATE_DIM } else { STATE_DIM };
        Ok(Self { net: Mlp::new(STATE_DIM, out, cfg, rng)?, gaussian })
    }

    /// The predicted mean and (Gaussian only) log-variance of `z`.
    pub fn predict(&self, c: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let out = self.net.forward(c)?;
        if !self.gaussian {
            return Ok((out, None));
        }
        let mu = out.narrow(1, 0, STATE_DIM)?;
        let lv = out.narrow(1, STATE_DIM, STATE_DIM)?.clamp(LOGVAR.0, LOGVAR.1)?;
        Ok((mu, Some(lv)))
    }

    /// The training loss on normalised changes `z`: mean squared error, or the Gaussian negative log-likelihood
    /// per dimension (constant dropped).
    pub fn loss(&self, c: &Tensor, z: &Tensor) -> Result<Tensor> {
        match self.predict(c)? {
            (mu, None) => (mu - z)?.sqr()?.mean_all(),
            (mu, Some(lv)) => {
                let r2 = (mu - z)?.sqr()?;
                ((r2 * lv.neg()?.exp()?)? + lv)?.affine(0.5, 0.0)?.mean_all()
            }
        }
    }

    /// A draw of `z` (the mean itself for the deterministic predictor), with standard normal noise `eps`.
    pub fn sample(&self, c: &Tensor, eps: &Tensor) -> Result<Tensor> {
        match self.predict(c)? {
            (mu, None) => Ok(mu),
            (mu, Some(lv)) => mu + (lv.affine(0.5, 0.0)?.exp()? * eps)?,
        }
    }
}
