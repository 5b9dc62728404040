//! The UCI optical recognition of handwritten digits data (scikit-learn's "digits"): 1797 greyscale images of 8x8
//! with 17 grey levels (`0..=16`), 10 classes. Small enough to embed in the crate, so tests and quick runs need no
//! download.
//!
//! Source: UCI Machine Learning Repository (E. Alpaydin, C. Kaynak, 1998), CC BY 4.0; the file is
//! `sklearn/datasets/data/digits.csv.gz` from the scikit-learn 1.7.2 wheel, committed as `data/digits/digits.csv.gz`
//! (see `data/README.md`). Format: gzipped CSV without header, one image per row: 64 pixel values row-major, then
//! the label.

use crate::error::{DataError, Result};
use crate::file::gunzip;
use crate::images::ImageSet;
use std::path::Path;

/// The gzipped CSV, as committed in `data/digits/digits.csv.gz`.
pub const CSV_GZ: &[u8] = include_bytes!("../../../data/digits/digits.csv.gz");

/// SHA-256 of [`CSV_GZ`] (also recorded in `data/README.md`).
pub const CSV_GZ_SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";

/// Number of images.
pub const LEN: usize = 1797;
/// Image side: the images are `[1, SIDE, SIDE]`.
pub const SIDE: usize = 8;
/// Grey levels: pixels lie in `0..LEVELS`.
pub const LEVELS: u16 = 17;
/// Number of classes (the digits 0 to 9).
pub const NUM_CLASSES: usize = 10;
/// Fraction of each class that [`train_test`] puts in the test part.
pub const TEST_FRACTION: f64 = 0.2;

/// The file name used in error messages about the embedded data.
const FILE: &str = "data/digits/digits.csv.gz";

/// All 1797 digits in file order, named "digits".
pub fn load() -> Result<ImageSet> {
    parse_csv_gz(CSV_GZ, Path::new(FILE), "digits")
}

/// The fixed train/test split of the digits: within each class, the last 20% of its images in file order
/// (`round(0.2 · count)`) are the test part, the rest the train part ("digits-train", 1438 images; "digits-test",
/// 359 images; see [`ImageSet::split_per_class`]). Deterministic, so every run and test sees the same split.
pub fn train_test() -> (ImageSet, ImageSet) {
    load()
        .and_then(|all| all.split_per_class(TEST_FRACTION))
        .expect("the embedded digits data is checked by this crate's tests")
}

