//! The Describable Textures Dataset (Cimpoi et al. 2014), the paper's "Textures" out-of-distribution set: 5640
//! JPEG images in 47 classes, `dtd/images/<class>/<class>_NNNN.jpg` inside `dtd-r1.0.1.tar.gz`.
//!
//! The official code reads the images with torchvision's `ImageFolder` and keeps the top-left 32x32 crop of each
//! (`np.array(im)[:32, :32] / 255`); [`load_dir`] does the same by default, and
//! [`FolderOptions`] with [`Fit::Resize`] gives whole images resized instead.

use crate::error::Result;
use crate::folder::{self, FolderOptions, LabelledFolder};
use crate::images::ImageSet;
use crate::Split;
use std::path::{Path, PathBuf};

pub use crate::folder::Fit;

/// Number of texture classes.
pub const NUM_CLASSES: usize = 47;
/// Fraction of each class that [`load_split`] puts in the test part (the release's own splits are 40 train,
/// 40 validation, 40 test images per class; here the last third of each class by file name is the test part).
pub const TEST_FRACTION: f64 = 1.0 / 3.0;

/// The folder of class subfolders: `dir/dtd/images`, `dir/images`, or `dir` itself, whichever exists first.
pub fn images_dir(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    [dir.join("dtd").join("images"), dir.join("images")].into_iter().find(|p| p.is_dir()).unwrap_or(dir.to_path_buf())
}

/// Every image, with `opts` (use [`FolderOptions::TEXTURES`] for the paper's crops), named "dtd".
pub fn load_dir(dir: impl AsRef<Path>, opts: FolderOptions) -> Result<LabelledFolder> {
    folder::load(images_dir(dir), "dtd", opts)
}

/// A fixed split of the paper's 32x32 crops: within each class the last third by file name is the test part
/// ("dtd-train", "dtd-test").
pub fn load_split(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let all = load_dir(dir, FolderOptions::TEXTURES)?.set;
    let (train, test) = all.split_per_class(TEST_FRACTION)?;
    Ok(match split {
        Split::Train => train,
        Split::Test => test,
    })
}
