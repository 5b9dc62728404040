//! Fast f32 CPU convolutions as candle custom ops, with a backward pass that computes only the gradients the
//! graph needs.
//!
//! [`conv2d`] is a `CustomOp2` on `(x, w)`: `x` `[B, Cin, H, W]` (NCHW), `w` `[Cout, Cin, kh, kw]` (PyTorch
//! layout), any stride, asymmetric zero padding ([`ConvPad`], e.g. TensorFlow's SAME), no dilation or groups.
//! Its backward pass returns the input gradient only when `x` is part of the graph and the weight gradient only
//! when `w` is (a constant or detached weight, as during Langevin sampling, costs nothing). The gradient ops are
//! differentiable in turn (every one is a bilinear form of two others), so double backward also works.
//!
//! Algorithms ([`ConvAlgo`]):
//! - Winograd ([`crate::conv_winograd`]) F(4x4, 3x3) for 3x3 stride-1 convolutions (36 multiplies per 16
//!   outputs instead of 144) and F(4x4, 2x2) for 4x4 stride-2 ones on their space-to-depth input (25 instead of
//!   64), whose products are at least [`WINOGRAD_MIN_CHANNELS`] deep (input channels for the forward pass,
//!   output channels for the input gradient), batched as GEMMs over tiles in an NHWC scratch layout. The input
//!   gradient is the same algorithm on the flipped, transposed kernel. The weight gradient uses im2col.
//! - Direct convolution ([`crate::conv_direct`]) for the few-channel ends of a network (stride 1): forward passes
//!   at most 32 deep (`cin kh kw`), input gradients with at most 4 input channels (a network's stem).
//! - im2col + GEMM ([`crate::conv_im2col`]) for everything else, writing im2col straight into packed panels.
//!
//! The products run on the microkernel of [`crate::conv_gemm`] (AVX2 + FMA when the CPU has it, detected at
//! run time). Work is spread over rayon's global pool (`RAYON_NUM_THREADS`).

use crate::{conv_direct, conv_im2col, conv_winograd};
use candle_core::{
    backend::BackendStorage, bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor,
};

/// Zero padding of the two spatial dimensions, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ConvPad {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl ConvPad {
    /// The same padding on every side.
    pub fn uniform(p: usize) -> Self {
        Self { top: p, bottom: p, left: p, right: p }
    }
}

/// Which algorithm computes a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ConvAlgo {
    /// Direct convolution for few channels, Winograd where it applies ([`ConvGeom::winograd_forward`],
    /// [`ConvGeom::winograd_input_grad`]), im2col otherwise.
    #[default]
    Auto,
    /// im2col + GEMM for every pass.
    Im2col,
    /// Winograd where it applies, like `Auto` (kept separate so tests can name their intent).
    Winograd,
}

/// Depth (summed channels) of the transformed products from which Winograd pays.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

/// The shape of one convolution problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: ConvPad,
}

