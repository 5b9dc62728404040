//! The shape of a convolution problem: padding, algorithm choice and the geometry every algorithm works from.

use candle_core::{bail, Result};

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

    pub(crate) fn check(&self) -> Result<()> {
        if self.stride == 0 {
            bail!("conv2d: stride must be positive");
        }
        if self.hp() < self.kh || self.wp() < self.kw {
            bail!("conv2d: kernel {}x{} larger than the padded input {}x{}", self.kh, self.kw, self.hp(), self.wp());
        }
        Ok(())
    }
}
