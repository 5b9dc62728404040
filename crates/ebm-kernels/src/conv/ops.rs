//! The convolution and its two gradients as candle custom ops on whole tensors.

use super::dispatch::{backward_input_f32, backward_weight_f32, forward_f32};
use super::elementwise::leaky_relu_grad;
use super::geom::{ConvAlgo, ConvGeom, ConvPad};
use super::layout::output_vec;
use candle_core::{
    backend::BackendStorage, bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor,
};

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
        let a = if dy.track_op() { Some(leaky_relu_grad(y, &forward(&gdx, w, self.spec)?, self.alpha)?) } else { None };
        let b = if w.track_op() {
            let masked = leaky_relu_grad(y, dy, self.alpha)?;
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