impl ConvGeom {
    /// Padded input height.
    pub fn hp(&self) -> usize {
        self.h + self.pad.top + self.pad.bottom
    }
    /// Padded input width.
    pub fn wp(&self) -> usize {
        self.w + self.pad.left + self.pad.right
    }
    /// Output height.
    pub fn ho(&self) -> usize {
        (self.hp() - self.kh) / self.stride + 1
    }
    /// Output width.
    pub fn wo(&self) -> usize {
        (self.wp() - self.kw) / self.stride + 1
    }
    /// Output pixels per image.
    pub fn p(&self) -> usize {
        self.ho() * self.wo()
    }
    /// Depth of the im2col product, `cin * kh * kw`.
    pub fn kdim(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// Multiply-adds of the direct convolution (one pass).
    pub fn macs(&self) -> u64 {
        (self.batch * self.p() * self.cout * self.kdim()) as u64
    }

    fn check(&self) -> Result<()> {
        if self.stride == 0 {
            bail!("conv2d: stride must be positive");
        }
        if self.hp() < self.kh || self.wp() < self.kw {
            bail!("conv2d: kernel {}x{} larger than the padded input {}x{}", self.kh, self.kw, self.hp(), self.wp());
        }
        Ok(())
    }

    /// Whether the shape suits a Winograd algorithm: 3x3 stride 1 with padding at most 2 on every side (F(4x4,
    /// 3x3); the input gradient is then a convolution with padding `2 - p`), or 4x4 stride 2 with a multiple of 8
    /// input channels (F(4x4, 2x2) on the space-to-depth input).
    pub fn winograd_shape(&self) -> bool {
        conv_winograd::forward_ok(self)
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
        conv_winograd::backward_input_ok(self) && self.cout >= WINOGRAD_MIN_CHANNELS
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
    if algo != ConvAlgo::Im2col && conv_direct::forward_ok(g) {
        conv_direct::forward(g, x, w, bias, leaky, y)
    } else if algo != ConvAlgo::Im2col && g.winograd_forward() {
        conv_winograd::forward(g, x, w, bias, leaky, y)
    } else {
        conv_im2col::forward(g, x, w, bias, leaky, y)
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
    if algo != ConvAlgo::Im2col && conv_direct::backward_input_ok(g) {
        conv_direct::backward_input(g, dy, mask, w, dx)
    } else if algo != ConvAlgo::Im2col && g.winograd_input_grad() {
        conv_winograd::backward_input(g, dy, mask, w, dx)
    } else {
        conv_im2col::backward_input(g, dy, mask, w, dx)
    }
}

/// The weight gradient `dw` `[cout, cin, kh, kw]` of a convolution of `x + bias` from its output gradient.
pub fn backward_weight_f32(g: &ConvGeom, x: &[f32], dy: &[f32], bias: Option<&[f32]>, dw: &mut [f32]) {
    check_lens(g, x.len(), dw.len(), dy.len());
    conv_im2col::backward_weight(g, x, dy, bias, dw)
}

/// A vector of `n` values for an op's output, not zeroed: every call site overwrites all `n` values before the
/// vector is read (a zeroing pass would cost as much as a light op itself).
#[allow(clippy::uninit_vec)]
pub(crate) fn output_vec<T: Copy>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: T is f32/f64 (any bit pattern is valid); the callers write every element before reading any.
    unsafe { v.set_len(n) };
    v
}

fn check_lens(g: &ConvGeom, x: usize, w: usize, y: usize) {
    assert_eq!(x, g.batch * g.cin * g.h * g.w, "conv: input length");
    assert_eq!(w, g.cout * g.cin * g.kh * g.kw, "conv: weight length");
    assert_eq!(y, g.batch * g.cout * g.ho() * g.wo(), "conv: output length");
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("conv2d: {what} must be contiguous") };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        other => bail!("conv2d: {what} must be f32, got {:?}", other.dtype()),
    }
}

fn dims4(l: &Layout, what: &str) -> Result<[usize; 4]> {
    match l.dims() {
        &[a, b, c, d] => Ok([a, b, c, d]),
        d => bail!("conv2d: {what} must have rank 4, got shape {d:?}"),
    }
}

/// Settings shared by the three ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    stride: usize,
    pad: ConvPad,
    algo: ConvAlgo,
}

impl Spec {
    fn geom(&self, x: [usize; 4], w: [usize; 4]) -> Result<ConvGeom> {
        if x[1] != w[1] {
            bail!("conv2d: input has {} channels, the kernel expects {}", x[1], w[1]);
        }
        let g = ConvGeom {
            batch: x[0],
            cin: x[1],
            h: x[2],
            w: x[3],
            cout: w[0],
            kh: w[2],
            kw: w[3],
            stride: self.stride,
            pad: self.pad,
        };
        g.check()?;
        Ok(g)
    }
}

/// The forward op `(x, w) -> y`.
struct ConvOp(Spec);

/// The input-gradient op `(dy, w) -> dx`, for an input of spatial size `hw`.
struct InputGradOp {
    spec: Spec,
    hw: (usize, usize),
}

/// The input-gradient op of a convolution followed by a leaky ReLU of slope `alpha` whose output was `y`:
/// `(dy, w, y) -> conv^T(dy . (y > 0 ? 1 : alpha), w)`.
struct MaskedInputGradOp {
    spec: Spec,
    hw: (usize, usize),
    alpha: f64,
}

