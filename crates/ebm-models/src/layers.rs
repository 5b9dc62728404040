//! Building blocks shared by the networks: activations, dense layers and the helpers that define parameters.

use crate::config::Activation;
use crate::params::Params;
use crate::spectral::SnKind;
use candle_core::{Device, Result, Tensor};
use ebm_kernels::Rng;

/// Applies an activation.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::LeakyRelu => leaky_relu(x, 0.2),
        Activation::Swish => x * candle_nn::ops::sigmoid(x)?,
        Activation::Relu => x.relu(),
    }
}

/// `max(x, alpha x)` for `0 < alpha < 1`.
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    x.maximum(&(x * alpha)?)
}

/// A spectrally normalised weight to be refreshed once per training iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct SnSpec {
    pub weight: String,
    pub u: String,
    pub kind: SnKind,
}

/// Defines parameters in a [`Params`] and records which weights are spectrally normalised.
pub struct Builder<'a> {
    pub params: &'a mut Params,
    pub sn: Vec<SnSpec>,
    pub rng: &'a mut Rng,
    pub device: Device,
}

impl<'a> Builder<'a> {
    pub fn new(params: &'a mut Params, rng: &'a mut Rng, device: &Device) -> Self {
        Self { params, sn: Vec::new(), rng, device: device.clone() }
    }

    /// A weight of shape `shape` (`[out, ...]`) with its power-iteration vector `<scope>/<prefix>_u` when `sn` is
    /// set: raw N(0, std^2) as in the official code (the normalisation makes the scale irrelevant).
    pub fn sn_weight(
        &mut self,
        scope: &str,
        prefix: &str,
        shape: &[usize],
        std: f32,
        kind: Option<SnKind>,
    ) -> Result<String> {
        let w = format!("{scope}/{prefix}weight");
        self.params.normal(&w, shape, std, self.rng, &self.device)?;
        if let Some(kind) = kind {
            let u = format!("{scope}/{prefix}_u");
            self.params.state_normal(&u, (1, shape[0]), self.rng, &self.device)?;
            self.sn.push(SnSpec { weight: w.clone(), u, kind });
        }
        Ok(w)
    }

    /// A Glorot-uniform dense weight `[out, in]` without normalisation (the official output layer `fc5`).
    pub fn glorot(&mut self, name: &str, out: usize, inp: usize) -> Result<()> {
        let bound = (6.0 / (inp + out) as f32).sqrt();
        self.params.uniform(name, (out, inp), bound, self.rng, &self.device)
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.params.constant(name, shape, 0.0, &self.device)
    }

    pub fn ones(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        self.params.constant(name, shape, 1.0, &self.device)
    }
}

/// `x W^T + b` for `x` `[B, in]`, `W` `[out, in]`, `b` `[out]`.
pub fn dense(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}
