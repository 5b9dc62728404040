//! [`ImageSet`]: labelled images held in memory as quantised pixels, turned into `[0, 1]` float batches on demand.
//!
//! # Pixel values
//!
//! A pixel is an integer `p` in `0..L`, where `L` is the number of grey levels (`levels`: 256 for 8-bit data, 17 for
//! the UCI digits whose values are `0..=16`). [`Dequant`] says how `p` becomes a float:
//!
//! | mode | value | for 8-bit data (`x = p/255`) | used by the reference for |
//! |---|---|---|---|
//! | [`Dequant::None`] | `p / (L-1)` | `x` | ToTensor; plots, classifiers |
//! | [`Dequant::Shrunk`] | `p / L` | `x·255/256` | evaluation (`noise=False`) |
//! | [`Dequant::Uniform`] | `(p + u) / L`, `u ~ U(0,1)` | `x·255/256 + U(0, 1/256)` | training data (CIFAR-10, MNIST) |
//! | [`Dequant::Centred`] | `p/(L-1) + (u - 1/2)/L` | `x + U(-1/512, 1/512)` | OOD sets (SVHN, CIFAR-100, textures) |
//!
//! `None` and `Shrunk` are exactly `[0, 1]`-bounded grids; `Uniform` spreads each level over its own bin of width
//! `1/L` so the bins tile `[0, 1]` (the usual dequantisation that makes a continuous density of discrete data);
//! `Centred` may leave `[0, 1]` by up to `1/(2L)`, as the reference's does.

use crate::error::{DataError, Result};
use crate::latents::Latents;
use candle_core::{Device, Tensor};
use ebm_kernels::Rng;

/// How quantised pixels become floats in a batch; see the [module documentation](self) for the formulas.
#[derive(Debug)]
pub enum Dequant<'a> {
    /// `p / (L-1)`: the exact grid, from 0 to 1.
    None,
    /// `p / L`: the grid shrunk by `(L-1)/L`, the reference's evaluation input (`x·255/256`).
    Shrunk,
    /// `(p + u) / L` with `u ~ U(0,1)` per pixel: for 8-bit data exactly the reference's `x·255/256 + U(0, 1/256)`.
    Uniform(&'a mut Rng),
    /// `p/(L-1) + (u - 1/2)/L`: for 8-bit data the reference's `x + U(-1/512, 1/512)` on out-of-distribution sets.
    Centred(&'a mut Rng),
}

/// A labelled set of images of one shape, stored as quantised pixels (one byte each) in `[N, C, H, W]` order.
///
/// Built with [`ImageSet::new`], which checks that the pixels, labels, levels and shape agree, so every `ImageSet`
/// is consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    name: String,
    pixels: Vec<u8>,
    levels: u16,
    shape: [usize; 3],
    labels: Vec<u32>,
    num_classes: usize,
    /// Continuous factors per image (dSprites), when the source has them.
    latents: Option<Latents>,
}

impl ImageSet {
    /// A set named `name` (used in error messages and reports) of `labels.len()` images of `shape = [C, H, W]`.
    ///
    /// `pixels` holds the images one after another, each channel-major then row-major; every value must be below
    /// `levels` (2..=256) and every label below `num_classes`.
    pub fn new(
        name: impl Into<String>,
        pixels: Vec<u8>,
        levels: u16,
        shape: [usize; 3],
        labels: Vec<u32>,
        num_classes: usize,
    ) -> Result<Self> {
        let name = name.into();
        if !(2..=256).contains(&levels) {
            return Err(DataError::invalid(&name, format!("{levels} grey levels: must be between 2 and 256")));
        }
        if shape.contains(&0) {
            return Err(DataError::invalid(&name, format!("image shape {shape:?} has a zero dimension")));
        }
        if num_classes == 0 {
            return Err(DataError::invalid(&name, "zero classes"));
        }
        let image_len = shape[0] * shape[1] * shape[2];
        let expected = labels.len().checked_mul(image_len);
        if expected != Some(pixels.len()) {
            return Err(DataError::invalid(
                &name,
                format!(
                    "{} labels of {}x{}x{} images need {} pixels but {} were given",
                    labels.len(),
                    shape[0],
                    shape[1],
                    shape[2],
                    labels.len() as u128 * image_len as u128,
                    pixels.len()
                ),
            ));
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= num_classes) {
            return Err(DataError::LabelOutOfRange { source_name: name, index, label: label as u64, num_classes });
        }
        if levels < 256 {
            if let Some((offset, &value)) = pixels.iter().enumerate().find(|(_, &p)| p as u16 >= levels) {
                return Err(DataError::PixelOutOfRange { source_name: name, offset, value, levels });
            }
        }
        Ok(ImageSet { name, pixels, levels, shape, labels, num_classes, latents: None })
    }