/// The weight-gradient op `(x, dy) -> dw`, for a kernel of size `khw`.
struct WeightGradOp {
    spec: Spec,
    khw: (usize, usize),
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "ebm-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0.geom(dims4(l1, "input")?, dims4(l2, "kernel")?)?;
        let (x, w) = (f32_slice(s1, l1, "input")?, f32_slice(s2, l2, "kernel")?);
        let mut y = output_vec(g.batch * g.cout * g.p());
        forward_f32(&g, x, w, None, None, &mut y, self.0.algo);
        Ok((CpuStorage::F32(y), Shape::from((g.batch, g.cout, g.ho(), g.wo()))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let gy = gy.contiguous()?;
        let gx = if x.track_op() { Some(input_grad(&gy, w, self.0, (h, wd))?) } else { None };
        let gw = if w.track_op() { Some(weight_grad(x, &gy, self.0, (kh, kw))?) } else { None };
        Ok((gx, gw))
    }
}

impl CustomOp2 for InputGradOp {
    fn name(&self) -> &'static str {
        "ebm-conv2d-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let [b, cout, ho, wo] = dims4(l1, "output gradient")?;
        let wdims = dims4(l2, "kernel")?;
        if wdims[0] != cout {
            bail!("conv2d input grad: gradient has {cout} channels, the kernel produces {}", wdims[0]);
        }
        let g = self.spec.geom([b, wdims[1], self.hw.0, self.hw.1], wdims)?;
        if (g.ho(), g.wo()) != (ho, wo) {
            bail!("conv2d input grad: gradient is {ho}x{wo}, the convolution produces {}x{}", g.ho(), g.wo());
        }
        let (dy, w) = (f32_slice(s1, l1, "output gradient")?, f32_slice(s2, l2, "kernel")?);
        let mut dx = output_vec(b * g.cin * g.h * g.w);
        backward_input_f32(&g, dy, None, w, &mut dx, self.spec.algo);
        Ok((CpuStorage::F32(dx), Shape::from((b, g.cin, g.h, g.w))))
    }

    /// `dx = T(dy, w)` is bilinear: `d/d dy <G, T(dy, w)> = conv(G, w)`, `d/dw = weight_grad(G, dy)`.
    fn bwd(&self, dy: &Tensor, w: &Tensor, _dx: &Tensor, gdx: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, kh, kw) = w.dims4()?;
        let gdx = gdx.contiguous()?;
        let a = if dy.track_op() { Some(forward(&gdx, w, self.spec)?) } else { None };
        let b = if w.track_op() { Some(weight_grad(&gdx, dy, self.spec, (kh, kw))?) } else { None };
        Ok((a, b))
    }
}

impl CustomOp3 for MaskedInputGradOp {
    fn name(&self) -> &'static str {
        "ebm-conv2d-masked-input-grad"
    }

    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [b, cout, ho, wo] = dims4(l1, "output gradient")?;
        let wdims = dims4(l2, "kernel")?;
        if wdims[0] != cout || l3.dims() != l1.dims() {
            bail!("conv2d masked input grad: gradient {:?}, kernel {wdims:?}, output {:?}", l1.dims(), l3.dims());
        }
        let g = self.spec.geom([b, wdims[1], self.hw.0, self.hw.1], wdims)?;
        if (g.ho(), g.wo()) != (ho, wo) {
            bail!("conv2d input grad: gradient is {ho}x{wo}, the convolution produces {}x{}", g.ho(), g.wo());
        }
        let (dy, w) = (f32_slice(s1, l1, "output gradient")?, f32_slice(s2, l2, "kernel")?);
        let y = f32_slice(s3, l3, "output")?;
        let mut dx = output_vec(b * g.cin * g.h * g.w);
        backward_input_f32(&g, dy, Some((y, self.alpha as f32)), w, &mut dx, self.spec.algo);
        Ok((CpuStorage::F32(dx), Shape::from((b, g.cin, g.h, g.w))))
    }

    /// Bilinear in `(dy, w)` (and piecewise constant in `y`): `d/d dy = mask . conv(G, w)`,
    /// `d/dw = weight_grad(G, mask . dy)`.
    fn bwd(
        &self,
        dy: &Tensor,
        w: &Tensor,
        y: &Tensor,
        _dx: &Tensor,
        gdx: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, _, kh, kw) = w.dims4()?;
        let gdx = gdx.contiguous()?;
        let a = if dy.track_op() {
            Some(crate::conv_fused::leaky_relu_grad(y, &forward(&gdx, w, self.spec)?, self.alpha)?)
        } else {
            None
        };
        let b = if w.track_op() {
            let masked = crate::conv_fused::leaky_relu_grad(y, dy, self.alpha)?;
            Some(weight_grad(&gdx, &masked, self.spec, (kh, kw))?)
        } else {
            None
        };
        Ok((a, b, None))
    }
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "ebm-conv2d-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let xd = dims4(l1, "input")?;
        let [b, cout, ho, wo] = dims4(l2, "output gradient")?;
        let g = self.spec.geom(xd, [cout, xd[1], self.khw.0, self.khw.1])?;
        if b != xd[0] || (g.ho(), g.wo()) != (ho, wo) {
            bail!("conv2d weight grad: gradient {:?} does not match the convolution of {:?}", l2.dims(), xd);
        }
        let (x, dy) = (f32_slice(s1, l1, "input")?, f32_slice(s2, l2, "output gradient")?);
        let mut dw = output_vec(cout * g.kdim());
        backward_weight_f32(&g, x, dy, None, &mut dw);
        Ok((CpuStorage::F32(dw), Shape::from((cout, g.cin, g.kh, g.kw))))
    }

    /// `dw = W(x, dy)` is bilinear: `d/dx <G, W(x, dy)> = input_grad(dy, G)`, `d/d dy = conv(x, G)`.
    fn bwd(&self, x: &Tensor, dy: &Tensor, _dw: &Tensor, gdw: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, wd) = x.dims4()?;
        let gdw = gdw.contiguous()?;
        let a = if x.track_op() { Some(input_grad(dy, &gdw, self.spec, (h, wd))?) } else { None };
        let b = if dy.track_op() { Some(forward(x, &gdw, self.spec)?) } else { None };
        Ok((a, b))
    }
}

