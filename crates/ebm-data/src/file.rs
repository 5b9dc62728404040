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

/// Decompresses a gzip stream held in memory; `what` names it in the error.
pub(crate) fn gunzip(bytes: &[u8], what: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| DataError::io(what, e))?;
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
