//! The residual energy networks: the official ResNet32, ResNet32Large, ResNet32Larger, ResNet32Wider and ResNet128
//! (models.py, reference 2.2), and our own DigitsNet and CondMnistNet built from the same blocks.
//!
//! All share one shape: a 3x3 stem conv `c1_pre` with an activation, a sequence of residual blocks (and at most
//! one self-attention block), a final activation, a global SUM over H and W, and the Glorot-initialised,
//! unnormalised output layer `fc5` (C -> 1). Inputs are NCHW in [0, 1]; the condition is a float matrix
//! `[B, classes]` (one-hot rows).

use crate::arch::{Architecture, Weights};
use crate::blocks::{AttentionLayer, ResBlock};
use crate::config::{Activation, ModelConfig};
use crate::layers::{activate, Builder, ConvLayer, DenseLayer};
use crate::official::{attention_scope, conv_scope, dense_scope, OfficialCounts};
use crate::ops;
use candle_core::{Result, Tensor};

use Activation::{LeakyRelu, Relu, Swish};

/// One stage of a residual network.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Res(ResBlock),
    Attention(AttentionLayer),
}

/// A residual network's layout: what it uses, and what the official code creates without using.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetPlan {
    pub stem: ConvLayer,
    pub stages: Vec<Stage>,
    /// The activation before the global sum.
    pub head_act: Activation,
    pub fc5: DenseLayer,
    /// Length of the condition (number of classes) the blocks take, 0 = unconditional blocks.
    pub cond_dim: usize,
    /// `fc5` is a logit head (C -> classes, `E(x, y) = -logit_y(x)`) rather than the energy head (C -> 1).
    pub logit_head: bool,
    /// The `classes` argument the official code passes to every residual conv (1 = vectors).
    pub official_classes: usize,
    /// Blocks the official code creates but this configuration does not run (replaced by attention).
    pub unused_blocks: Vec<ResBlock>,
    /// The attention scope the official code always creates, when this configuration does not run it.
    pub unused_attention: Option<AttentionLayer>,
    /// The official `fc_dense` that ResNet32 and ResNet32Larger create and never use.
    pub unused_fc_dense: Option<DenseLayer>,
}

