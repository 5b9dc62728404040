//! The spectrally normalised MLP energy for low-dimensional data.

use crate::arch::{Architecture, Weights};
use crate::config::{Activation, MlpConfig};
use crate::layers::{activate, dense, Builder};
use crate::spectral::SnKind;
use candle_core::{Result, Tensor};

/// `E(x) = w_out . h_L + b_out` with `h_i = act(W_i h_{i-1} + b_i)`, each `W_i` spectrally normalised, the
/// output layer not (so the energy's scale is learnt there).
pub struct Mlp {
    cfg: MlpConfig,
}

impl Mlp {
    pub fn build(cfg: &MlpConfig, b: &mut Builder) -> Result<Self> {
        let mut inp = cfg.input_dim;
        let kind = cfg.spectral_norm.then_some(SnKind::Normal);
        for i in 0..cfg.depth {
            let scope = format!("fc{i}");
            if kind.is_some() {
                // raw N(0, 1) as the official code: the normalisation sets the scale
                b.sn_weight(&scope, "w", &[cfg.hidden, inp], 1.0, kind)?;
            } else if let Some(std) = cfg.weight_std {
                b.sn_weight(&scope, "w", &[cfg.hidden, inp], std, None)?;
            } else {
                b.glorot(&format!("{scope}/wweight"), cfg.hidden, inp)?;
            }
            b.zeros(&format!("{scope}/b"), &[cfg.hidden])?;
            inp = cfg.hidden;
        }
        b.glorot("fc_out/wweight", 1, inp)?;
        b.zeros("fc_out/b", &[1])?;
        Ok(Self { cfg: cfg.clone() })
    }
}

impl Architecture for Mlp {
    fn forward(&self, w: &Weights, x: &Tensor, _cond: Option<&Tensor>) -> Result<Tensor> {
        let mut h = x.clone();
        for i in 0..self.cfg.depth {
            let wi = w.get(&format!("fc{i}/wweight"))?;
            let bi = w.get(&format!("fc{i}/b"))?;
            h = activate(&dense(&h, &wi, Some(&bi))?, self.cfg.activation)?;
        }
        let out = dense(&h, &w.get("fc_out/wweight")?, Some(&w.get("fc_out/b")?))?;
        out.squeeze(1)
    }

    /// Forward, then the chain rule by hand: a third of autograd's operations.
    fn energy_and_input_grad(
        &self,
        w: &Weights,
        x: &Tensor,
        _cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        Some((|| {
            let mut h = x.clone();
            let mut pre = Vec::with_capacity(self.cfg.depth);
            let mut ws = Vec::with_capacity(self.cfg.depth);
            for i in 0..self.cfg.depth {
                let wi = w.get(&format!("fc{i}/wweight"))?;
                let z = dense(&h, &wi, Some(&w.get(&format!("fc{i}/b"))?))?;
                h = activate(&z, self.cfg.activation)?;
                pre.push(z);
                ws.push(wi);
            }
            let w_out = w.get("fc_out/wweight")?;
            let e = dense(&h, &w_out, Some(&w.get("fc_out/b")?))?.squeeze(1)?;
            let mut d = w_out.broadcast_as((x.dims()[0], w_out.dims()[1]))?.contiguous()?;
            for (z, wi) in pre.iter().zip(&ws).rev() {
                d = (d * activation_derivative(z, self.cfg.activation)?)?.matmul(wi)?;
            }
            Ok((e, d))
        })())
    }
}

/// `act'(z)` elementwise.
fn activation_derivative(z: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Swish => {
            let s = candle_nn::ops::sigmoid(z)?;
            // d/dz z s(z) = s + z s (1 - s)
            let one_minus = s.affine(-1.0, 1.0)?;
            &s + (z * &s)?.mul(&one_minus)?
        }
        Activation::LeakyRelu => z.ge(0.0)?.to_dtype(z.dtype())?.affine(0.8, 0.2),
        Activation::Relu => z.ge(0.0)?.to_dtype(z.dtype()),
    }
}
