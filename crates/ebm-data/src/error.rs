//! The errors of loading and checking data. Every message starts with the file or data set it concerns, so that a
//! failed run says which input to look at.

use std::path::{Path, PathBuf};

/// What can go wrong when reading or assembling data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (missing, unreadable, or a broken gzip stream).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the magic number of the expected format.
    #[error("{file}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic { file: String, found: u32, expected: u32, what: &'static str },

    /// The file is shorter than its header (or its record structure) says.
    #[error("{file}: truncated: {detail}")]
    Truncated { file: String, detail: String },

    /// The file is well formed up to a point but contains something the format does not allow.
    #[error("{file}: {detail}")]
    Malformed { file: String, detail: String },

    /// Two inputs that must describe the same items disagree on how many there are.
    #[error("{first} has {first_count} {first_what} but {second} has {second_count} {second_what}")]
    CountMismatch {
        first: String,
        first_count: usize,
        first_what: &'static str,
        second: String,
        second_count: usize,
        second_what: &'static str,
    },

    /// A label is not below the number of classes.
    #[error("{source_name}: label {label} of item {index} is out of range for {num_classes} classes")]
    LabelOutOfRange { source_name: String, index: usize, label: u64, num_classes: usize },

    /// A pixel value is not below the number of grey levels.
    #[error("{source_name}: pixel value {value} at byte {offset} is out of range for {levels} grey levels")]
    PixelOutOfRange { source_name: String, offset: usize, value: u8, levels: u16 },

    /// Arguments that cannot describe a valid data set or batch order.
    #[error("{source_name}: {detail}")]
    Invalid { source_name: String, detail: String },
}

/// The result of this crate's fallible operations.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn invalid(source_name: impl Into<String>, detail: impl Into<String>) -> Self {
        DataError::Invalid { source_name: source_name.into(), detail: detail.into() }
    }
}

impl From<DataError> for candle_core::Error {
    fn from(e: DataError) -> Self {
        candle_core::Error::wrap(e)
    }
}
