//! The official residual block (`smart_res_block`) and self-attention block (`attention`), reference 2.1.

use crate::arch::Weights;
use crate::config::Activation;
use crate::layers::{activate, leaky_relu, Builder, ConvLayer};
use crate::ops;
use candle_core::{Result, Tensor, D};
use ebm_kernels::Rng;
use std::sync::Mutex;

/// Dropout rate of the residual blocks' first conv output (official `tf.layers.dropout(rate=0.5)`).
pub const BLOCK_DROPOUT: f32 = 0.5;
/// Dropout rate of the attention logits in training mode (official `tf.nn.dropout(s, 0.9)`: keep 0.9).
pub const ATTENTION_LOGIT_DROPOUT: f32 = 0.1;

/// One residual block `R`:
/// ```text
/// h  = conv3x3(x + gb1)              R_res_c1: input bias, no gain
/// h  = dropout(h, 0.5)               only when the block has dropout and the net is in training mode
/// h  = act(h)
/// h2 = conv3x3(h + gb2) * gain2      R_res_c2: input bias and gain; zero-initialised, clamp-only normalisation
/// sc = conv3x3(x) if cin != cout else x    R_res_adaptive: 3x3, normalised, no conditioning
/// y  = avgpool2x2(h2 + sc) if down else h2 + sc
/// return act(y)
/// ```
/// The official code passes `adaptive=False` only where `cin == cout` in every network that runs, and creates
/// the shortcut's variables exactly when `cin != cout`, so the shortcut conv exists iff the widths differ.
#[derive(Debug, Clone, PartialEq)]
pub struct ResBlock {
    pub name: String,
    pub c1: ConvLayer,
    pub c2: ConvLayer,
    pub shortcut: Option<ConvLayer>,
    pub down: bool,
    pub act: Activation,
    pub dropout: bool,
}

impl ResBlock {
    /// Block `name` from `cin` to `cout` channels, conditioned on `cond_dim` entries (0 = unconditional).
    pub fn new(
        name: &str,
        cin: usize,
        cout: usize,
        down: bool,
        act: Activation,
        cond_dim: usize,
        spectral_norm: bool,
    ) -> Self {
        let c1 = ConvLayer {
            in_bias: true,
            cond_dim,
            ..ConvLayer::plain(format!("{name}_res_c1"), 3, cin, cout, 1, spectral_norm)
        };
        let c2 = ConvLayer {
            zero: true,
            in_bias: true,
            gain: true,
            cond_dim,
            ..ConvLayer::plain(format!("{name}_res_c2"), 3, cout, cout, 1, spectral_norm)
        };
        let shortcut =
            (cin != cout).then(|| ConvLayer::plain(format!("{name}_res_adaptive"), 3, cin, cout, 1, spectral_norm));
        Self { name: name.to_string(), c1, c2, shortcut, down, act, dropout: false }
    }

    pub fn with_dropout(mut self, dropout: bool) -> Self {
        self.dropout = dropout;
        self
    }

    pub fn cin(&self) -> usize {
        self.c1.cin
    }

    pub fn cout(&self) -> usize {
        self.c1.cout
    }

    pub fn convs(&self) -> impl Iterator<Item = &ConvLayer> {
        [&self.c1, &self.c2].into_iter().chain(self.shortcut.as_ref())
    }

    pub fn build(&self, b: &mut Builder) -> Result<()> {
        self.convs().try_for_each(|c| c.build(b))
    }

    pub fn forward(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let h = match (self.dropout, w.dropout) {
            (true, Some(rng)) => {
                let h = self.c1.forward(w, x, cond)?;
                activate(&ops::dropout(&h, BLOCK_DROPOUT, rng)?, self.act)?
            }
            // without dropout the activation fuses into the convolution
            _ => self.c1.forward_act(w, x, cond, Some(self.act))?,
        };
        let h2 = self.c2.forward(w, &h, cond)?;
        let sc = match &self.shortcut {
            Some(s) => s.forward(w, x, None)?,
            None => x.clone(),
        };
        // act(avgpool(h2 + sc)) in one op
        ops::residual_tail(&h2, &sc, self.down, self.act)
    }
}

