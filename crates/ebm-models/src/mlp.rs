//! The spectrally normalised MLP energy for low-dimensional data.

use crate::config::MlpConfig;
use crate::layers::{activate, dense, Builder};
use crate::net::{Architecture, Weights};
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
            b.sn_weight(&scope, "w", &[cfg.hidden, inp], 1.0, kind)?;
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
}
