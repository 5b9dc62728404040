//! Building blocks shared by the networks: activations, the conditional convolution (input bias before the conv,
//! gain after it), dense layers, and the helpers that define parameters with the official initialisation.
//!
//! Layers come in two forms: pure functions of tensors ([`cond_conv2d`], [`dense`], ...), which the
//! finite-difference tests call directly, and specs ([`ConvLayer`], [`DenseLayer`]) that define their parameters
//! in a [`Builder`] under the official names and apply the functions to the [`Weights`] of a network.

use crate::arch::Weights;
use crate::config::Activation;
use crate::ops;
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

/// `max(x, alpha x)` for `0 < alpha < 1` (see [`ops::leaky_relu`]).
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    ops::leaky_relu(x, alpha)
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
        self.glorot_shape(name, &[out, inp])
    }

    /// A Glorot-uniform weight of PyTorch layout `[out, in, k...]`: bound `sqrt(6 / (fan_in + fan_out))` with
    /// `fan_in = in * k...` and `fan_out = out * k...` (TensorFlow's `xavier_initializer`, also for convs).
    pub fn glorot_shape(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        let receptive: usize = shape[2..].iter().product();
        let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
        let fan_out = shape[0] * receptive;
        let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
        self.params.uniform(name, shape, bound, self.rng, &self.device)
    }

    /// A weight `<scope>/<prefix>weight` with the official initialisation (`utils.get_weight`): with spectral
    /// normalisation N(0, 1) and a power-iteration vector (or, for a `zero` weight, N(0, 1e-10) and the clamp-only
    /// normalisation); without it Glorot-uniform (or zeros for a `zero` weight).
    pub fn weight(
        &mut self,
        scope: &str,
        prefix: &str,
        shape: &[usize],
        spectral_norm: bool,
        zero: bool,
    ) -> Result<()> {
        match (spectral_norm, zero) {
            (true, false) => self.sn_weight(scope, prefix, shape, 1.0, Some(SnKind::Normal)).map(|_| ()),
            (true, true) => self.sn_weight(scope, prefix, shape, 1e-10, Some(SnKind::ClampOnly)).map(|_| ()),
            (false, true) => self.zeros(&format!("{scope}/{prefix}weight"), shape),
            (false, false) => self.glorot_shape(&format!("{scope}/{prefix}weight"), shape),
        }
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

/// Shape of a per-condition vector of `c` entries: `[c]` when there are at most one condition entries (the
/// official `classes == 1` case, which the official code also uses for unconditional nets), `[cond_dim, c]`
/// otherwise.
pub fn cond_shape(cond_dim: usize, c: usize) -> Vec<usize> {
    if cond_dim <= 1 {
        vec![c]
    } else {
        vec![cond_dim, c]
    }
}

/// A per-channel vector for every example, shaped `[B, c, 1, 1]` (or `[1, c, 1, 1]` without a condition):
/// `cond @ p` for a condition `[B, L]` and `p` `[L, c]` (or `[c]` when L = 1), or `p` itself (`[c]`) without one.
pub fn per_example(p: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
    let c = *p.dims().last().expect("parameter has a dimension");
    match cond {
        Some(cond) => {
            let p2 = if p.rank() == 1 { p.reshape((1, c))? } else { p.clone() };
            let rows = cond.matmul(&p2)?;
            let b = rows.dims()[0];
            rows.reshape((b, c, 1, 1))
        }
        None => {
            if p.rank() != 1 {
                candle_core::bail!("a parameter of shape {:?} needs a condition", p.dims());
            }
            p.reshape((1, c, 1, 1))
        }
    }
}

/// The official input bias (`extra_bias`): `x + cond @ gb` per example (or `x + gb`), added BEFORE the padding.
pub fn input_bias(x: &Tensor, gb: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
    x.broadcast_add(&per_example(gb, cond)?)
}

/// The official output gain (`use_scale`): `y * (cond @ g + cb)` per example, or `y * g` without a condition.
pub fn output_gain(y: &Tensor, g: &Tensor, cb: Option<&Tensor>, cond: Option<&Tensor>) -> Result<Tensor> {
    y.broadcast_mul(&gain_vector(g, cb, cond)?)
}

/// The per-example gain `cond @ g + cb` (or `g`), shaped `[B, c, 1, 1]` (or `[1, c, 1, 1]`).
fn gain_vector(g: &Tensor, cb: Option<&Tensor>, cond: Option<&Tensor>) -> Result<Tensor> {
    let mut s = per_example(g, cond)?;
    if let (Some(cb), Some(_)) = (cb, cond) {
        let c = cb.elem_count();
        s = s.broadcast_add(&cb.reshape((1, c, 1, 1))?)?;
    }
    Ok(s)
}

/// The official `conv_block` without activation: optional input bias `gb`, convolution with TensorFlow SAME
/// padding and `stride` (through [`ops::conv2d`]), optional gain `(g, cb)`. The conv bias is never added.
pub fn cond_conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    gb: Option<&Tensor>,
    gain: Option<(&Tensor, Option<&Tensor>)>,
    cond: Option<&Tensor>,
) -> Result<Tensor> {
    cond_conv2d_act(x, w, stride, gb, gain, cond, None)
}

