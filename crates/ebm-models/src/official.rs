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
//! What we store is smaller: only the variables the forward pass uses ([`crate::Params::trainable_count`]): no
//! conv bias `b`, no `g`/`gb`/`cb` where a conv does not apply them (the first conv of a block has only `gb`, the
//! second `gb`, `g` and, conditional, `cb`; the stem and the shortcut none), no unused `fc_dense`, no attention
//! scope unless attention runs (then without `atten_v_b1`) and no block that attention replaces. Measured with the
//! official options (`cargo test -p ebm-models --test zoo -- --ignored print_official`):
//!
//! | model | reference | official (computed) | + `_u` state | stored trainable |
//! |---|---|---|---|---|
//! | ResNet32(128) uncond | 7.52M | 7,519,496 | 3,840 | 5,315,841 |
//! | ResNet32Large(128) uncond | 18.74M | 18,738,312 | 6,784 | 18,591,105 |
//! | Wider(192, 10 cls) | 42.19M | 42,185,864 | 9,920 | 42,037,185 |
//! | Wider(256, 10 cls) | 74.71M | 74,710,408 | 13,184 | 74,480,001 |
//! | Wider(256, 1000 cls) | 97.77M | 97,773,448 | 13,184 | 89,559,681 |
//! | ResNet128(64, 1000 cls) | 24.56M | 24,555,592 | 5,056 | 21,212,289 |
//! | MnistNet(64) | 1.25M | 1,247,555 | 640 | 1,246,017 |
//! | DspritesNet(64, L=2) | 0.95M | 953,283 | 608 | 951,905 |

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
