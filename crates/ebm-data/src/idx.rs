//! The IDX format of MNIST and Fashion-MNIST, read whole into memory and gunzipped on the fly when the file is a
//! gzip stream (whatever its name).
//!
//! An IDX file is a big-endian header, `0x00 0x00 type ndims` then `ndims` 32-bit sizes, followed by the values in
//! row-major order. Only unsigned bytes (type `0x08`) occur in these data sets: images are `0x00000803`
//! (`[count, rows, cols]`) and labels `0x00000801` (`[count]`).

use crate::error::{DataError, Result};
use crate::file::{display_name, read_maybe_gz};
use crate::images::ImageSet;
use crate::Split;
use std::path::Path;

/// Magic number of an IDX file of unsigned-byte images `[count, rows, cols]`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels `[count]`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The contents of an IDX image file: `count` greyscale images of `rows x cols`, row-major, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (raw or gzipped).
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    parse_images(&read_maybe_gz(path)?, &display_name(path))
}

/// Reads an IDX label file (raw or gzipped).
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_labels(&read_maybe_gz(path)?, &display_name(path))
}

/// Parses the (decompressed) bytes of an IDX image file; `file` names it in errors.
pub fn parse_images(bytes: &[u8], file: &str) -> Result<IdxImages> {
    let (dims, data) = parse_header(bytes, file, IMAGES_MAGIC, "IDX unsigned-byte images")?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    let need = count as u128 * rows as u128 * cols as u128;
    check_length(file, data.len(), need, format!("{count} images of {rows}x{cols}"))?;
    Ok(IdxImages { count, rows, cols, pixels: data.to_vec() })
}

/// Parses the (decompressed) bytes of an IDX label file; `file` names it in errors.
pub fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<u8>> {
    let (dims, data) = parse_header(bytes, file, LABELS_MAGIC, "IDX unsigned-byte labels")?;
    check_length(file, data.len(), dims[0] as u128, format!("{} labels", dims[0]))?;
    Ok(data.to_vec())
}

/// Reads an image file and its label file into one [`ImageSet`] of `[1, rows, cols]` images with 256 levels.
/// The two files must hold the same number of items and every label must be below `num_classes`.
pub fn load_pair(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    name: &str,
    num_classes: usize,
) -> Result<ImageSet> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            first: display_name(images_path),
            first_count: images.count,
            first_what: "images",
            second: display_name(labels_path),
            second_count: labels.len(),
            second_what: "labels",
        });
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= num_classes) {
        return Err(DataError::LabelOutOfRange {
            source_name: display_name(labels_path),
            index,
            label: label as u64,
            num_classes,
        });
    }
    ImageSet::new(
        name,
        images.pixels,
        256,
        [1, images.rows, images.cols],
        labels.into_iter().map(u32::from).collect(),
        num_classes,
    )
}

/// Loads one split of an MNIST-style folder with 10 classes, which holds the usual file names
/// `{train,t10k}-images-idx3-ubyte` and `{train,t10k}-labels-idx1-ubyte`, each either as is or with `.gz`
/// (the uncompressed name is tried first). The set is named `"{name}-train"` or `"{name}-test"`.
pub fn load_dir(dir: impl AsRef<Path>, split: Split, name: &str) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let (prefix, suffix) = match split {
        Split::Train => ("train", "train"),
        Split::Test => ("t10k", "test"),
    };
    let find = |stem: String| {
        let plain = dir.join(&stem);
        if plain.exists() {
            plain
        } else {
            dir.join(format!("{stem}.gz"))
        }
    };
    load_pair(
        find(format!("{prefix}-images-idx3-ubyte")),
        find(format!("{prefix}-labels-idx1-ubyte")),
        &format!("{name}-{suffix}"),
        10,
    )
}

/// Checks the magic number and returns the dimensions and the bytes after the header.
fn parse_header<'a>(bytes: &'a [u8], file: &str, magic: u32, what: &'static str) -> Result<(Vec<usize>, &'a [u8])> {
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!("{} bytes, shorter than the {header}-byte header of {what}", bytes.len()),
        });
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(DataError::BadMagic { file: file.to_string(), found, expected: magic, what });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!("{} bytes, shorter than the {header}-byte header of {what}", bytes.len()),
        });
    }
    let dims =
        bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    Ok((dims, &bytes[header..]))
}