/// [`cond_conv2d`] followed by the activation `act` (fused into the convolution where possible, see
/// [`ops::cond_conv2d`]).
pub fn cond_conv2d_act(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    gb: Option<&Tensor>,
    gain: Option<(&Tensor, Option<&Tensor>)>,
    cond: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let bias = gb.map(|gb| per_example(gb, cond)).transpose()?;
    let scale = gain.map(|(g, cb)| gain_vector(g, cb, cond)).transpose()?;
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let pad = ops::Pad2d::same(h, wd, kh, kw, stride);
    ops::cond_conv2d(x, w, stride, pad, bias.as_ref(), scale.as_ref(), act)
}

/// A convolution of a network: its scope, shape, normalisation, conditioning and activation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// Scope of its parameters, e.g. `res_1_res_c2`: `<scope>/cweight` `[cout, cin, k, k]`, `<scope>/c_u`,
    /// `<scope>/gb`, `<scope>/g`, `<scope>/cb`.
    pub scope: String,
    pub k: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
    pub spectral_norm: bool,
    /// The official "zero" weight (second conv of every residual block): N(0, 1e-10) init, clamp-only norm.
    pub zero: bool,
    /// Input bias `gb` (`[cin]`, or `[cond_dim, cin]`).
    pub in_bias: bool,
    /// Output gain `g` (`[cout]`, or `[cond_dim, cout]` plus `cb` `[cout]` when conditional).
    pub gain: bool,
    /// Length of the condition this layer sees (0 = none).
    pub cond_dim: usize,
    /// Activation applied to the output, if any.
    pub act: Option<Activation>,
}

impl ConvLayer {
    /// A plain (unconditioned, spectrally normalised if `sn`) convolution without activation.
    pub fn plain(scope: impl Into<String>, k: usize, cin: usize, cout: usize, stride: usize, sn: bool) -> Self {
        Self {
            scope: scope.into(),
            k,
            cin,
            cout,
            stride,
            spectral_norm: sn,
            zero: false,
            in_bias: false,
            gain: false,
            cond_dim: 0,
            act: None,
        }
    }

    pub fn with_act(mut self, act: Activation) -> Self {
        self.act = Some(act);
        self
    }

    /// Defines the parameters this layer uses (not the unused conv bias `b`).
    pub fn build(&self, b: &mut Builder) -> Result<()> {
        b.weight(&self.scope, "c", &[self.cout, self.cin, self.k, self.k], self.spectral_norm, self.zero)?;
        if self.in_bias {
            b.zeros(&format!("{}/gb", self.scope), &cond_shape(self.cond_dim, self.cin))?;
        }
        if self.gain {
            b.ones(&format!("{}/g", self.scope), &cond_shape(self.cond_dim, self.cout))?;
            if self.cond_dim > 0 {
                b.zeros(&format!("{}/cb", self.scope), &[self.cout])?;
            }
        }
        Ok(())
    }

    pub fn forward(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.forward_act(w, x, cond, self.act)
    }

    /// [`ConvLayer::forward`] with the activation `act` in place of the layer's own.
    pub fn forward_act(
        &self,
        w: &Weights,
        x: &Tensor,
        cond: Option<&Tensor>,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let s = &self.scope;
        let cw = w.get(&format!("{s}/cweight"))?;
        let cond = if self.cond_dim > 0 { cond } else { None };
        let gb = if self.in_bias { Some(w.get(&format!("{s}/gb"))?) } else { None };
        let g = if self.gain { Some(w.get(&format!("{s}/g"))?) } else { None };
        let cb = if self.gain && self.cond_dim > 0 { Some(w.get(&format!("{s}/cb"))?) } else { None };
        cond_conv2d_act(x, &cw, self.stride, gb.as_ref(), g.as_ref().map(|g| (g, cb.as_ref())), cond, act)
    }
}

/// A dense layer `x W^T + b` with `W` `[out, in]`: `<scope>/wweight`, `<scope>/w_u` (if normalised), `<scope>/b`.
/// With spectral normalisation the weight is N(0, 1) (`fc_dense`); without, Glorot-uniform (`fc5`).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    pub scope: String,
    pub inp: usize,
    pub out: usize,
    pub spectral_norm: bool,
}

impl DenseLayer {
    pub fn new(scope: impl Into<String>, inp: usize, out: usize, spectral_norm: bool) -> Self {
        Self { scope: scope.into(), inp, out, spectral_norm }
    }

    pub fn build(&self, b: &mut Builder) -> Result<()> {
        b.weight(&self.scope, "w", &[self.out, self.inp], self.spectral_norm, false)?;
        b.zeros(&format!("{}/b", self.scope), &[self.out])
    }

    pub fn forward(&self, w: &Weights, x: &Tensor) -> Result<Tensor> {
        let s = &self.scope;
        dense(x, &w.get(&format!("{s}/wweight"))?, Some(&w.get(&format!("{s}/b"))?))
    }
}
