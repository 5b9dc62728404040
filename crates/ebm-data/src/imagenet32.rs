//! The downsampled ImageNet of Chrabaszcz, Loshchilov and Hutter (2017), "Imagenet32x32": the set the paper trains
//! its ImageNet 32x32 model on.
//!
//! It comes in two encodings of the same batches, `train_data_batch_1` .. `train_data_batch_10` (1281167 images)
//! and `val_data` (50000 images):
//! - pickled (`Imagenet32_train.zip`, `Imagenet32_val.zip`, what the official code reads): each file is a Python
//!   pickle of a dict with `data`, a `uint8` array `[N, 3072]` (each row is a `[3, 32, 32]` image, channel-major),
//!   and `labels`, a list of ints `1..=1000`;
//! - npz (`Imagenet32_train_npz.zip`, `Imagenet32_val_npz.zip`, what tensorflow-datasets reads): the same arrays
//!   in `name.npz` files, `labels` as an integer array.
//!
//! Either way the loader subtracts 1 from the labels (as the official code and tensorflow-datasets do), giving
//! `0..=999`. The two files may also hold a `mean` image, which is ignored. The side is `sqrt(row / 3)`, so the
//! 8x8, 16x16 and 64x64 releases load too.

use crate::error::{DataError, Result};
use crate::file::display_name;
use crate::images::ImageSet;
use crate::npy::{Array, Npz};
use crate::pickle::{self, Value};
use crate::Split;
use std::path::{Path, PathBuf};

/// Number of classes.
pub const NUM_CLASSES: usize = 1000;
/// Training batches in the release.
pub const TRAIN_BATCHES: usize = 10;

/// Reads one batch file, pickled or npz (told apart by their first bytes, whatever the name).
pub fn load_batch(path: impl AsRef<Path>, name: &str) -> Result<ImageSet> {
    let b = read_batch(path.as_ref())?;
    ImageSet::new(name, b.pixels, 256, [3, b.side, b.side], b.labels, NUM_CLASSES)
}

/// The checked contents of one batch file.
struct Batch {
    pixels: Vec<u8>,
    labels: Vec<u32>,
    side: usize,
}

fn read_batch(path: &Path) -> Result<Batch> {
    let file = display_name(path);
    let mut head = [0u8; 2];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let n = f.read(&mut head).map_err(|e| DataError::io(path, e))?;
        if n < 2 {
            return Err(DataError::Truncated { file, detail: format!("{n} bytes: not a batch file") });
        }
    }
    let (data, labels) = if head == *b"PK" {
        let mut npz = Npz::open(path)?;
        let data = npz.array("data")?;
        let labels = npz.array("labels")?.to_i64(&format!("{file}[labels]"))?;
        (data, labels)
    } else if head[0] == 0x80 {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let v = pickle::parse(&bytes, &file)?;
        if !matches!(v, Value::Dict(_)) {
            return Err(DataError::Malformed { file, detail: format!("the pickle holds a {}, not a dict", v.kind()) });
        }
        let field = |key: &str| {
            v.get(key).ok_or_else(|| DataError::Malformed {
                file: file.clone(),
                detail: format!("the dict has no '{key}' (its keys: {})", v.keys().join(", ")),
            })
        };
        let data = match field("data")? {
            Value::Array(a) => a.clone(),
            other => {
                return Err(DataError::Malformed {
                    file,
                    detail: format!("'data' is a {}, not a numpy array", other.kind()),
                })
            }
        };
        let labels = match field("labels")? {
            Value::List(l) | Value::Tuple(l) => l
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Ok(*i),
                    other => Err(DataError::Malformed {
                        file: file.clone(),
                        detail: format!("'labels' holds a {}, not an int", other.kind()),
                    }),
                })
                .collect::<Result<Vec<i64>>>()?,
            Value::Array(a) => a.to_i64(&file)?,
            other => return Err(DataError::Malformed { file, detail: format!("'labels' is a {}", other.kind()) }),
        };
        (data, labels)
    } else {
        return Err(DataError::Malformed {
            file,
            detail: format!(
                "starts with bytes {:02x} {:02x}: neither a pickle (protocol 2 or later) nor an npz archive",
                head[0], head[1]
            ),
        });
    };
    check(data, labels, &file)
}

/// Checks the arrays of one batch.
fn check(data: Array, labels: Vec<i64>, file: &str) -> Result<Batch> {
    let bad = |detail: String| DataError::Malformed { file: file.to_string(), detail };
    let [n, row] = data.shape[..] else {
        return Err(bad(format!("'data' has shape {:?}, expected [N, 3*side*side]", data.shape)));
    };
    let side = ((row / 3) as f64).sqrt().round() as usize;
    if 3 * side * side != row || side == 0 {
        return Err(bad(format!("rows of {row} values are not 3 x side x side images")));
    }
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            first: format!("{file} data"),
            first_count: n,
            first_what: "images",
            second: format!("{file} labels"),
            second_count: labels.len(),
            second_what: "labels",
        });
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if (1..=NUM_CLASSES as i64).contains(&l) {
                Ok((l - 1) as u32)
            } else {
                Err(bad(format!("label {l} of item {i} is outside 1..=1000 (the labels of this release are 1-based)")))
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(Batch { pixels: data.into_u8(&format!("{file}[data]"))?, labels, side })
}

/// The batch files of a split: `train_data_batch_1..10` or `val_data`, each as is or with `.npz`, looked for in
/// `dir` and in its immediate subfolders (the zips unpack into a folder of their own). Every training batch must
/// be present.
pub fn batch_files(dir: impl AsRef<Path>, split: Split) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let stems: Vec<String> = match split {
        Split::Train => (1..=TRAIN_BATCHES).map(|k| format!("train_data_batch_{k}")).collect(),
        Split::Test => vec!["val_data".to_string()],
    };
    let mut places = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subs.sort();
        places.extend(subs);
    }
    stems
        .iter()
        .map(|stem| {
            places.iter().flat_map(|p| [p.join(stem), p.join(format!("{stem}.npz"))]).find(|p| p.is_file()).ok_or_else(
                || {
                    DataError::io(
                        &dir.join(stem),
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such batch file (looked for it and its .npz, here and one folder down)",
                        ),
                    )
                },
            )
        })
        .collect()
}

/// One split from a folder (see [`batch_files`]), named "imagenet32-train" or "imagenet32-val".
pub fn load_dir(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let name = match split {
        Split::Train => "imagenet32-train",
        Split::Test => "imagenet32-val",
    };
    let (mut pixels, mut labels, mut side) = (Vec::new(), Vec::new(), None);
    for f in batch_files(dir, split)? {
        let b = read_batch(&f)?;
        if side.is_some_and(|s| s != b.side) {
            return Err(DataError::invalid(
                name,
                format!("{} holds {}x{} images, unlike the batches before it", f.display(), b.side, b.side),
            ));
        }
        side = Some(b.side);
        if pixels.is_empty() {
            pixels = b.pixels; // the first batch's buffer is reused, not copied
        } else {
            pixels.extend_from_slice(&b.pixels);
        }
        labels.extend(b.labels);
    }
    let side = side.expect("at least one batch file");
    ImageSet::new(name, pixels, 256, [3, side, side], labels, NUM_CLASSES)
}
