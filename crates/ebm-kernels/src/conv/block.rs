//! `act(conv(x + bias, w))` as one custom op: the bias added while the input is copied into the kernels' padded
//! scratch, the leaky ReLU applied as the output is written, and a backward pass that computes only the gradients
//! the graph needs.

use super::dispatch::forward_f32;
use super::elementwise::{contiguous, leaky_relu_grad, vec_rows};
use super::geom::{ConvAlgo, ConvGeom, ConvPad};
use super::layout::output_vec;
use super::ops::{conv2d_input_grad, conv2d_input_grad_masked, conv2d_weight_grad, supported};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

#[derive(Debug, Clone, Copy)]
struct Block {
    stride: usize,
    pad: ConvPad,
    algo: ConvAlgo,
    leaky: Option<f64>,
}

impl Block {
    fn fwd(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            bail!("conv2d_block: f32 operands expected");
        };
        let (xd, wd) = (l1.dims(), l2.dims());
        if xd.len() != 4 || wd.len() != 4 || xd[1] != wd[1] {
            bail!("conv2d_block: input {xd:?} and kernel {wd:?} do not match");
        }
        let bias = match bias {
            Some((CpuStorage::F32(b), l3)) => {
                if vec_rows(l3, xd[0], xd[1]).is_none() {
                    bail!("conv2d_block: bias of shape {:?} for an input {xd:?}", l3.dims());
                }
                Some(contiguous(b, l3, "bias")?)
            }
            Some(_) => bail!("conv2d_block: f32 bias expected"),
            None => None,
        };
        let g = ConvGeom {
            batch: xd[0],
            cin: xd[1],
            h: xd[2],
            w: xd[3],
            cout: wd[0],
            kh: wd[2],
            kw: wd[3],
            stride: self.stride,
            pad: self.pad,
        };
        if self.stride == 0 || g.hp() < g.kh || g.wp() < g.kw {
            bail!("conv2d_block: kernel {wd:?} does not fit the padded input {xd:?}");
        }
        let (x, w) = (contiguous(x, l1, "input")?, contiguous(w, l2, "kernel")?);
        let mut y = output_vec(g.batch * g.cout * g.p());
        forward_f32(&g, x, w, bias, self.leaky.map(|a| a as f32), &mut y, self.algo);
        Ok((CpuStorage::F32(y), Shape::from((g.batch, g.cout, g.ho(), g.wo()))))
    }

    /// Gradients for `x`, `w` and `bias`, each only when it is part of the graph.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, cin, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let gy = gy.contiguous()?;
        let bias_tracked = bias.is_some_and(|b| b.track_op());
        let dx = if x.track_op() || bias_tracked {
            Some(match self.leaky {
                None => conv2d_input_grad(&gy, w, self.stride, self.pad, (h, wd), self.algo)?,
                Some(a) => conv2d_input_grad_masked(&gy, w, y, a, self.stride, self.pad, (h, wd), self.algo)?,
            })
        } else {
            None
        };
        let dbias = match (&dx, bias) {
            (Some(dx), Some(bias)) if bias.track_op() => {
                let s = dx.sum((2, 3))?; // [B, cin]
                Some(match bias.dims() {
                    [n] if *n == cin => s.sum(0)?,
                    [1, _] if b != 1 => s.sum_keepdim(0)?,
                    _ => s,
                })
            }
            _ => None,
        };
        let dw = if w.track_op() {
            let xb = match bias {
                Some(bias) => {
                    let b2 = if bias.rank() == 1 { bias.reshape((1, cin))? } else { bias.clone() };
                    x.broadcast_add(&b2.reshape((b2.dims()[0], cin, 1, 1))?)?
                }
                None => x.clone(),
            };
            let gm = match self.leaky {
                Some(a) => leaky_relu_grad(y, &gy, a)?,
                None => gy.clone(),
            };
            Some(conv2d_weight_grad(&xb, &gm, self.stride, self.pad, (kh, kw), self.algo)?)
        } else {
            None
        };
        let dx = if x.track_op() { dx } else { None };
        Ok((dx, dw, dbias))
    }
}

impl CustomOp2 for Block {
    fn name(&self) -> &'static str {
        "ebm-conv2d-block"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = Block::bwd(self, x, w, None, y, gy)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Block {
    fn name(&self) -> &'static str {
        "ebm-conv2d-block-biased"
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
        self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Block::bwd(self, x, w, Some(bias), y, gy)
    }
}

/// `act(conv(x + bias, w))` in one op: `bias` (`[B, Cin]`, `[1, Cin]` or `[Cin]`, added before the zero padding)
/// optional, `act` a leaky ReLU of slope `leaky` (0 for a ReLU) or none. f32 on the CPU. Backward: the input
/// gradient with the activation's mask applied as the output gradient is read, the bias gradient `sum_hw dx`,
/// the weight gradient; each only when needed.
pub fn conv2d_block(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: ConvPad,
    leaky: Option<f64>,
    algo: ConvAlgo,
) -> Result<Tensor> {
    if !supported(x, w) || bias.is_some_and(|b| b.dtype() != DType::F32) {
        bail!("conv2d_block: f32 operands on the CPU expected");
    }
    let op = Block { stride, pad, algo, leaky };
    match bias {
        Some(b) => x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op),
        None => x.contiguous()?.apply_op2(&w.contiguous()?, op),
    }
}

/// The convolution of `x + bias` (`bias` `[B, Cin]`, `[1, Cin]` or `[Cin]`, added before the zero padding) with
/// `w`: see [`conv2d`](super::conv2d). f32 on the CPU. Gradients for all three operands, each only when needed.
pub fn conv2d_biased(x: &Tensor, w: &Tensor, bias: &Tensor, stride: usize, pad: ConvPad) -> Result<Tensor> {
    conv2d_block(x, w, Some(bias), stride, pad, None, ConvAlgo::Auto)
}

/// [`conv2d_biased`] with an explicit algorithm.
pub fn conv2d_biased_with(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: ConvPad,
    algo: ConvAlgo,
) -> Result<Tensor> {
    conv2d_block(x, w, Some(bias), stride, pad, None, algo)
}