fn check_tensors(x: &Tensor, w: &Tensor) -> Result<()> {
    for (t, what) in [(x, "first operand"), (w, "second operand")] {
        if t.dtype() != DType::F32 {
            bail!("ebm conv2d: the {what} must be f32, got {:?}", t.dtype());
        }
        if !matches!(t.device(), Device::Cpu) {
            bail!("ebm conv2d: the {what} must be on the CPU");
        }
        if t.rank() != 4 {
            bail!("ebm conv2d: the {what} must have rank 4, got {:?}", t.dims());
        }
    }
    Ok(())
}

fn forward(x: &Tensor, w: &Tensor, spec: Spec) -> Result<Tensor> {
    check_tensors(x, w)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp(spec))
}

fn input_grad(dy: &Tensor, w: &Tensor, spec: Spec, hw: (usize, usize)) -> Result<Tensor> {
    check_tensors(dy, w)?;
    dy.contiguous()?.apply_op2(&w.contiguous()?, InputGradOp { spec, hw })
}

fn weight_grad(x: &Tensor, dy: &Tensor, spec: Spec, khw: (usize, usize)) -> Result<Tensor> {
    check_tensors(x, dy)?;
    x.contiguous()?.apply_op2(&dy.contiguous()?, WeightGradOp { spec, khw })
}

/// 2D convolution (cross-correlation, as in PyTorch) of `x` `[B, Cin, H, W]` with `w` `[Cout, Cin, kh, kw]`,
/// `stride` and zero padding `pad`; f32 on the CPU. Differentiable in both operands; see the module docs.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: ConvPad) -> Result<Tensor> {
    conv2d_with(x, w, stride, pad, ConvAlgo::Auto)
}

/// [`conv2d`] with an explicit algorithm choice.
pub fn conv2d_with(x: &Tensor, w: &Tensor, stride: usize, pad: ConvPad, algo: ConvAlgo) -> Result<Tensor> {
    forward(x, w, Spec { stride, pad, algo })
}

/// The input gradient of [`conv2d`] for an input of spatial size `(h, w)`: `dy` `[B, Cout, Ho, Wo]` to
/// `[B, Cin, h, w]` (a transposed convolution). Differentiable.
pub fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: ConvPad,
    hw: (usize, usize),
    algo: ConvAlgo,
) -> Result<Tensor> {
    input_grad(dy, w, Spec { stride, pad, algo }, hw)
}

/// The input gradient of a convolution followed by a leaky ReLU of slope `alpha` whose output was `y`:
/// `conv^T(dy . (y > 0 ? 1 : alpha), w)`, the mask applied as `dy` is read. Differentiable.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad_masked(
    dy: &Tensor,
    w: &Tensor,
    y: &Tensor,
    alpha: f64,
    stride: usize,
    pad: ConvPad,
    hw: (usize, usize),
    algo: ConvAlgo,
) -> Result<Tensor> {
    check_tensors(dy, w)?;
    check_tensors(y, w)?;
    let spec = Spec { stride, pad, algo };
    dy.contiguous()?.apply_op3(&w.contiguous()?, &y.contiguous()?, MaskedInputGradOp { spec, hw, alpha })
}

/// The weight gradient of [`conv2d`] for a `kh x kw` kernel: `(x, dy)` to `[Cout, Cin, kh, kw]`. Differentiable.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    stride: usize,
    pad: ConvPad,
    khw: (usize, usize),
    algo: ConvAlgo,
) -> Result<Tensor> {
    weight_grad(x, dy, Spec { stride, pad, algo }, khw)
}

/// Whether [`conv2d`] can run on these operands (f32, CPU); other dtypes and devices need another path.
pub fn supported(x: &Tensor, w: &Tensor) -> bool {
    check_tensors(x, w).is_ok()
}
