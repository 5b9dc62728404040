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
//! - Winograd ([`winograd`]) F(4x4, 3x3) for 3x3 stride-1 convolutions (36 multiplies per 16
//!   outputs instead of 144) and F(4x4, 2x2) for 4x4 stride-2 ones on their space-to-depth input (25 instead of
//!   64), whose products are at least [`WINOGRAD_MIN_CHANNELS`] deep (input channels for the forward pass,
//!   output channels for the input gradient), batched as GEMMs over tiles in an NHWC scratch layout. The input
//!   gradient is the same algorithm on the flipped, transposed kernel. The weight gradient uses im2col.
//! - Direct convolution ([`direct`]) for the few-channel ends of a network (stride 1): forward passes
//!   at most 32 deep (`cin kh kw`), input gradients with at most 4 input channels (a network's stem).
//! - im2col + GEMM ([`im2col`]) for everything else, writing im2col straight into packed panels.
//!
//! The products run on the microkernel of [`gemm`] (AVX2 + FMA when the CPU has it, detected at
//! run time). Work is spread over rayon's global pool (`RAYON_NUM_THREADS`).
//!
//! Beside the convolution, the elementwise work around it in the zoo's blocks runs as single-pass ops with
//! single-pass backward passes: [`leaky_relu`], [`scale_channels`] (the official output gain),
//! [`residual_tail`] (`act(avgpool(a + b))`) and [`conv2d_block`] (`act(conv(x + bias, w))` in one op).
//!
//! Layout of this module: [`geom`] (the problem's shape, no dependencies), the algorithms ([`direct`],
//! [`im2col`], [`winograd`] on [`gemm`] and [`layout`]), `dispatch` (which algorithm runs a pass), `ops` and
//! `block` (the custom ops), `elementwise`, and `peak` (the machine's FMA and GEMM throughput, for benchmarks).
//! Only the items re-exported here are public.

mod block;
mod direct;
mod dispatch;
mod elementwise;
mod gemm;
mod geom;
mod im2col;
mod layout;
mod ops;
mod peak;
mod winograd;

pub use block::{conv2d_biased, conv2d_biased_with, conv2d_block};
pub use elementwise::{leaky_relu, leaky_relu_grad, residual_tail, scale_channels, supported as elementwise_supported};
pub use gemm::{force_portable_kernels, simd_available};
pub use geom::{ConvAlgo, ConvGeom, ConvPad, WINOGRAD_MIN_CHANNELS};
pub use ops::{conv2d, conv2d_input_grad, conv2d_input_grad_masked, conv2d_weight_grad, conv2d_with, supported};
pub use peak::{fma_peak_gflops, gemm_gflops};
