//! Which algorithm computes a pass of a convolution, and the slice-level entry points that run it.

use super::geom::{ConvAlgo, ConvGeom, WINOGRAD_MIN_CHANNELS};
use super::{direct, im2col, winograd};

impl ConvGeom {
    /// Whether the shape suits a Winograd algorithm: 3x3 stride 1 with padding at most 2 on every side (F(4x4,
    /// 3x3); the input gradient is then a convolution with padding `2 - p`), or 4x4 stride 2 with a multiple of 8
    /// input channels (F(4x4, 2x2) on the space-to-depth input).
    pub fn winograd_shape(&self) -> bool {
        winograd::forward_ok(self)
    }

    /// Whether `Auto` computes the forward pass with Winograd: the shape suits it and its products are at least
    /// [`WINOGRAD_MIN_CHANNELS`] deep (`cin`, or `4 cin` for stride 2; output channels are padded to 16, so any
    /// count works).
    pub fn winograd_forward(&self) -> bool {
        let depth = if self.stride == 2 { 4 * self.cin } else { self.cin };
        self.winograd_shape() && depth >= WINOGRAD_MIN_CHANNELS
    }

    /// Whether `Auto` computes the input gradient with Winograd: the shape suits it and the depth of its
    /// products (`cout`) is at least [`WINOGRAD_MIN_CHANNELS`].
    pub fn winograd_input_grad(&self) -> bool {
        winograd::backward_input_ok(self) && self.cout >= WINOGRAD_MIN_CHANNELS
    }
}

/// `y = act(conv(x + bias, w))` on slices: `x` `[B, cin, h, w]`, `w` `[cout, cin, kh, kw]`, `bias` `[B, cin]` or
/// `[cin]` added to the input before the zero padding, `act` a leaky ReLU of slope `leaky` applied as the output
/// is written (or none), `y` `[B, cout, ho, wo]`.
#[allow(clippy::too_many_arguments)]
pub fn forward_f32(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    leaky: Option<f32>,
    y: &mut [f32],
    algo: ConvAlgo,
) {
    check_lens(g, x.len(), w.len(), y.len());
    if algo != ConvAlgo::Im2col && direct::forward_ok(g) {
        direct::forward(g, x, w, bias, leaky, y)
    } else if algo != ConvAlgo::Im2col && g.winograd_forward() {
        winograd::forward(g, x, w, bias, leaky, y)
    } else {
        im2col::forward(g, x, w, bias, leaky, y)
    }
}

/// The input gradient `dx` `[B, cin, h, w]` of a convolution from its output gradient `dy` `[B, cout, ho, wo]`;
/// with `mask = (y, a)`, of a convolution followed by a leaky ReLU of slope `a` whose output was `y` (`dy` is
/// multiplied by `y > 0 ? 1 : a` as it is read).
pub fn backward_input_f32(
    g: &ConvGeom,
    dy: &[f32],
    mask: Option<(&[f32], f32)>,
    w: &[f32],
    dx: &mut [f32],
    algo: ConvAlgo,
) {
    check_lens(g, dx.len(), w.len(), dy.len());
    if let Some((m, _)) = mask {
        assert_eq!(m.len(), dy.len(), "conv: mask length");
    }
    if algo != ConvAlgo::Im2col && direct::backward_input_ok(g) {
        direct::backward_input(g, dy, mask, w, dx)
    } else if algo != ConvAlgo::Im2col && g.winograd_input_grad() {
        winograd::backward_input(g, dy, mask, w, dx)
    } else {
        im2col::backward_input(g, dy, mask, w, dx)
    }
}

/// The weight gradient `dw` `[cout, cin, kh, kw]` of a convolution of `x + bias` from its output gradient.
pub fn backward_weight_f32(g: &ConvGeom, x: &[f32], dy: &[f32], bias: Option<&[f32]>, dw: &mut [f32]) {
    check_lens(g, x.len(), dw.len(), dy.len());
    im2col::backward_weight(g, x, dy, bias, dw)
}

fn check_lens(g: &ConvGeom, x: usize, w: usize, y: usize) {
    assert_eq!(x, g.batch * g.cin * g.h * g.w, "conv: input length");
    assert_eq!(w, g.cout * g.cin * g.kh * g.kw, "conv: weight length");
    assert_eq!(y, g.batch * g.cout * g.ho() * g.wo(), "conv: output length");
}
