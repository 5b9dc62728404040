//! dSprites (Matthey et al. 2017), `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`: 737280 binary 64x64 images
//! of a sprite, every combination of its latent factors exactly once.
//!
//! The npz holds `imgs` (`uint8 [N, 64, 64]`, values 0 and 1), `latents_values` (`float64 [N, 6]`: color, shape
//! 1..3, scale 0.5..1, orientation 0..2π, position x and y in [0, 1]), `latents_classes` (`int64 [N, 6]`, the index
//! of each value) and `metadata` (a pickled dict, not read). The loader returns `[1, 64, 64]` images with 2 grey
//! levels, the shape index (0 square, 1 ellipse, 2 heart) as label, and all six values as [`Latents`] named
//! [`FACTORS`].
//!
//! [`Factor`] builds the condition vectors the official code trains each compositional model on (data.py,
//! `DSprites`): size `[scale]`, position `[x, y]`, shape one-hot of `shape - 1`, rotation `[cos θ, sin θ]`.
//!
//! Memory: the full set is 3 GB of pixels (one byte each), read straight into the set's buffer.

use crate::error::{DataError, Result};
use crate::file::display_name;
use crate::images::ImageSet;
use crate::latents::Latents;
use crate::npy::Npz;
use candle_core::{Device, Tensor};
use std::path::Path;

/// The file name of the release.
pub const FILE_NAME: &str = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// The columns of `latents_values`, as named in the release's metadata.
pub const FACTORS: [&str; 6] = ["color", "shape", "scale", "orientation", "pos_x", "pos_y"];
/// Image side.
pub const SIDE: usize = 64;

/// What a compositional model is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factor {
    /// `[scale]` (the official `--cond_size`).
    Size,
    /// `[x, y]` (`--cond_pos`).
    Position,
    /// One-hot of the shape, 3 values (`--cond_shape`).
    Shape,
    /// `[cos θ, sin θ]` of the orientation (`--cond_rot`).
    Rotation,
}

impl Factor {
    /// All four, in the order of the paper's figure.
    pub const ALL: [Factor; 4] = [Factor::Size, Factor::Position, Factor::Shape, Factor::Rotation];

    /// Length of the condition vector (the model's `cond_dim`).
    pub fn cond_dim(self) -> usize {
        match self {
            Factor::Size => 1,
            Factor::Position | Factor::Rotation => 2,
            Factor::Shape => 3,
        }
    }

    /// The lower-case name (`size`, `position`, `shape`, `rotation`).
    pub fn name(self) -> &'static str {
        match self {
            Factor::Size => "size",
            Factor::Position => "position",
            Factor::Shape => "shape",
            Factor::Rotation => "rotation",
        }
    }

    /// The condition vector of one row of latents in [`FACTORS`] order.
    pub fn condition(self, row: &[f32]) -> Vec<f32> {
        match self {
            Factor::Size => vec![row[2]],
            Factor::Position => vec![row[4], row[5]],
            Factor::Shape => {
                let mut v = vec![0.0; 3];
                v[(row[1] as usize).clamp(1, 3) - 1] = 1.0;
                v
            }
            Factor::Rotation => vec![row[3].cos(), row[3].sin()],
        }
    }

    /// The conditions of the images at `idx` of a set loaded by [`load_npz`], as a `[B, cond_dim]` CPU tensor.
    pub fn batch(self, set: &ImageSet, idx: &[usize]) -> candle_core::Result<Tensor> {
        let lat = set.latents().filter(|l| l.names() == FACTORS).ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: no dSprites latents ({})", set.name(), FACTORS.join(", ")))
        })?;
        if let Some(&i) = idx.iter().find(|&&i| i >= lat.len()) {
            return Err(candle_core::Error::Msg(format!("{}: index {i} is out of range", set.name())));
        }
        let v: Vec<f32> = idx.iter().flat_map(|&i| self.condition(lat.row(i))).collect();
        Tensor::from_vec(v, (idx.len(), self.cond_dim()), &Device::Cpu)
    }
}

impl std::str::FromStr for Factor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Factor::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown dSprites factor `{s}` (size, position, shape, rotation)"))
    }
}

/// Reads the npz at `path` into a set named `name` (see the module documentation).
pub fn load_npz(path: impl AsRef<Path>, name: &str) -> Result<ImageSet> {
    let path = path.as_ref();
    let file = display_name(path);
    let bad = |detail: String| DataError::Malformed { file: file.clone(), detail };
    let mut npz = Npz::open(path)?;
    let imgs = npz.array("imgs")?;
    let [n, h, w] = imgs.shape[..] else {
        return Err(bad(format!("imgs has shape {:?}, expected [N, 64, 64]", imgs.shape)));
    };
    if (h, w) != (SIDE, SIDE) {
        return Err(bad(format!("imgs has shape {:?}, expected [N, 64, 64]", imgs.shape)));
    }
    let values = npz.array("latents_values")?;
    let classes = npz.array("latents_classes")?;
    for (what, a) in [("latents_values", &values), ("latents_classes", &classes)] {
        if a.shape.len() != 2 || a.shape[1] != 6 {
            return Err(bad(format!("{what} has shape {:?}, expected [N, 6]", a.shape)));
        }
        if a.shape[0] != n {
            return Err(DataError::CountMismatch {
                first: format!("{file}[imgs]"),
                first_count: n,
                first_what: "images",
                second: format!("{file}[{what}]"),
                second_count: a.shape[0],
                second_what: "rows",
            });
        }
    }
    let values = values.to_f64();
    let classes = classes.to_i64(&format!("{file}[latents_classes]"))?;
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (shape_class, shape_value) = (classes[6 * i + 1], values[6 * i + 1]);
        if !(0..3).contains(&shape_class) {
            return Err(DataError::LabelOutOfRange {
                source_name: format!("{file}[latents_classes]"),
                index: i,
                label: shape_class as u64,
                num_classes: 3,
            });
        }
        if shape_value != (shape_class + 1) as f64 {
            return Err(bad(format!(
                "row {i}: latents_values says shape {shape_value} but latents_classes says class {shape_class} \
                 (shape = class + 1)"
            )));
        }
        labels.push(shape_class as u32);
    }
    let pixels = imgs.into_u8(&format!("{file}[imgs]"))?;
    let latents =
        Latents::new(FACTORS.iter().map(|s| s.to_string()).collect(), values.iter().map(|&v| v as f32).collect())?;
    ImageSet::new(name, pixels, 2, [1, SIDE, SIDE], labels, 3)
        .map_err(|e| match e {
            DataError::PixelOutOfRange { offset, value, .. } => {
                bad(format!("pixel value {value} at byte {offset} of imgs: dSprites images are binary (0 or 1)"))
            }
            e => e,
        })?
        .with_latents(latents)
}
