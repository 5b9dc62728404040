//! The binary versions of CIFAR-10 and CIFAR-100 (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`).
//!
//! A batch file is a sequence of fixed-size records without header: CIFAR-10 records are 1 label byte then 3072
//! pixel bytes; CIFAR-100 records are 2 label bytes (coarse, then fine) then 3072 pixel bytes. The pixels are a
//! 32x32 colour image stored channel-major (1024 red, 1024 green, 1024 blue, each row-major), which is exactly the
//! `[3, 32, 32]` layout of [`ImageSet`]. A file that is a gzip stream is decompressed first.

use crate::error::{DataError, Result};
use crate::file::{display_name, read_maybe_gz};
use crate::images::ImageSet;
use crate::Split;
use std::path::Path;

/// `[C, H, W]` of a CIFAR image.
pub const SHAPE: [usize; 3] = [3, 32, 32];
/// Pixel bytes per record.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// The CIFAR-10 training batch files inside `cifar-10-batches-bin/`.
pub const CIFAR10_TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The CIFAR-10 test batch file inside `cifar-10-batches-bin/`.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// The CIFAR-100 training file inside `cifar-100-binary/`.
pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// The CIFAR-100 test file inside `cifar-100-binary/`.
pub const CIFAR100_TEST_FILE: &str = "test.bin";

/// Which of CIFAR-100's two labels an [`ImageSet`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cifar100Labels {
    /// The 100 classes (the second label byte); the usual choice.
    #[default]
    Fine,
    /// The 20 superclasses (the first label byte).
    Coarse,
}

/// The record layout of a CIFAR binary file and which label to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarFormat {
    /// 1 label byte (10 classes) + 3072 pixel bytes.
    Cifar10,
    /// 2 label bytes (20 coarse classes, 100 fine classes) + 3072 pixel bytes.
    Cifar100(Cifar100Labels),
}

impl CifarFormat {
    /// Label bytes at the start of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            CifarFormat::Cifar10 => 1,
            CifarFormat::Cifar100(_) => 2,
        }
    }

    /// Bytes per record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    /// Number of classes of the kept label.
    pub fn num_classes(self) -> usize {
        match self {
            CifarFormat::Cifar10 => 10,
            CifarFormat::Cifar100(Cifar100Labels::Fine) => 100,
            CifarFormat::Cifar100(Cifar100Labels::Coarse) => 20,
        }
    }

    /// Which byte of the record holds the kept label.
    fn label_offset(self) -> usize {
        match self {
            CifarFormat::Cifar10 | CifarFormat::Cifar100(Cifar100Labels::Coarse) => 0,
            CifarFormat::Cifar100(Cifar100Labels::Fine) => 1,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CifarFormat::Cifar10 => "1 label byte + 3072 pixel bytes",
            CifarFormat::Cifar100(_) => "2 label bytes + 3072 pixel bytes",
        }
    }
}

/// Reads CIFAR-10 batch files, in the order given, into one set of 256-level `[3, 32, 32]` images, 10 classes.
pub fn read_cifar10<P: AsRef<Path>>(paths: &[P], name: &str) -> Result<ImageSet> {
    read(paths, name, CifarFormat::Cifar10)
}

/// Reads CIFAR-100 files, in the order given, keeping the fine (100 classes) or coarse (20 classes) labels.
pub fn read_cifar100<P: AsRef<Path>>(paths: &[P], name: &str, labels: Cifar100Labels) -> Result<ImageSet> {
    read(paths, name, CifarFormat::Cifar100(labels))
}

/// Reads files of the given record layout, in the order given, into one set.
pub fn read<P: AsRef<Path>>(paths: &[P], name: &str, format: CifarFormat) -> Result<ImageSet> {
    if paths.is_empty() {
        return Err(DataError::invalid(name, "no CIFAR batch file given"));
    }
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for p in paths {
        let p = p.as_ref();
        parse_into(&read_maybe_gz(p)?, &display_name(p), format, &mut pixels, &mut labels)?;
    }
    ImageSet::new(name, pixels, 256, SHAPE, labels, format.num_classes())
}

/// Parses the bytes of one batch file into a set; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str, name: &str, format: CifarFormat) -> Result<ImageSet> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    parse_into(bytes, file, format, &mut pixels, &mut labels)?;
    ImageSet::new(name, pixels, 256, SHAPE, labels, format.num_classes())
}

