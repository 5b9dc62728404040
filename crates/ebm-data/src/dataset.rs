//! [`Dataset`]: what a trainer or evaluator needs from any labelled image source, as a trait object.

use crate::images::ImageSet;
use candle_core::Tensor;
use ebm_kernels::Rng;

/// A finite, indexable, labelled set of images of one shape, whose values lie in `[0, 1]`.
///
/// Object-safe, so that the trainer can hold a `Box<dyn Dataset>` whatever the source (in-memory [`ImageSet`]s now;
/// SVHN, npz or PNG folders later).
pub trait Dataset: Send + Sync {
    /// A short name for logs and error messages.
    fn name(&self) -> &str;

    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there is no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` of every image.
    fn image_shape(&self) -> [usize; 3];

    /// Number of classes; labels lie in `0..num_classes()`.
    fn num_classes(&self) -> usize;

    /// The images at `idx` as a `[B, C, H, W]` f32 tensor and their `[B]` u32 labels, on the CPU.
    ///
    /// Without `dequant` the images are the exact grid `p / (L-1)`; with it, each pixel is spread uniformly over its
    /// quantisation bin, `(p + u) / L` (see [`crate::images`] for the formulas and why).
    fn batch(&self, idx: &[usize], dequant: Option<&mut Rng>) -> candle_core::Result<(Tensor, Tensor)>;

    /// The continuous factors of the images at `idx` as a `[B, D]` f32 tensor on the CPU, for sources that have
    /// them (dSprites); `None` otherwise.
    fn latents(&self, idx: &[usize]) -> candle_core::Result<Option<Tensor>> {
        let _ = idx;
        Ok(None)
    }
}

impl Dataset for ImageSet {
    fn name(&self) -> &str {
        ImageSet::name(self)
    }

    fn len(&self) -> usize {
        ImageSet::len(self)
    }

    fn image_shape(&self) -> [usize; 3] {
        self.shape()
    }

    fn num_classes(&self) -> usize {
        ImageSet::num_classes(self)
    }

    fn batch(&self, idx: &[usize], dequant: Option<&mut Rng>) -> candle_core::Result<(Tensor, Tensor)> {
        ImageSet::batch(self, idx, dequant)
    }

    fn latents(&self, idx: &[usize]) -> candle_core::Result<Option<Tensor>> {
        self.latent_batch(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_set_works_through_a_trait_object() {
        let set = ImageSet::new("t", vec![0, 1, 2, 3, 4, 5], 6, [1, 1, 3], vec![1, 0], 2).unwrap();
        let d: Box<dyn Dataset> = Box::new(set);
        assert_eq!(d.name(), "t");
        assert_eq!(d.len(), 2);
        assert!(!d.is_empty());
        assert_eq!(d.image_shape(), [1, 1, 3]);
        assert_eq!(d.num_classes(), 2);
        let (x, y) = d.batch(&[1], None).unwrap();
        assert_eq!(x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.6, 0.8, 1.0]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![0]);
    }
}