/// Parses digits in this CSV layout (gzipped or not) from memory; `file` names the source in errors and `name` names
/// the resulting set.
pub fn parse_csv_gz(bytes: &[u8], file: &Path, name: &str) -> Result<ImageSet> {
    let text = if crate::file::is_gzip(bytes) { gunzip(bytes, file)? } else { bytes.to_vec() };
    let fname = file.display().to_string();
    let text = std::str::from_utf8(&text)
        .map_err(|e| DataError::Malformed { file: fname.clone(), detail: format!("not UTF-8 text: {e}") })?;
    let per_image = SIDE * SIDE;
    let mut pixels = Vec::with_capacity(LEN * per_image);
    let mut labels = Vec::with_capacity(LEN);
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let malformed = |detail: String| DataError::Malformed {
            file: fname.clone(),
            detail: format!("line {}: {detail}", line_no + 1),
        };
        let mut fields = 0;
        for (k, field) in line.split(',').enumerate() {
            fields += 1;
            if k > per_image {
                continue;
            }
            let v: u32 =
                field.trim().parse().map_err(|_| malformed(format!("field {} is {field:?}, not an integer", k + 1)))?;
            if k < per_image {
                if v >= LEVELS as u32 {
                    return Err(malformed(format!("pixel {} is {v}, above 16", k + 1)));
                }
                pixels.push(v as u8);
            } else if v as usize >= NUM_CLASSES {
                return Err(DataError::LabelOutOfRange {
                    source_name: fname.clone(),
                    index: labels.len(),
                    label: v as u64,
                    num_classes: NUM_CLASSES,
                });
            } else {
                labels.push(v);
            }
        }
        if fields != per_image + 1 {
            return Err(malformed(format!("{fields} fields, expected {}", per_image + 1)));
        }
    }
    ImageSet::new(name, pixels, LEVELS, [1, SIDE, SIDE], labels, NUM_CLASSES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_is_the_documented_one() {
        assert_eq!(CSV_GZ.len(), 57523);
        let readme = include_str!("../../../data/README.md");
        assert!(readme.contains(CSV_GZ_SHA256), "data/README.md must record the SHA-256");
    }

    #[test]
    fn loads_all_digits() {
        let d = load().unwrap();
        assert_eq!(d.name(), "digits");
        assert_eq!(d.len(), 1797);
        assert_eq!(d.shape(), [1, 8, 8]);
        assert_eq!(d.levels(), 17);
        assert_eq!(d.counts_per_class(), vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        assert_eq!(*d.pixels().iter().max().unwrap(), 16);
        assert_eq!(*d.pixels().iter().min().unwrap(), 0);
        // The first row of the file is a 0; its first row of pixels is 0,0,5,13,9,1,0,0.
        assert_eq!(d.labels()[..3], [0, 1, 2]);
        assert_eq!(&d.image(0)[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
    }

    #[test]
    fn split_is_fixed_stratified_and_disjoint() {
        let all = load().unwrap();
        let (train, test) = train_test();
        assert_eq!((train.name(), test.name()), ("digits-train", "digits-test"));
        assert_eq!(train.len(), 1438);
        assert_eq!(test.len(), 359);
        assert_eq!(test.counts_per_class(), vec![36, 36, 35, 37, 36, 36, 36, 36, 35, 36]);
        // Rebuild the split's indices from the definition: last round(0.2 n_c) of each class in file order.
        let mut test_idx = Vec::new();
        for c in 0..10u32 {
            let idx = all.indices_of_class(c);
            let k = (0.2 * idx.len() as f64).round() as usize;
            test_idx.extend_from_slice(&idx[idx.len() - k..]);
        }
        test_idx.sort_unstable();
        let train_idx: Vec<usize> = (0..all.len()).filter(|i| test_idx.binary_search(i).is_err()).collect();
        assert_eq!(train_idx.len() + test_idx.len(), all.len());
        assert_eq!(train, all.subset(&train_idx).unwrap().with_name("digits-train"));
        assert_eq!(test, all.subset(&test_idx).unwrap().with_name("digits-test"));
        // Calling it again gives the same split.
        assert_eq!(train_test(), (train, test));
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let f = Path::new("x.csv");
        let mut row: Vec<String> = (0..64).map(|_| "0".to_string()).collect();
        row.push("3".into());
        let good = row.join(",");
        assert_eq!(parse_csv_gz(good.as_bytes(), f, "x").unwrap().labels(), &[3]);
        let short = row[1..].join(",");
        let e = parse_csv_gz(format!("{good}\n{short}\n").as_bytes(), f, "x").unwrap_err();
        assert_eq!(e.to_string(), "x.csv: line 2: 64 fields, expected 65");
        let mut bad = row.clone();
        bad[64] = "10".into();
        let e = parse_csv_gz(bad.join(",").as_bytes(), f, "x").unwrap_err();
        assert_eq!(e.to_string(), "x.csv: label 10 of item 0 is out of range for 10 classes");
        let mut bad = row.clone();
        bad[5] = "17".into();
        let e = parse_csv_gz(bad.join(",").as_bytes(), f, "x").unwrap_err();
        assert_eq!(e.to_string(), "x.csv: line 1: pixel 6 is 17, above 16");
        let mut bad = row;
        bad[0] = "a".into();
        let e = parse_csv_gz(bad.join(",").as_bytes(), f, "x").unwrap_err();
        assert_eq!(e.to_string(), "x.csv: line 1: field 1 is \"a\", not an integer");
    }
}
