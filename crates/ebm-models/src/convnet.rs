//! The strided convolutional energy networks of the official code: `MnistNet` and `DspritesNet` (models.py,
//! reference 2.2). Their 4x4 stride-2 convs use TensorFlow SAME padding, whose odd pixel goes bottom/right.
//!
//! The flatten before `fc_dense` is in NCHW order (ours and the PyTorch reference's); the official NHWC order
//! differs, so a converter of official checkpoints permutes the columns of `fc_dense/wweight`.

use crate::arch::{Architecture, Weights};
use crate::config::{Activation, ModelConfig};
use crate::layers::{activate, Builder, ConvLayer, DenseLayer};
use crate::official::{conv_scope, dense_scope, OfficialCounts};
use crate::ops;
use candle_core::{Result, Tensor};

/// A stack of convs (each with its activation), flatten, `fc_dense` + activation, `fc5`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvNetPlan {
    pub convs: Vec<ConvLayer>,
    pub fc_dense: DenseLayer,
    pub fc_act: Activation,
    pub fc5: DenseLayer,
    /// The official `classes` argument of each conv scope (for the variable count).
    pub official_classes: Vec<usize>,
    /// Average the last features over space instead of flattening them (ours; `DspritesNetConfig::global_pool`).
    pub global_pool: bool,
}

impl ConvNetPlan {
    pub fn from_config(cfg: &ModelConfig) -> Option<Self> {
        Some(match cfg {
            ModelConfig::MnistNet(c) => Self::mnist(c),
            ModelConfig::DspritesNet(c) => Self::dsprites(c),
            _ => return None,
        })
    }

    /// Official `MnistNet(F)` (28x28x1, unconditional):
    /// ```text
    /// c1_pre 3x3 s1 1->64, act      28x28
    /// c1 4x4 s2 64->F, act          14x14
    /// c2 4x4 s2 F->2F, act          7x7
    /// c3 4x4 s2 2F->4F, act         4x4 (SAME pads 1 top, 2 bottom)
    /// flatten 64F -> fc_dense (normalised) -> 2F, act -> fc5 2F->1
    /// ```
    /// No conv uses its bias, gain or input bias.
    pub fn mnist(c: &crate::config::MnistNetConfig) -> Self {
        let (f, sn, act) = (c.filters, c.spectral_norm, c.activation);
        let convs = vec![
            ConvLayer::plain("c1_pre", 3, 1, 64, 1, sn).with_act(act),
            ConvLayer::plain("c1", 4, 64, f, 2, sn).with_act(act),
            ConvLayer::plain("c2", 4, f, 2 * f, 2, sn).with_act(act),
            ConvLayer::plain("c3", 4, 2 * f, 4 * f, 2, sn).with_act(act),
        ];
        Self {
            convs,
            fc_dense: DenseLayer::new("fc_dense", 4 * 4 * 4 * f, 2 * f, sn),
            fc_act: act,
            fc5: DenseLayer::new("fc5", 2 * f, 1, false),
            official_classes: vec![1; 4],
            global_pool: false,
        }
    }

    /// Official `DspritesNet(F)` (64x64x1) conditioned on L continuous latents:
    /// ```text
    /// c1_pre 3x3 s1 1->32, act                     64x64
    /// c1 4x4 s2 32->F + input bias, act            32x32
    /// c2 4x4 s2 F->2F + input bias, act            16x16
    /// c3 4x4 s2 2F->2F + input bias + gain, act    8x8
    /// c4 4x4 s2 2F->2F + input bias, act           4x4
    /// flatten 32F -> fc_dense (normalised) -> 2F, act -> fc5 2F->1
    /// ```
    /// The input bias is `x + latents @ gb` per example (gb `[L, cin]`, or `[cin]` scaled by the scalar latent when
    /// L = 1, or added as is when unconditional); the gain `(latents @ g + cb)`.
    ///
    /// With `image_size` other than 64 only the size of `fc_dense`'s input changes: `2F · ceil(side / 16)²`; with
    /// `global_pool` it is `2F` (the mean over space). `depth` < 4 (ours) drops the last strided convs.
    pub fn dsprites(c: &crate::config::DspritesNetConfig) -> Self {
        let (f, sn, act, l) = (c.filters, c.spectral_norm, c.activation, c.cond_dim);
        let cond = |c: ConvLayer| ConvLayer { in_bias: true, cond_dim: l, ..c };
        let depth = c.depth.clamp(1, 4);
        let last = if c.global_pool { 1 } else { c.image_size.div_ceil(1 << depth) };
        let mut convs = vec![
            ConvLayer::plain("c1_pre", 3, 1, 32, 1, sn).with_act(act),
            cond(ConvLayer::plain("c1", 4, 32, f, 2, sn).with_act(act)),
            cond(ConvLayer::plain("c2", 4, f, 2 * f, 2, sn).with_act(act)),
            ConvLayer { gain: true, ..cond(ConvLayer::plain("c3", 4, 2 * f, 2 * f, 2, sn).with_act(act)) },
            cond(ConvLayer::plain("c4", 4, 2 * f, 2 * f, 2, sn).with_act(act)),
        ];
        convs.truncate(1 + depth);
        let width = if depth == 1 { f } else { 2 * f };
        let mut official_classes = vec![1, l.max(1), l.max(1), l.max(1), l.max(1)];
        official_classes.truncate(1 + depth);
        Self {
            convs,
            fc_dense: DenseLayer::new("fc_dense", width * last * last, 2 * f, sn),
            fc_act: act,
            fc5: DenseLayer::new("fc5", 2 * f, 1, false),
            official_classes,
            global_pool: c.global_pool,
        }
    }

    /// The variables the official code would create for this network (see [`crate::official`]).
    pub fn official_counts(&self) -> OfficialCounts {
        let convs: OfficialCounts = self
            .convs
            .iter()
            .zip(&self.official_classes)
            .map(|(c, &cls)| conv_scope(c.k, c.cin, c.cout, cls, c.spectral_norm))
            .sum();
        convs
            + dense_scope(self.fc_dense.inp, self.fc_dense.out, self.fc_dense.spectral_norm)
            + dense_scope(self.fc5.inp, self.fc5.out, self.fc5.spectral_norm)
    }

    pub fn build(self, b: &mut Builder) -> Result<ConvNet> {
        for c in &self.convs {
            c.build(b)?;
        }
        self.fc_dense.build(b)?;
        self.fc5.build(b)?;
        Ok(ConvNet { plan: self })
    }
}

/// A strided conv energy network built from a [`ConvNetPlan`].
#[derive(Debug)]
pub struct ConvNet {
    pub plan: ConvNetPlan,
}

impl Architecture for ConvNet {
    fn forward(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let p = &self.plan;
        let mut h = x.clone();
        for c in &p.convs {
            h = c.forward(w, &h, cond)?;
        }
        let h = if p.global_pool { h.mean((2, 3))? } else { ops::flatten(&h)? };
        let h = activate(&p.fc_dense.forward(w, &h)?, p.fc_act)?;
        p.fc5.forward(w, &h)?.squeeze(1)
    }
}