/// Checks that exactly `need` data bytes follow the header.
fn check_length(file: &str, have: usize, need: u128, promise: String) -> Result<()> {
    if (have as u128) < need {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!("header promises {promise} ({need} bytes) but only {have} bytes follow"),
        });
    }
    if have as u128 > need {
        return Err(DataError::Malformed {
            file: file.to_string(),
            detail: format!(
                "header promises {promise} ({need} bytes) but {have} bytes follow ({} too many)",
                have as u128 - need
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gzip, TempDir};

    /// An IDX image file of `count` images of `rows x cols` whose pixel k is `k mod 251`.
    fn image_file(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [count, rows, cols] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend((0..count * rows * cols).map(|k| (k % 251) as u8));
        b
    }

    fn label_file(labels: &[u8]) -> Vec<u8> {
        let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    #[test]
    fn reads_raw_and_gzipped_files_alike() {
        let dir = TempDir::new("idx-raw-gz");
        let images = image_file(3, 4, 5);
        let labels = label_file(&[7, 0, 9]);
        let raw = dir.write("raw-images", &images);
        let gz = dir.write("images.gz", &gzip(&images));
        let raw_labels = dir.write("raw-labels", &labels);
        let gz_labels = dir.write("labels.anything", &gzip(&labels));
        let a = read_images(&raw).unwrap();
        assert_eq!((a.count, a.rows, a.cols), (3, 4, 5));
        assert_eq!(a.pixels, images[16..]);
        assert_eq!(read_images(&gz).unwrap(), a);
        assert_eq!(read_labels(&raw_labels).unwrap(), vec![7, 0, 9]);
        assert_eq!(read_labels(&gz_labels).unwrap(), vec![7, 0, 9]);

        let set = load_pair(&gz, &raw_labels, "tiny", 10).unwrap();
        assert_eq!(set.name(), "tiny");
        assert_eq!(set.shape(), [1, 4, 5]);
        assert_eq!(set.levels(), 256);
        assert_eq!(set.labels(), &[7, 0, 9]);
        assert_eq!(set.image(1), &images[16 + 20..16 + 40]);
    }

    #[test]
    fn load_dir_finds_standard_names() {
        let dir = TempDir::new("idx-dir");
        dir.write("t10k-images-idx3-ubyte.gz", &gzip(&image_file(2, 2, 2)));
        dir.write("t10k-labels-idx1-ubyte", &label_file(&[1, 2]));
        let set = load_dir(dir.path(), Split::Test, "fashion").unwrap();
        assert_eq!(set.name(), "fashion-test");
        assert_eq!(set.len(), 2);
        let e = load_dir(dir.path(), Split::Train, "fashion").unwrap_err();
        assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
    }

    #[test]
    fn bad_magic_is_reported_with_both_numbers() {
        let dir = TempDir::new("idx-magic");
        let labels = dir.write("labels", &label_file(&[1]));
        let e = read_images(&labels).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { found: 0x801, expected: 0x803, .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: bad magic number 0x00000801, expected 0x00000803 (IDX unsigned-byte images)",
                labels.display()
            )
        );
        let e = parse_labels(b"PK\x03\x04rest", "x.zip").unwrap_err();
        assert_eq!(e.to_string(), "x.zip: bad magic number 0x504b0304, expected 0x00000801 (IDX unsigned-byte labels)");
    }

    #[test]
    fn truncation_says_what_the_header_promised() {
        let mut images = image_file(60000, 28, 28);
        images.truncate(16 + 1000);
        let e = parse_images(&images, "train-images-idx3-ubyte").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }));
        assert_eq!(
            e.to_string(),
            "train-images-idx3-ubyte: truncated: header promises 60000 images of 28x28 (47040000 bytes) but only \
             1000 bytes follow"
        );
        let e = parse_images(&images[..10], "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: truncated: 10 bytes, shorter than the 16-byte header of IDX unsigned-byte images"
        );
        let mut labels = label_file(&[1, 2, 3]);
        labels.pop();
        let e = parse_labels(&labels, "l").unwrap_err();
        assert_eq!(e.to_string(), "l: truncated: header promises 3 labels (3 bytes) but only 2 bytes follow");
        // Bytes beyond what the header promises are an error too: the file is not what it claims.
        let mut labels = label_file(&[1, 2, 3]);
        labels.push(0);
        let e = parse_labels(&labels, "l").unwrap_err();
        assert_eq!(e.to_string(), "l: header promises 3 labels (3 bytes) but 4 bytes follow (1 too many)");
        // A truncated gzip stream is an I/O error naming the file.
        let dir = TempDir::new("idx-gz-trunc");
        let gz = gzip(&image_file(5, 8, 8));
        let p = dir.write("cut.gz", &gz[..gz.len() / 2]);
        let e = read_images(&p).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
    }

    #[test]
    fn mismatched_counts_and_bad_labels_are_rejected() {
        let dir = TempDir::new("idx-pair");
        let images = dir.write("images", &image_file(3, 2, 2));
        let two = dir.write("two-labels", &label_file(&[1, 2]));
        let e = load_pair(&images, &two, "s", 10).unwrap_err();
        assert_eq!(e.to_string(), format!("{} has 3 images but {} has 2 labels", images.display(), two.display()));
        let big = dir.write("big-labels", &label_file(&[1, 10, 2]));
        let e = load_pair(&images, &big, "s", 10).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: label 10 of item 1 is out of range for 10 classes", big.display()));
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = TempDir::new("idx-missing");
        let p = dir.path().join("no-such-file-idx3-ubyte");
        let e = read_images(&p).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}: ", p.display())), "{msg}");
    }
}