    /// The same set carrying `latents`, one row per image.
    pub fn with_latents(mut self, latents: Latents) -> Result<Self> {
        if latents.len() != self.len() {
            return Err(DataError::invalid(
                &self.name,
                format!("{} rows of latents for {} images", latents.len(), self.len()),
            ));
        }
        self.latents = Some(latents);
        Ok(self)
    }

    /// The continuous factors of every image, if the set has them.
    pub fn latents(&self) -> Option<&Latents> {
        self.latents.as_ref()
    }

    /// The latents of the images at `idx` as a `[B, D]` f32 tensor on the CPU, if the set has them.
    pub fn latent_batch(&self, idx: &[usize]) -> candle_core::Result<Option<Tensor>> {
        let Some(l) = &self.latents else { return Ok(None) };
        self.check_indices(idx)?;
        Ok(Some(Tensor::from_vec(l.subset(idx).values().to_vec(), (idx.len(), l.dim()), &Device::Cpu)?))
    }

    /// The name given at construction (for example "digits-train").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same set under another name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// All pixels, image after image, each `[C, H, W]`.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Number of grey levels `L`: pixels lie in `0..L`.
    pub fn levels(&self) -> u16 {
        self.levels
    }

    /// `[C, H, W]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Pixels per image, `C·H·W`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The label of every image, each below [`num_classes`](Self::num_classes).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of classes the labels index.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The float value `p / (L-1)` of pixel value `p`, in `[0, 1]`.
    pub fn value(&self, p: u8) -> f32 {
        p as f32 / (self.levels - 1) as f32
    }

    /// Every pixel as `p / (L-1)` in `[0, 1]`, in storage order (`[N, C, H, W]`).
    pub fn to_f32(&self) -> Vec<f32> {
        let table = self.table(self.levels - 1);
        self.pixels.iter().map(|&p| table[p as usize]).collect()
    }

