//! Variable counts of the official TensorFlow networks (reference 2.3), computed from the layer plans the zoo
//! builds from, with the official variable-creation rules (`utils.init_conv_weight`, `init_fc_weight`,
//! `init_attention_weight`, `init_res_weight`):
//!
//! - every conv scope stores `cweight` `[k,k,cin,cout]`, the never-added bias `b` `[cout]`, the gain `g` (`[cout]`,
//!   or `[classes, cout]`), the input bias `gb` (`[cin]`, or `[classes, cin]`) and `cb` `[cin]`, whether the
//!   network uses them or not, plus `c_u` `[1, cout]` with spectral normalisation;
//! - a dense scope stores `wweight` `[in, out]`, `b` `[out]` and, normalised, `w_u` `[1, out]`;
//! - the attention scope stores q/k `[1,1,C,K]` with biases `[K]`, v `[1,1,C,C]` with its (unused) bias `[C]`,
//!   `gamma` `[1]`, and the three `_u`;
//! - every official ResNet creates the attention scope whether `--use_attention` is set or not, and the residual
//!   block that attention replaces; ResNet32 and ResNet32Larger also create an unused `fc_dense`.
//!
//! The table of reference 2.3 counts trainable variables only (the `_u` vectors are not trainable; with them two
//! entries would round differently), so [`official_variable_count`] does the same and [`OfficialCounts`] reports
//! the power-iteration state separately.
//!
//! What we store is smaller: only the variables the forward pass uses ([`crate::Params::trainable_count`]).

use crate::config::ModelConfig;
use crate::convnet::ConvNetPlan;
use crate::resnet::ResNetPlan;
use std::ops::{Add, AddAssign};

/// Scalars in the variables the official code would create for a network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfficialCounts {
    /// Trainable variables (what reference 2.3 tabulates).
    pub trainable: usize,
    /// Non-trainable power-iteration vectors `*_u`.
    pub sn_state: usize,
}

impl Add for OfficialCounts {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self { trainable: self.trainable + o.trainable, sn_state: self.sn_state + o.sn_state }
    }
}

impl AddAssign for OfficialCounts {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl std::iter::Sum for OfficialCounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

/// One `init_conv_weight` scope: `classes` is the official argument (1 = vectors).
pub fn conv_scope(k: usize, cin: usize, cout: usize, classes: usize, spectral_norm: bool) -> OfficialCounts {
    let per = |c: usize| if classes <= 1 { c } else { classes * c };
    OfficialCounts {
        trainable: k * k * cin * cout + cout + per(cout) + per(cin) + cin,
        sn_state: if spectral_norm { cout } else { 0 },
    }
}

/// One `init_fc_weight` scope.
pub fn dense_scope(inp: usize, out: usize, spectral_norm: bool) -> OfficialCounts {
    OfficialCounts { trainable: inp * out + out, sn_state: if spectral_norm { out } else { 0 } }
}

/// One `init_attention_weight` scope with `c` channels and `k` query/key channels.
pub fn attention_scope(c: usize, k: usize, spectral_norm: bool) -> OfficialCounts {
    OfficialCounts { trainable: 2 * (c * k + k) + c * c + c + 1, sn_state: if spectral_norm { 2 * k + c } else { 0 } }
}

/// The variables the official code would create for `cfg`. For our own networks (DigitsNet, CondMnistNet, the
/// MLP) it applies the same creation rules to the layers they use.
pub fn official_counts(cfg: &ModelConfig) -> OfficialCounts {
    match cfg {
        ModelConfig::Mlp(c) => {
            let mut n = OfficialCounts::default();
            let mut inp = c.input_dim;
            for _ in 0..c.depth {
                n += dense_scope(inp, c.hidden, c.spectral_norm);
                inp = c.hidden;
            }
            n + dense_scope(inp, 1, false)
        }
        ModelConfig::MnistNet(_) | ModelConfig::DspritesNet(_) => {
            ConvNetPlan::from_config(cfg).expect("a conv-net config").official_counts()
        }
        _ => ResNetPlan::from_config(cfg).expect("a resnet config").official_counts(),
    }
}

/// Trainable scalars the official code would create for `cfg` (the quantity of reference 2.3's table).
pub fn official_variable_count(cfg: &ModelConfig) -> usize {
    official_counts(cfg).trainable
}