/// `(name, cin, cout, downsample)` of each block.
type Layout<'a> = &'a [(&'a str, usize, usize, bool)];

impl ResNetPlan {
    fn new(
        stem: ConvLayer,
        blocks: Layout,
        block_act: impl Fn(&str) -> Activation,
        head_act: Activation,
        cond_dim: usize,
        sn: bool,
    ) -> Self {
        let stages = blocks
            .iter()
            .map(|&(name, cin, cout, down)| {
                Stage::Res(ResBlock::new(name, cin, cout, down, block_act(name), cond_dim, sn))
            })
            .collect::<Vec<_>>();
        let head_in = blocks.last().map(|b| b.2).unwrap_or(stem.cout);
        Self {
            stem,
            stages,
            head_act,
            fc5: DenseLayer::new("fc5", head_in, 1, false),
            cond_dim,
            logit_head: false,
            official_classes: cond_dim.max(1),
            unused_blocks: Vec::new(),
            unused_attention: None,
            unused_fc_dense: None,
        }
    }

    /// Puts `atten` in place of block `name` (`replace`) or right after it, when `on`; otherwise records it as an
    /// official-but-unused scope when `official`.
    fn attention(mut self, on: bool, name: &str, replace: bool, atten: AttentionLayer, official: bool) -> Self {
        if !on {
            if official {
                self.unused_attention = Some(atten);
            }
            return self;
        }
        let i = self
            .stages
            .iter()
            .position(|s| matches!(s, Stage::Res(b) if b.name == name))
            .expect("attention anchor block exists");
        if replace {
            if let Stage::Res(b) = std::mem::replace(&mut self.stages[i], Stage::Attention(atten)) {
                if official {
                    self.unused_blocks.push(b);
                }
            }
        } else {
            self.stages.insert(i + 1, Stage::Attention(atten));
        }
        self
    }

    fn dropout(mut self, on: bool) -> Self {
        for s in &mut self.stages {
            if let Stage::Res(b) = s {
                b.dropout = on;
            }
        }
        self
    }

    /// The plan of a residual-network config (None for the MLP and the strided conv nets).
    pub fn from_config(cfg: &ModelConfig) -> Option<Self> {
        Some(match cfg {
            ModelConfig::ResNet32(c) => Self::resnet32(c),
            ModelConfig::ResNet32Large(c) => Self::resnet32_large(c),
            ModelConfig::ResNet32Larger(c) => Self::resnet32_larger(c),
            ModelConfig::ResNet32Wider(c) => Self::resnet32_wider(c),
            ModelConfig::ResNet128(c) => Self::resnet128(c),
            ModelConfig::DigitsNet(c) => Self::digits(c),
            ModelConfig::CondMnistNet(c) => Self::cond_mnist(c),
            _ => return None,
        })
    }

    /// Official `ResNet32(F)` (32x32):
    /// ```text
    /// c1_pre 3x3 C->F, leaky        32x32
    /// res_optim F->F ds             16x16
    /// res_1 F->F
    /// res_2 F->2F ds (adaptive)     8x8
    /// res_3 2F->2F                  (self-attention C=2F, K=F/2 instead with `attention`)
    /// res_4 2F->2F ds               4x4
    /// res_5 2F->2F
    /// ReLU -> sum over HxW -> fc5 2F->1
    /// ```
    /// Blocks use leaky-ReLU. The official code also creates an unused `fc_dense` (4*4*2F -> 4F).
    pub fn resnet32(c: &crate::config::ResNet32Config) -> Self {
        let (f, sn) = (c.filters, c.spectral_norm);
        let stem = ConvLayer::plain("c1_pre", 3, c.channels, f, 1, sn).with_act(LeakyRelu);
        let blocks = [
            ("res_optim", f, f, true),
            ("res_1", f, f, false),
            ("res_2", f, 2 * f, true),
            ("res_3", 2 * f, 2 * f, false),
            ("res_4", 2 * f, 2 * f, true),
            ("res_5", 2 * f, 2 * f, false),
        ];
        let mut p = Self::new(stem, &blocks, |_| LeakyRelu, Relu, c.classes, sn).attention(
            c.attention,
            "res_3",
            true,
            AttentionLayer::new(2 * f, (f / 2).max(1), sn),
            true,
        );
        p.unused_fc_dense = Some(DenseLayer::new("fc_dense", 4 * 4 * 2 * f, 4 * f, sn));
        p
    }

    /// Official `ResNet32Large(F)` (32x32; the pretrained unconditional CIFAR-10 model):
    /// ```text
    /// c1_pre 3x3 C->F, leaky        32x32
    /// res_optim F->F ds             16x16
    /// res_1, res_2 F->F
    /// res_3 F->2F ds (adaptive)     8x8
    /// res_4 2F->2F                  (self-attention C=2F, K=F instead with `attention`)
    /// res_5 2F->2F
    /// res_6 2F->4F ds (adaptive)    4x4
    /// res_7, res_8 4F->4F
    /// leaky-ReLU if conditional else ReLU -> sum -> fc5 4F->1
    /// ```
    /// Blocks use leaky-ReLU and, with `dropout`, dropout 0.5 on their first conv output in training mode.
    pub fn resnet32_large(c: &crate::config::ResNet32LargeConfig) -> Self {
        let (f, sn) = (c.filters, c.spectral_norm);
        let stem = ConvLayer::plain("c1_pre", 3, c.channels, f, 1, sn).with_act(LeakyRelu);
        let blocks = [
            ("res_optim", f, f, true),
            ("res_1", f, f, false),
            ("res_2", f, f, false),
            ("res_3", f, 2 * f, true),
            ("res_4", 2 * f, 2 * f, false),
            ("res_5", 2 * f, 2 * f, false),
            ("res_6", 2 * f, 4 * f, true),
            ("res_7", 4 * f, 4 * f, false),
            ("res_8", 4 * f, 4 * f, false),
        ];
        let head = if c.classes > 0 { LeakyRelu } else { Relu };
        Self::new(stem, &blocks, |_| LeakyRelu, head, c.classes, sn).dropout(c.dropout).attention(
            c.attention,
            "res_4",
            true,
            AttentionLayer::new(2 * f, f, sn),
            true,
        )
    }

    /// Official `ResNet32Larger(F)`: ResNet32Large (without dropout) plus `res_2a`, `res_2b` (F), `res_5a`,
    /// `res_5b` (2F), `res_8a`, `res_8b` (4F); attention (C=2F, K=F/2) replaces `res_4`. The official code also
    /// creates an unused `fc_dense` (4*4*2F -> 4F).
    pub fn resnet32_larger(c: &crate::config::ResNet32Config) -> Self {
        let (f, sn) = (c.filters, c.spectral_norm);
        let stem = ConvLayer::plain("c1_pre", 3, c.channels, f, 1, sn).with_act(LeakyRelu);
        let blocks = [
            ("res_optim", f, f, true),
            ("res_1", f, f, false),
            ("res_2", f, f, false),
            ("res_2a", f, f, false),
            ("res_2b", f, f, false),
            ("res_3", f, 2 * f, true),
            ("res_4", 2 * f, 2 * f, false),
            ("res_5", 2 * f, 2 * f, false),
            ("res_5a", 2 * f, 2 * f, false),
            ("res_5b", 2 * f, 2 * f, false),
            ("res_6", 2 * f, 4 * f, true),
            ("res_7", 4 * f, 4 * f, false),
            ("res_8", 4 * f, 4 * f, false),
            ("res_8a", 4 * f, 4 * f, false),
            ("res_8b", 4 * f, 4 * f, false),
        ];
        let head = if c.classes > 0 { LeakyRelu } else { Relu };
        let mut p = Self::new(stem, &blocks, |_| LeakyRelu, head, c.classes, sn).attention(
            c.attention,
            "res_4",
            true,
            AttentionLayer::new(2 * f, (f / 2).max(1), sn),
            true,
        );
        p.unused_fc_dense = Some(DenseLayer::new("fc_dense", 4 * 4 * 2 * f, 4 * f, sn));
        p
    }

    /// Official `ResNet32Wider(F)` (32x32; ImageNet32):
    /// ```text
    /// c1_pre 3x3 C->128, act        32x32
    /// res_optim 128->F ds (adaptive, always leaky)   16x16
    /// res_1 F->F                    (self-attention C=F, K=F/2 instead with `attention`)
    /// res_2 F->F
    /// res_3 F->2F ds (adaptive)     8x8
    /// res_4, res_5 2F->2F
    /// res_6 2F->4F ds (adaptive)    4x4
    /// res_7, res_8 4F->4F
    /// swish if act is swish else ReLU -> sum -> fc5 4F->1
    /// ```
    pub fn resnet32_wider(c: &crate::config::ResNet32WiderConfig) -> Self {
        let (f, sn, act) = (c.filters, c.spectral_norm, c.activation);
        let stem = ConvLayer::plain("c1_pre", 3, c.channels, 128, 1, sn).with_act(act);
        let blocks = [
            ("res_optim", 128, f, true),
            ("res_1", f, f, false),
            ("res_2", f, f, false),
            ("res_3", f, 2 * f, true),
            ("res_4", 2 * f, 2 * f, false),
            ("res_5", 2 * f, 2 * f, false),
            ("res_6", 2 * f, 4 * f, true),
            ("res_7", 4 * f, 4 * f, false),
            ("res_8", 4 * f, 4 * f, false),
        ];
        let head = if act == Swish { Swish } else { Relu };
        let block_act = |name: &str| if name == "res_optim" { LeakyRelu } else { act };
        let atten = AttentionLayer { logit_dropout: c.dropout, ..AttentionLayer::new(f, (f / 2).max(1), sn) };
        Self::new(stem, &blocks, block_act, head, c.classes, sn).dropout(c.dropout).attention(
            c.attention,
            "res_1",
            true,
            atten,
            true,
        )
    }

    /// Official `ResNet128(F)` (128x128 ImageNet):
    /// ```text
    /// c1_pre 3x3 C->64, act         128x128
    /// res_optim 64->F ds (always leaky)   64x64
    /// (self-attention C=F, K=F/2 added here with `attention`)
    /// res_3 F->2F ds (adaptive)     32x32
    /// res_5 2F->4F ds (adaptive)    16x16
    /// res_7 4F->8F ds (adaptive)    8x8
    /// res_9 8F->8F ds               4x4
    /// res_10 8F->8F
    /// swish if act is swish else ReLU -> sum -> fc5 8F->1
    /// ```
    pub fn resnet128(c: &crate::config::ResNet128Config) -> Self {
        let (f, sn, act) = (c.filters, c.spectral_norm, c.activation);
        let stem = ConvLayer::plain("c1_pre", 3, c.channels, 64, 1, sn).with_act(act);
        let blocks = [
            ("res_optim", 64, f, true),
            ("res_3", f, 2 * f, true),
            ("res_5", 2 * f, 4 * f, true),
            ("res_7", 4 * f, 8 * f, true),
            ("res_9", 8 * f, 8 * f, true),
            ("res_10", 8 * f, 8 * f, false),
        ];
        let head = if act == Swish { Swish } else { Relu };
        let block_act = |name: &str| if name == "res_optim" { LeakyRelu } else { act };
        let mut p = Self::new(stem, &blocks, block_act, head, c.classes, sn).dropout(c.dropout).attention(
            c.attention,
            "res_optim",
            false,
            AttentionLayer::new(f, (f / 2).max(1), sn),
            true,
        );
        p.official_classes = 1000; // hard-coded in the official construct_weights
        p
    }

    /// OUR `DigitsNet(F)` for 8x8x1 images (not in the paper):
    /// ```text
    /// c1_pre 3x3 1->F, act          8x8
    /// res_1 F->F ds                 4x4   (self-attention C=F, K=F/2 after it with `attention`)
    /// res_2 F->2F ds (adaptive)     2x2
    /// res_3 2F->2F
    /// act -> sum over HxW -> fc5 2F->1
    /// ```
    /// Every block is class-conditional (input biases, output gains) exactly like the official blocks.
    pub fn digits(c: &crate::config::DigitsNetConfig) -> Self {
        let (f, sn, act) = (c.filters, c.spectral_norm, c.activation);
        let stem = ConvLayer::plain("c1_pre", 3, 1, f, 1, sn).with_act(act);
        let blocks = [("res_1", f, f, true), ("res_2", f, 2 * f, true), ("res_3", 2 * f, 2 * f, false)];
        Self::new(stem, &blocks, |_| act, act, c.classes, sn).attention(
            c.attention,
            "res_1",
            false,
            AttentionLayer::new(f, (f / 2).max(1), sn),
            false,
        )
    }

    /// OUR `CondMnistNet(F)` for 28x28x1 images (not in the paper; the official MnistNet is unconditional):
    /// ```text
    /// c1_pre 3x3 1->F, act          28x28
    /// res_1 F->F ds                 14x14
    /// res_2 F->2F ds (adaptive)     7x7   (self-attention C=2F, K=F after it with `attention`)
    /// res_3 2F->2F
    /// res_4 2F->2F
    /// act -> sum over HxW -> fc5 2F->1
    /// ```
    ///
    /// With `logit_head` the blocks are unconditional and `fc5` is 2F -> classes.
    pub fn cond_mnist(c: &crate::config::CondMnistNetConfig) -> Self {
        let (f, sn, act) = (c.filters, c.spectral_norm, c.activation);
        let stem = ConvLayer::plain("c1_pre", 3, 1, f, 1, sn).with_act(act);
        let blocks = [
            ("res_1", f, f, true),
            ("res_2", f, 2 * f, true),
            ("res_3", 2 * f, 2 * f, false),
            ("res_4", 2 * f, 2 * f, false),
        ];
        let block_cond = if c.logit_head { 0 } else { c.classes };
        let plan = Self::new(stem, &blocks, |_| act, act, block_cond, sn).attention(
            c.attention,
            "res_2",
            false,
            AttentionLayer::new(2 * f, f.max(1), sn),
            false,
        );
        if c.logit_head {
            plan.logit_head(c.classes)
        } else {
            plan
        }
    }

    /// Replaces the energy head by a `classes`-logit one.
    fn logit_head(mut self, classes: usize) -> Self {
        self.fc5 = DenseLayer::new("fc5", self.fc5.inp, classes, false);
        self.logit_head = true;
        self
    }

    /// The variables the official code would create for this network (see [`crate::official`]).
    pub fn official_counts(&self) -> OfficialCounts {
        let stem = &self.stem;
        let mut n = conv_scope(stem.k, stem.cin, stem.cout, 1, stem.spectral_norm);
        let blocks = self.stages.iter().filter_map(|s| match s {
            Stage::Res(b) => Some(b),
            Stage::Attention(_) => None,
        });
        for b in blocks.chain(&self.unused_blocks) {
            n += b.convs().map(|c| conv_scope(c.k, c.cin, c.cout, self.official_classes, c.spectral_norm)).sum();
        }
        let attention = self.stages.iter().filter_map(|s| match s {
            Stage::Attention(a) => Some(a),
            Stage::Res(_) => None,
        });
        for a in attention.chain(&self.unused_attention) {
            n += attention_scope(a.c, a.k, a.spectral_norm);
        }
        if let Some(d) = &self.unused_fc_dense {
            n += dense_scope(d.inp, d.out, d.spectral_norm);
        }
        n + dense_scope(self.fc5.inp, self.fc5.out, self.fc5.spectral_norm)
    }

    pub fn build(self, b: &mut Builder) -> Result<ResNet> {
        self.stem.build(b)?;
        for s in &self.stages {
            match s {
                Stage::Res(r) => r.build(b)?,
                Stage::Attention(a) => a.build(b)?,
            }
        }
        self.fc5.build(b)?;
        Ok(ResNet { plan: self })
    }
}

/// A residual energy network built from a [`ResNetPlan`].
#[derive(Debug)]
pub struct ResNet {
    pub plan: ResNetPlan,
}

impl ResNet {
    /// The output layer's values: `[B, 1]` energies, or `[B, classes]` logits.
    fn head(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let p = &self.plan;
        let mut h = p.stem.forward(w, x, None)?;
        for s in &p.stages {
            h = match s {
                Stage::Res(r) => r.forward(w, &h, cond)?,
                Stage::Attention(a) => a.forward(w, &h)?,
            };
        }
        let h = ops::global_sum(&activate(&h, p.head_act)?)?;
        p.fc5.forward(w, &h)
    }
}

impl Architecture for ResNet {
    fn forward(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        if !self.plan.logit_head {
            return self.head(w, x, cond)?.squeeze(1);
        }
        let Some(cond) = cond else {
            candle_core::bail!("a logit-head network scores a class: pass a condition");
        };
        // E(x, y) = -sum_c y_c logit_c(x): the negated logit of a one-hot class
        self.head(w, x, None)?.mul(cond)?.sum(1)?.neg()
    }

    fn class_energies(&self, w: &Weights, x: &Tensor) -> Option<Result<Tensor>> {
        self.plan.logit_head.then(|| self.head(w, x, None)?.neg())
    }
}
