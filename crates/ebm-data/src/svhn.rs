//! SVHN, cropped digits (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`).
//!
//! Each file is a MATLAB 5 MAT-file ([`crate::matlab`]) with two variables, compressed: `X`, `uint8` of
//! dimensions `[32, 32, 3, N]` in column-major order (so pixel `(row r, column c, channel k)` of image `n` is at
//! `r + 32c + 1024k + 3072n`), and `y`, `[N, 1]` labels `1..=10` where 10 stands for the digit 0. The loader
//! returns `[3, 32, 32]` images and labels `0..=9` (digit `d` has label `d`, as torchvision's `SVHN` does).

use crate::error::{DataError, Result};
use crate::file::display_name;
use crate::images::ImageSet;
use crate::matlab::{self, MatClass, MatData};
use crate::Split;
use std::path::Path;

/// The file of each part, as `http://ufldl.stanford.edu/housenumbers/` serves it.
pub fn file_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train_32x32.mat",
        Split::Test => "test_32x32.mat",
    }
}

/// One split from a folder holding [`file_name`], named "svhn-train" or "svhn-test".
pub fn load_dir(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let name = match split {
        Split::Train => "svhn-train",
        Split::Test => "svhn-test",
    };
    load_mat(dir.as_ref().join(file_name(split)), name)
}

/// Reads an SVHN `.mat` file into a set of 256-level `[3, H, W]` images with labels `0..=9`.
pub fn load_mat(path: impl AsRef<Path>, name: &str) -> Result<ImageSet> {
    let path = path.as_ref();
    let file = display_name(path);
    let vars = matlab::read(path)?;
    let bad = |detail: String| DataError::Malformed { file: file.clone(), detail };
    let x = matlab::find(&vars, "X", &file)?;
    let y = matlab::find(&vars, "y", &file)?;
    let (h, w, c, n) = match x.dims[..] {
        [h, w, c] => (h, w, c, 1),
        [h, w, c, n] => (h, w, c, n),
        ref d => return Err(bad(format!("X has dimensions {d:?}, expected [height, width, 3, N]"))),
    };
    if c != 3 || x.class != MatClass::Uint8 {
        return Err(bad(format!(
            "X is {:?} of dimensions {:?}, expected uint8 [height, width, 3, N]",
            x.class, x.dims
        )));
    }
    let MatData::U8(xs) = &x.data else {
        return Err(bad("X is a uint8 array stored in another type, which SVHN never does".to_string()));
    };
    if y.numel() != n {
        return Err(DataError::CountMismatch {
            first: format!("{file} X"),
            first_count: n,
            first_what: "images",
            second: format!("{file} y"),
            second_count: y.numel(),
            second_what: "labels",
        });
    }
    let labels = y
        .to_f64()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if v.fract() == 0.0 && (1.0..=10.0).contains(&v) {
                Ok(v as u32 % 10)
            } else {
                Err(bad(format!("label y({}) = {v} is not a digit label 1..10 (10 stands for 0)", i + 1)))
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    // Column-major [H, W, 3, N] to [N, 3, H, W].
    let plane = h * w;
    let mut pixels = vec![0u8; xs.len()];
    for (img_out, img_in) in pixels.chunks_exact_mut(3 * plane).zip(xs.chunks_exact(3 * plane)) {
        for ch in 0..3 {
            let src = &img_in[ch * plane..(ch + 1) * plane];
            let dst = &mut img_out[ch * plane..(ch + 1) * plane];
            for col in 0..w {
                for row in 0..h {
                    dst[row * w + col] = src[col * h + row];
                }
            }
        }
    }
    ImageSet::new(name, pixels, 256, [3, h, w], labels, 10)
}