/// One split of CIFAR-10 from the extracted `cifar-10-batches-bin/` folder: the five training batches (50000
/// images) or the test batch (10000), named "cifar10-train" or "cifar10-test".
pub fn load_cifar10_dir(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = dir.as_ref();
    match split {
        Split::Train => {
            let paths: Vec<_> = CIFAR10_TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
            read_cifar10(&paths, "cifar10-train")
        }
        Split::Test => read_cifar10(&[dir.join(CIFAR10_TEST_FILE)], "cifar10-test"),
    }
}

/// One split of CIFAR-100 from the extracted `cifar-100-binary/` folder (50000 or 10000 images), named
/// "cifar100-train" or "cifar100-test" (with "-coarse" appended when keeping the coarse labels).
pub fn load_cifar100_dir(dir: impl AsRef<Path>, split: Split, labels: Cifar100Labels) -> Result<ImageSet> {
    let (file, name) = match split {
        Split::Train => (CIFAR100_TRAIN_FILE, "cifar100-train"),
        Split::Test => (CIFAR100_TEST_FILE, "cifar100-test"),
    };
    let name = match labels {
        Cifar100Labels::Fine => name.to_string(),
        Cifar100Labels::Coarse => format!("{name}-coarse"),
    };
    read_cifar100(&[dir.as_ref().join(file)], &name, labels)
}

fn parse_into(
    bytes: &[u8],
    file: &str,
    format: CifarFormat,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let record = format.record_bytes();
    if bytes.is_empty() {
        return Err(DataError::Malformed { file: file.to_string(), detail: "empty file: no CIFAR record".to_string() });
    }
    if bytes.len() % record != 0 {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!(
                "{} bytes is not a multiple of the {record}-byte record ({}): {} whole records and {} bytes left over",
                bytes.len(),
                format.describe(),
                bytes.len() / record,
                bytes.len() % record
            ),
        });
    }
    let (offset, num_classes) = (format.label_offset(), format.num_classes());
    pixels.reserve(bytes.len() / record * IMAGE_BYTES);
    for (k, rec) in bytes.chunks_exact(record).enumerate() {
        // Both labels of a CIFAR-100 record are checked, the kept one against its class count.
        if let CifarFormat::Cifar100(_) = format {
            let (coarse, fine) = (rec[0], rec[1]);
            for (value, n) in [(coarse, 20), (fine, 100)] {
                if value as usize >= n {
                    return Err(label_error(file, k, value, n));
                }
            }
        }
        let label = rec[offset];
        if label as usize >= num_classes {
            return Err(label_error(file, k, label, num_classes));
        }
        labels.push(label as u32);
        pixels.extend_from_slice(&rec[format.label_bytes()..]);
    }
    Ok(())
}

