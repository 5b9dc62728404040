//! Reading whole data files, gunzipping them when they are gzip streams.

use crate::error::{DataError, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// The most a data file may decompress to: deflate expands at most about 1032 times, and no dataset here needs
/// more than a few GiB.
pub(crate) const MAX_GUNZIPPED: u64 = 4 << 30;

/// Decompresses a gzip stream held in memory; `what` names it in the error. A stream that decompresses to more
/// than [`MAX_GUNZIPPED`] bytes (or 1100 times its own size) is refused before that much is allocated.
pub(crate) fn gunzip(bytes: &[u8], what: &Path) -> Result<Vec<u8>> {
    let limit = MAX_GUNZIPPED.min((bytes.len() as u64).saturating_mul(1100));
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    MultiGzDecoder::new(bytes).take(limit + 1).read_to_end(&mut out).map_err(|e| DataError::io(what, e))?;
    if out.len() as u64 > limit {
        return Err(DataError::Malformed {
            file: what.display().to_string(),
            detail: format!("the gzip stream decompresses to more than {limit} bytes"),
        });
    }
    Ok(out)
}

/// The contents of `path`, decompressed when the file is a gzip stream (whatever its name).
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if is_gzip(&raw) {
        gunzip(&raw, path)
    } else {
        Ok(raw)
    }
}

/// How a path is named in error messages.
pub(crate) fn display_name(path: &Path) -> String {
    path.display().to_string()
}