/// The official self-attention block (scope `atten`): `x + gamma * o` with `o = softmax(q k^T) v` over the H*W
/// positions, `q = conv1x1(x) + b_q`, `k = conv1x1(x) + b_k` (`K` channels), `v = leaky_relu(conv1x1(x))` (`C`
/// channels, its bias `atten_v_b1` is unused), no scaling of the logits, `gamma` initialised to 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionLayer {
    pub scope: String,
    pub c: usize,
    pub k: usize,
    pub spectral_norm: bool,
    /// Dropout (keep 0.9) on the logits in training mode (the official `train=True` path of ResNet32Wider).
    pub logit_dropout: bool,
}

impl AttentionLayer {
    pub fn new(c: usize, k: usize, spectral_norm: bool) -> Self {
        Self { scope: "atten".into(), c, k, spectral_norm, logit_dropout: false }
    }

    /// Defines the parameters this block uses (`atten_v_b1` is not used, so not stored).
    pub fn build(&self, b: &mut Builder) -> Result<()> {
        let s = &self.scope;
        b.weight(s, "atten_q", &[self.k, self.c, 1, 1], self.spectral_norm, false)?;
        b.zeros(&format!("{s}/atten_q_b1"), &[self.k])?;
        b.weight(s, "atten_k", &[self.k, self.c, 1, 1], self.spectral_norm, false)?;
        b.zeros(&format!("{s}/atten_k_b1"), &[self.k])?;
        b.weight(s, "atten_v", &[self.c, self.c, 1, 1], self.spectral_norm, false)?;
        b.zeros(&format!("{s}/gamma"), &[1])
    }

    pub fn forward(&self, w: &Weights, x: &Tensor) -> Result<Tensor> {
        let s = &self.scope;
        let g = |n: &str| w.get(&format!("{s}/{n}"));
        let drop = if self.logit_dropout { w.dropout } else { None };
        attention(
            x,
            &g("atten_qweight")?,
            &g("atten_q_b1")?,
            &g("atten_kweight")?,
            &g("atten_k_b1")?,
            &g("atten_vweight")?,
            &g("gamma")?,
            drop,
        )
    }
}

/// Self-attention as a pure function of tensors: `x` `[B, C, H, W]`, `wq`/`wk` `[K, C, 1, 1]`, `bq`/`bk` `[K]`,
/// `wv` `[C, C, 1, 1]`, `gamma` `[1]`. The softmax is `candle_nn::ops::softmax` (differentiable; the fused
/// `softmax_last_dim` has no backward pass).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    x: &Tensor,
    wq: &Tensor,
    bq: &Tensor,
    wk: &Tensor,
    bk: &Tensor,
    wv: &Tensor,
    gamma: &Tensor,
    logit_dropout: Option<&Mutex<Rng>>,
) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let hw = h * wd;
    let kq = wq.dims()[0];
    let conv1x1 = |w: &Tensor| ops::conv2d(x, w, 1, ops::Pad2d::default());
    let q = conv1x1(wq)?.broadcast_add(&bq.reshape((1, kq, 1, 1))?)?.reshape((b, kq, hw))?;
    let k = conv1x1(wk)?.broadcast_add(&bk.reshape((1, kq, 1, 1))?)?.reshape((b, kq, hw))?;
    let v = leaky_relu(&conv1x1(wv)?, 0.2)?.reshape((b, c, hw))?;
    // s[b, i, j] = sum_k q[b, k, i] k[b, k, j]
    let s = q.transpose(1, 2)?.contiguous()?.matmul(&k)?; // [B, HW, HW]
    let s = match logit_dropout {
        Some(rng) => ops::dropout(&s, ATTENTION_LOGIT_DROPOUT, rng)?,
        None => s,
    };
    let beta = candle_nn::ops::softmax(&s, D::Minus1)?;
    // o[b, c, i] = sum_j beta[b, i, j] v[b, c, j]
    let o = v.matmul(&beta.transpose(1, 2)?.contiguous()?)?.reshape((b, c, h, wd))?;
    x.broadcast_add(&o.broadcast_mul(&gamma.reshape((1, 1, 1, 1))?)?)
}