fn label_error(file: &str, index: usize, label: u8, num_classes: usize) -> DataError {
    DataError::LabelOutOfRange { source_name: file.to_string(), index, label: label as u64, num_classes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// A record whose pixels are `seed + k mod 256`, after the given label bytes.
    fn record(label_bytes: &[u8], seed: u8) -> Vec<u8> {
        let mut r = label_bytes.to_vec();
        r.extend((0..IMAGE_BYTES).map(|k| seed.wrapping_add(k as u8)));
        r
    }

    #[test]
    fn reads_cifar10_batches_in_order() {
        let dir = TempDir::new("cifar10");
        let a: Vec<u8> = [record(&[3], 0), record(&[9], 1)].concat();
        let b: Vec<u8> = record(&[0], 2);
        let pa = dir.write("data_batch_1.bin", &a);
        let pb = dir.write("data_batch_2.bin", &b);
        let set = read_cifar10(&[&pa, &pb], "c10").unwrap();
        assert_eq!(set.name(), "c10");
        assert_eq!(set.len(), 3);
        assert_eq!(set.shape(), [3, 32, 32]);
        assert_eq!(set.levels(), 256);
        assert_eq!(set.num_classes(), 10);
        assert_eq!(set.labels(), &[3, 9, 0]);
        assert_eq!(set.image(1), &record(&[9], 1)[1..]);
        assert_eq!(set.image(2), &b[1..]);
        // The pixel layout is [C, H, W]: the green plane of image 0 starts at byte 1024.
        let (x, _) = set.batch(&[0], None).unwrap();
        let g00 = x.get(0).unwrap().get(1).unwrap().get(0).unwrap().get(0).unwrap();
        assert_eq!(g00.to_scalar::<f32>().unwrap(), (1024 % 256) as f32 / 255.0);
    }

    #[test]
    fn cifar100_keeps_fine_or_coarse_labels() {
        let bytes: Vec<u8> = [record(&[19, 99], 0), record(&[0, 5], 7)].concat();
        let fine = parse(&bytes, "train.bin", "f", CifarFormat::Cifar100(Cifar100Labels::Fine)).unwrap();
        assert_eq!(fine.labels(), &[99, 5]);
        assert_eq!(fine.num_classes(), 100);
        assert_eq!(fine.image(1), &record(&[0, 5], 7)[2..]);
        let coarse = parse(&bytes, "train.bin", "c", CifarFormat::Cifar100(Cifar100Labels::Coarse)).unwrap();
        assert_eq!(coarse.labels(), &[19, 0]);
        assert_eq!(coarse.num_classes(), 20);
        assert_eq!(coarse.pixels(), fine.pixels());
        assert_eq!(Cifar100Labels::default(), Cifar100Labels::Fine);
    }

    #[test]
    fn load_dir_uses_standard_names() {
        let dir = TempDir::new("cifar-dirs");
        for (k, f) in CIFAR10_TRAIN_FILES.iter().enumerate() {
            dir.write(f, &record(&[k as u8], k as u8));
        }
        dir.write(CIFAR10_TEST_FILE, &record(&[7], 0));
        dir.write(CIFAR100_TEST_FILE, &record(&[1, 42], 0));
        let train = load_cifar10_dir(dir.path(), Split::Train).unwrap();
        assert_eq!((train.name(), train.labels()), ("cifar10-train", &[0, 1, 2, 3, 4][..]));
        let test = load_cifar10_dir(dir.path(), Split::Test).unwrap();
        assert_eq!((test.name(), test.labels()), ("cifar10-test", &[7][..]));
        let c = load_cifar100_dir(dir.path(), Split::Test, Cifar100Labels::Coarse).unwrap();
        assert_eq!((c.name(), c.labels()), ("cifar100-test-coarse", &[1][..]));
        let e = load_cifar100_dir(dir.path(), Split::Train, Cifar100Labels::Fine).unwrap_err();
        assert!(e.to_string().starts_with(&dir.path().join("train.bin").display().to_string()), "{e}");
    }

    #[test]
    fn truncated_file_reports_the_sizes() {
        let mut bytes = [record(&[1], 0), record(&[2], 0)].concat();
        bytes.truncate(2 * 3073 - 10);
        let e = parse(&bytes, "data_batch_1.bin", "c", CifarFormat::Cifar10).unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }));
        assert_eq!(
            e.to_string(),
            "data_batch_1.bin: truncated: 6136 bytes is not a multiple of the 3073-byte record (1 label byte + 3072 \
             pixel bytes): 1 whole records and 3063 bytes left over"
        );
        // A CIFAR-10 file read as CIFAR-100 is caught the same way (3073 is not a multiple of 3074).
        let e = parse(&record(&[1], 0), "x.bin", "c", CifarFormat::Cifar100(Cifar100Labels::Fine)).unwrap_err();
        assert!(e.to_string().contains("3073 bytes is not a multiple of the 3074-byte record"), "{e}");
        let e = parse(&[], "empty.bin", "c", CifarFormat::Cifar10).unwrap_err();
        assert_eq!(e.to_string(), "empty.bin: empty file: no CIFAR record");
    }

    #[test]
    fn out_of_range_labels_are_rejected() {
        let bytes = [record(&[1], 0), record(&[10], 0)].concat();
        let e = parse(&bytes, "b.bin", "c", CifarFormat::Cifar10).unwrap_err();
        assert_eq!(e.to_string(), "b.bin: label 10 of item 1 is out of range for 10 classes");
        // A bad coarse label is caught even when the fine labels are kept.
        let bytes = record(&[20, 3], 0);
        let e = parse(&bytes, "t.bin", "c", CifarFormat::Cifar100(Cifar100Labels::Fine)).unwrap_err();
        assert_eq!(e.to_string(), "t.bin: label 20 of item 0 is out of range for 20 classes");
        let e = parse(&record(&[0, 100], 0), "t.bin", "c", CifarFormat::Cifar100(Cifar100Labels::Coarse)).unwrap_err();
        assert_eq!(e.to_string(), "t.bin: label 100 of item 0 is out of range for 100 classes");
    }
}