    /// How many images each class has, indexed by label.
    pub fn counts_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The indices of the images of class `class`, in order.
    pub fn indices_of_class(&self, class: u32) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.labels[i] == class).collect()
    }

    /// The images at `indices`, in that order (repeats allowed), under the same name.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageSet> {
        self.check_indices(indices)?;
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Ok(ImageSet {
            name: self.name.clone(),
            pixels,
            levels: self.levels,
            shape: self.shape,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            latents: self.latents.as_ref().map(|l| l.subset(indices)),
        })
    }

    /// A fixed stratified split: within each class, the last `round(test_fraction · count)` images in storage order
    /// go to the test part and the others to the train part. Both parts keep storage order and are named
    /// `"{name}-train"` and `"{name}-test"`. No randomness is involved, so every run sees the same split.
    pub fn split_per_class(&self, test_fraction: f64) -> Result<(ImageSet, ImageSet)> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(DataError::invalid(&self.name, format!("test fraction {test_fraction} is not within [0, 1]")));
        }
        let counts = self.counts_per_class();
        let first_test: Vec<usize> = counts.iter().map(|&c| c - (test_fraction * c as f64).round() as usize).collect();
        let mut seen = vec![0usize; self.num_classes];
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, &l) in self.labels.iter().enumerate() {
            let l = l as usize;
            if seen[l] < first_test[l] {
                train.push(i);
            } else {
                test.push(i);
            }
            seen[l] += 1;
        }
        let train = self.subset(&train)?.with_name(format!("{}-train", self.name));
        let test = self.subset(&test)?.with_name(format!("{}-test", self.name));
        Ok((train, test))
    }

    /// The images of `parts` one after another (for example CIFAR-10's train and test sets as one reference set).
    /// All parts must agree on shape, levels and number of classes.
    pub fn concat(name: impl Into<String>, parts: &[&ImageSet]) -> Result<ImageSet> {
        let name = name.into();
        let Some(first) = parts.first() else {
            return Err(DataError::invalid(&name, "nothing to concatenate"));
        };
        for p in parts {
            if (p.shape, p.levels, p.num_classes) != (first.shape, first.levels, first.num_classes) {
                return Err(DataError::invalid(
                    &name,
                    format!(
                        "cannot concatenate {} (shape {:?}, {} levels, {} classes) with {} (shape {:?}, {} levels, \
                         {} classes)",
                        first.name,
                        first.shape,
                        first.levels,
                        first.num_classes,
                        p.name,
                        p.shape,
                        p.levels,
                        p.num_classes
                    ),
                ));
            }
        }
        let latents = match parts.iter().map(|p| p.latents.as_ref()).collect::<Option<Vec<_>>>() {
            Some(ls) => Some(Latents::concat(&ls).ok_or_else(|| {
                DataError::invalid(&name, "cannot concatenate sets whose latents have different factors")
            })?),
            None if parts.iter().any(|p| p.latents.is_some()) => {
                return Err(DataError::invalid(&name, "cannot concatenate sets with and without latents"))
            }
            None => None,
        };
        Ok(ImageSet {
            name,
            pixels: parts.iter().flat_map(|p| p.pixels.iter().copied()).collect(),
            levels: first.levels,
            shape: first.shape,
            labels: parts.iter().flat_map(|p| p.labels.iter().copied()).collect(),
            num_classes: first.num_classes,
            latents,
        })
    }

    /// The images at `idx` as a `[B, C, H, W]` f32 tensor and their labels as a `[B]` u32 tensor, both on the CPU.
    ///
    /// Without `dequant` pixels become `p / (L-1)` ([`Dequant::None`]); with it, `(p + u) / L`
    /// ([`Dequant::Uniform`]), which for 8-bit data is the reference's `x·255/256 + U(0, 1/256)`.
    pub fn batch(&self, idx: &[usize], dequant: Option<&mut Rng>) -> candle_core::Result<(Tensor, Tensor)> {
        match dequant {
            None => self.batch_with(idx, Dequant::None),
            Some(rng) => self.batch_with(idx, Dequant::Uniform(rng)),
        }
    }

    /// Like [`batch`](Self::batch), with any of the [`Dequant`] conversions.
    pub fn batch_with(&self, idx: &[usize], mode: Dequant<'_>) -> candle_core::Result<(Tensor, Tensor)> {
        let mut data = Vec::new();
        self.fill_batch(idx, mode, &mut data)?;
        let [c, h, w] = self.shape;
        let images = Tensor::from_vec(data, (idx.len(), c, h, w), &Device::Cpu)?;
        let labels: Vec<u32> = idx.iter().map(|&i| self.labels[i]).collect();
        let labels = Tensor::from_vec(labels, idx.len(), &Device::Cpu)?;
        Ok((images, labels))
    }

    /// Writes the float pixels of the images at `idx` into `out` (cleared first), as [`batch_with`](Self::batch_with)
    /// would put them in its tensor; for callers that reuse one buffer.
    pub fn fill_batch(&self, idx: &[usize], mode: Dequant<'_>, out: &mut Vec<f32>) -> Result<()> {
        self.check_indices(idx)?;
        let n = self.image_len();
        let l = self.levels as f32;
        out.clear();
        match mode {
            Dequant::None => self.gather(idx, &self.table(self.levels - 1), out),
            Dequant::Shrunk => self.gather(idx, &self.table(self.levels), out),
            Dequant::Uniform(rng) => {
                // Noise first, straight into the output, then each value becomes (p + u) / L in place.
                out.resize(idx.len() * n, 0.0);
                rng.fill_uniform(out, 0.0, 1.0);
                for (&i, chunk) in idx.iter().zip(out.chunks_exact_mut(n)) {
                    for (o, &p) in chunk.iter_mut().zip(self.image(i)) {
                        *o = (p as f32 + *o) / l;
                    }
                }
            }
            Dequant::Centred(rng) => {
                out.resize(idx.len() * n, 0.0);
                rng.fill_uniform(out, 0.0, 1.0);
                let table = self.table(self.levels - 1);
                for (&i, chunk) in idx.iter().zip(out.chunks_exact_mut(n)) {
                    for (o, &p) in chunk.iter_mut().zip(self.image(i)) {
                        *o = table[p as usize] + (*o - 0.5) / l;
                    }
                }
            }
        }
        Ok(())
    }

    /// `p / divisor` for every possible byte.
    fn table(&self, divisor: u16) -> [f32; 256] {
        let mut t = [0f32; 256];
        for (p, v) in t.iter_mut().enumerate() {
            *v = p as f32 / divisor as f32;
        }
        t
    }

    /// Appends the pixels of the images at `idx`, mapped through `table`.
    fn gather(&self, idx: &[usize], table: &[f32; 256], out: &mut Vec<f32>) {
        out.reserve(idx.len() * self.image_len());
        for &i in idx {
            out.extend(self.image(i).iter().map(|&p| table[p as usize]));
        }
    }

    fn check_indices(&self, idx: &[usize]) -> Result<()> {
        match idx.iter().find(|&&i| i >= self.len()) {
            Some(&i) => {
                Err(DataError::invalid(&self.name, format!("index {i} is out of range for {} images", self.len())))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 1x2x2 images with 256 levels: values chosen to hit both ends of the range.
    fn tiny() -> ImageSet {
        ImageSet::new("tiny", vec![0, 255, 1, 128, 10, 20, 30, 40, 255, 255, 0, 0], 256, [1, 2, 2], vec![0, 2, 1], 3)
            .unwrap()
    }

    #[test]
    fn new_rejects_inconsistent_inputs() {
        let e = ImageSet::new("s", vec![0; 7], 256, [1, 2, 2], vec![0, 1], 2).unwrap_err();
        assert_eq!(e.to_string(), "s: 2 labels of 1x2x2 images need 8 pixels but 7 were given");
        let e = ImageSet::new("s", vec![0; 8], 256, [1, 2, 2], vec![0, 2], 2).unwrap_err();
        assert_eq!(e.to_string(), "s: label 2 of item 1 is out of range for 2 classes");
        let e = ImageSet::new("s", vec![0, 0, 17, 0], 17, [1, 2, 2], vec![0], 2).unwrap_err();
        assert_eq!(e.to_string(), "s: pixel value 17 at byte 2 is out of range for 17 grey levels");
        assert!(ImageSet::new("s", vec![0; 4], 1, [1, 2, 2], vec![0], 2).is_err());
        assert!(ImageSet::new("s", vec![], 256, [1, 0, 2], vec![], 2).is_err());
    }

    #[test]
    fn accessors_and_counts() {
        let s = tiny();
        assert_eq!(s.len(), 3);
        assert_eq!(s.image_len(), 4);
        assert_eq!(s.image(1), &[10, 20, 30, 40]);
        assert_eq!(s.counts_per_class(), vec![1, 1, 1]);
        assert_eq!(s.indices_of_class(2), vec![1]);
        let f = s.to_f32();
        assert_eq!(f[0], 0.0);
        assert_eq!(f[1], 1.0);
        assert!((f[3] - 128.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn batch_without_dequant_is_p_over_levels_minus_one() {
        let s = tiny();
        let (x, y) = s.batch(&[2, 0], None).unwrap();
        assert_eq!(x.dims(), &[2, 1, 2, 2]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![1, 0]);
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0 / 255.0, 128.0 / 255.0]);
        let (x, _) = s.batch_with(&[0], Dequant::Shrunk).unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![0.0, 255.0 / 256.0, 1.0 / 256.0, 0.5]);
    }

    /// For 8-bit data the dequantised value must be the reference's `x·255/256 + U(0, 1/256)` with `x = p/255`:
    /// the same draw `u` gives the same number, and each value stays within its own bin `[p/256, (p+1)/256]`.
    #[test]
    fn uniform_dequant_matches_the_reference_formula() {
        let s = tiny();
        let idx = [0, 1, 2];
        let (x, _) = s.batch(&idx, Some(&mut Rng::new(5))).unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let u = Rng::new(5).uniform_vec(12, 0.0, 1.0);
        for (k, (&got, &p)) in v.iter().zip(s.pixels()).enumerate() {
            let x = p as f64 / 255.0;
            let reference = x * 255.0 / 256.0 + u[k] as f64 / 256.0;
            assert!((got as f64 - reference).abs() < 1e-6, "{k}: {got} vs {reference}");
            assert!(got as f64 >= p as f64 / 256.0 && got as f64 <= (p as f64 + 1.0) / 256.0);
        }
        // The same seed gives the same batch; another seed another one.
        let (x2, _) = s.batch(&idx, Some(&mut Rng::new(5))).unwrap();
        assert_eq!(v, x2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let (x3, _) = s.batch(&idx, Some(&mut Rng::new(6))).unwrap();
        assert_ne!(v, x3.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }

    #[test]
    fn uniform_dequant_fills_each_bin_for_17_levels() {
        let pixels: Vec<u8> = (0..17).collect();
        let s = ImageSet::new("g", pixels, 17, [1, 1, 17], vec![0], 1).unwrap();
        let mut rng = Rng::new(1);
        let mut mean = [0f64; 17];
        let reps = 2000;
        for _ in 0..reps {
            let (x, _) = s.batch(&[0], Some(&mut rng)).unwrap();
            for (p, &v) in x.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().enumerate() {
                assert!(v >= p as f32 / 17.0 && v <= (p + 1) as f32 / 17.0, "{p}: {v}");
                mean[p] += v as f64 / reps as f64;
            }
        }
        // The mean of U(p/17, (p+1)/17) is (p + 1/2)/17; its standard error is (1/17)/sqrt(12 reps) ~ 3.8e-4.
        for (p, m) in mean.iter().enumerate() {
            assert!((m - (p as f64 + 0.5) / 17.0).abs() < 2e-3, "{p}: {m}");
        }
    }

    #[test]
    fn centred_dequant_is_symmetric_around_the_grid() {
        let s = tiny();
        let (x, _) = s.batch_with(&[1], Dequant::Centred(&mut Rng::new(2))).unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (&got, &p) in v.iter().zip(s.image(1)) {
            assert!((got - p as f32 / 255.0).abs() <= 0.5 / 256.0 + 1e-7);
        }
    }

    #[test]
    fn batch_rejects_bad_indices_and_allows_empty() {
        let s = tiny();
        let e = s.batch(&[0, 3], None).unwrap_err();
        assert!(e.to_string().contains("tiny: index 3 is out of range for 3 images"), "{e}");
        let (x, y) = s.batch(&[], None).unwrap();
        assert_eq!(x.dims(), &[0, 1, 2, 2]);
        assert_eq!(y.dims(), &[0]);
    }

    #[test]
    fn subset_split_and_concat() {
        let labels: Vec<u32> = (0..20).map(|i| (i % 2) as u32).collect();
        let pixels: Vec<u8> = (0..20).collect();
        let s = ImageSet::new("s", pixels, 256, [1, 1, 1], labels, 2).unwrap();
        let sub = s.subset(&[3, 3, 0]).unwrap();
        assert_eq!(sub.pixels(), &[3, 3, 0]);
        assert_eq!(sub.labels(), &[1, 1, 0]);
        assert!(s.subset(&[20]).is_err());

        let (train, test) = s.split_per_class(0.2).unwrap();
        assert_eq!(train.name(), "s-train");
        assert_eq!(test.name(), "s-test");
        // 10 per class: the last 2 of each class (file order) are the test part.
        assert_eq!(test.pixels(), &[16, 17, 18, 19]);
        assert_eq!(train.pixels(), &(0..16).collect::<Vec<u8>>()[..]);
        assert!(s.split_per_class(1.5).is_err());

        let both = ImageSet::concat("both", &[&train, &test]).unwrap();
        assert_eq!(both.len(), 20);
        assert_eq!(both.pixels(), s.pixels());
        let other = ImageSet::new("o", vec![0; 4], 256, [1, 2, 2], vec![0], 2).unwrap();
        let e = ImageSet::concat("bad", &[&s, &other]).unwrap_err();
        assert!(e.to_string().starts_with("bad: cannot concatenate s"), "{e}");
    }

    #[test]
    fn latents_follow_subsets_splits_and_concatenation() {
        let s = ImageSet::new("l", (0..6).collect(), 256, [1, 1, 1], vec![0, 1, 0, 1, 0, 1], 2).unwrap();
        assert!(s.latents().is_none());
        assert!(s.latent_batch(&[0]).unwrap().is_none());
        let names = vec!["scale".to_string(), "x".to_string()];
        let lat = Latents::new(names.clone(), (0..12).map(|v| v as f32 * 0.5).collect()).unwrap();
        let e = s.clone().with_latents(Latents::new(names.clone(), vec![0.0; 4]).unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "l: 2 rows of latents for 6 images");
        let s = s.with_latents(lat).unwrap();
        let sub = s.subset(&[4, 1]).unwrap();
        assert_eq!(sub.latents().unwrap().values(), &[4.0, 4.5, 1.0, 1.5]);
        let t = s.latent_batch(&[5, 0]).unwrap().unwrap();
        assert_eq!(t.dims(), &[2, 2]);
        assert_eq!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![5.0, 5.5, 0.0, 0.5]);
        assert!(s.latent_batch(&[6]).is_err());
        let (train, test) = s.split_per_class(1.0 / 3.0).unwrap();
        assert_eq!(test.latents().unwrap().len(), 2);
        let both = ImageSet::concat("b", &[&train, &test]).unwrap();
        assert_eq!(both.latents().unwrap().len(), 6);
        let plain = ImageSet::new("p", vec![0], 256, [1, 1, 1], vec![0], 2).unwrap();
        assert!(ImageSet::concat("m", &[&s, &plain]).unwrap_err().to_string().contains("with and without latents"));
    }
}
