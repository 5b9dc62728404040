//! numpy's `.npy` format, and `.npz` archives of them.
//!
//! An `.npy` file is the magic `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the length of a header (2 bytes little
//! endian for 1.0, 4 bytes for the others), and the header itself: a Python dict literal such as
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (737280, 6), }`, padded with spaces and a newline. The raw
//! array follows, `prod(shape)` items of the `descr` type. Only plain numeric types (`b1`, `i1`..`i8`, `u1`..`u8`,
//! `f4`, `f8`, either byte order) in C order are read; object arrays (pickled Python objects) are refused.
//!
//! An `.npz` file (`numpy.savez` or `savez_compressed`) is a zip archive with one `name.npy` member per array,
//! stored or deflated; [`Npz`] reads members by name without touching the others.

use crate::error::{DataError, Result};
use crate::file::display_name;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Dtype {
    /// Bytes per item.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::I8 | Dtype::U8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// numpy's name without byte order, as in a `descr` (`u1`, `f8`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Dtype::Bool => "b1",
            Dtype::I8 => "i1",
            Dtype::U8 => "u1",
            Dtype::I16 => "i2",
            Dtype::U16 => "u2",
            Dtype::I32 => "i4",
            Dtype::U32 => "u4",
            Dtype::I64 => "i8",
            Dtype::U64 => "u8",
            Dtype::F32 => "f4",
            Dtype::F64 => "f8",
        }
    }

    /// The type and byte order (`true` for big endian) of a numpy type string such as `<f8`, `|u1` or `uint8`.
    /// `None` for anything else (object, string, structured or complex types).
    pub fn parse(descr: &str) -> Option<(Dtype, bool)> {
        let (big, code) = match descr.as_bytes().first() {
            Some(b'<') | Some(b'|') | Some(b'=') => (false, &descr[1..]),
            Some(b'>') => (true, &descr[1..]),
            _ => (false, descr),
        };
        let t = match code {
            "b1" | "?" | "bool" => Dtype::Bool,
            "i1" | "int8" => Dtype::I8,
            "u1" | "uint8" => Dtype::U8,
            "i2" | "int16" => Dtype::I16,
            "u2" | "uint16" => Dtype::U16,
            "i4" | "int32" => Dtype::I32,
            "u4" | "uint32" => Dtype::U32,
            "i8" | "int64" => Dtype::I64,
            "u8" | "uint64" => Dtype::U64,
            "f4" | "float32" => Dtype::F32,
            "f8" | "float64" => Dtype::F64,
            _ => return None,
        };
        Some((t, big && t.size() > 1))
    }

    fn is_integer(self) -> bool {
        !matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// An n-dimensional numeric array in C (row-major) order, as raw bytes of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub dtype: Dtype,
    /// Whether multi-byte items are stored big endian.
    pub big_endian: bool,
    pub shape: Vec<usize>,
    data: Vec<u8>,
}

impl Array {
    /// An array over `data`, which must hold exactly `prod(shape)` items; `what` names the source in errors.
    pub fn new(dtype: Dtype, big_endian: bool, shape: Vec<usize>, data: Vec<u8>, what: &str) -> Result<Array> {
        let need = shape.iter().try_fold(dtype.size(), |a, &d| a.checked_mul(d));
        if need != Some(data.len()) {
            return Err(DataError::Malformed {
                file: what.to_string(),
                detail: format!(
                    "an array of shape {shape:?} and type {} needs {} bytes but has {}",
                    dtype.code(),
                    need.map_or("too many".to_string(), |n| n.to_string()),
                    data.len()
                ),
            });
        }
        Ok(Array { dtype, big_endian, shape, data })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The bytes of a `u1` or `b1` array, without copying; an error naming `what` for other types.
    pub fn into_u8(self, what: &str) -> Result<Vec<u8>> {
        match self.dtype {
            Dtype::U8 | Dtype::Bool => Ok(self.data),
            t => Err(DataError::Malformed {
                file: what.to_string(),
                detail: format!("expected an array of bytes (uint8) but found type {}", t.code()),
            }),
        }
    }

    /// Every item as `f64` (exact for all types but 64-bit integers beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        let n = self.dtype.size();
        self.data.chunks_exact(n).map(|b| self.item_f64(b)).collect()
    }

    /// Every item as `i64`; an error naming `what` for floating-point arrays or `u8` values beyond `i64`.
    pub fn to_i64(&self, what: &str) -> Result<Vec<i64>> {
        if !self.dtype.is_integer() {
            return Err(DataError::Malformed {
                file: what.to_string(),
                detail: format!("expected an integer array but found type {}", self.dtype.code()),
            });
        }
        let n = self.dtype.size();
        self.data
            .chunks_exact(n)
            .map(|b| {
                let v = self.item_u64_bits(b);
                match self.dtype {
                    Dtype::I8 => Ok(v as u8 as i8 as i64),
                    Dtype::I16 => Ok(v as u16 as i16 as i64),
                    Dtype::I32 => Ok(v as u32 as i32 as i64),
                    Dtype::I64 => Ok(v as i64),
                    _ => i64::try_from(v).map_err(|_| DataError::Malformed {
                        file: what.to_string(),
                        detail: format!("value {v} does not fit a 64-bit signed integer"),
                    }),
                }
            })
            .collect()
    }

    /// The item's bits, zero-extended, in native order.
    fn item_u64_bits(&self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        if self.big_endian {
            for &x in b {
                v = (v << 8) | x as u64;
            }
        } else {
            for &x in b.iter().rev() {
                v = (v << 8) | x as u64;
            }
        }
        v
    }

    fn item_f64(&self, b: &[u8]) -> f64 {
        let v = self.item_u64_bits(b);
        match self.dtype {
            Dtype::Bool | Dtype::U8 | Dtype::U16 | Dtype::U32 | Dtype::U64 => v as f64,
            Dtype::I8 => v as u8 as i8 as f64,
            Dtype::I16 => v as u16 as i16 as f64,
            Dtype::I32 => v as u32 as i32 as f64,
            Dtype::I64 => v as i64 as f64,
            Dtype::F32 => f32::from_bits(v as u32) as f64,
            Dtype::F64 => f64::from_bits(v),
        }
    }
}

/// Reads one `.npy` stream; `what` names it in errors. The data is read straight into its final buffer, so a
/// 3 GB array needs 3 GB, not 6.
pub fn read_npy<R: Read>(mut r: R, what: &str) -> Result<Array> {
    let io = |e: std::io::Error| DataError::Malformed { file: what.to_string(), detail: format!("read error: {e}") };
    let truncated = |detail: String| DataError::Truncated { file: what.to_string(), detail };
    let mut pre = [0u8; 8];
    read_full(&mut r, &mut pre)
        .map_err(io)?
        .then_some(())
        .ok_or_else(|| truncated("shorter than the 8 bytes of the .npy magic and version".to_string()))?;
    if &pre[..6] != MAGIC {
        let found = u32::from_be_bytes([pre[0], pre[1], pre[2], pre[3]]);
        return Err(DataError::BadMagic { file: what.to_string(), found, expected: 0x934e_554d, what: "numpy .npy" });
    }
    let header_len = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            read_full(&mut r, &mut b).map_err(io)?.then_some(()).ok_or_else(|| truncated("no header length".into()))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_full(&mut r, &mut b).map_err(io)?.then_some(()).ok_or_else(|| truncated("no header length".into()))?;
            u32::from_le_bytes(b) as usize
        }
        v => {
            return Err(DataError::Malformed {
                file: what.to_string(),
                detail: format!("unknown .npy format version {v}.{}", pre[7]),
            })
        }
    };
    if header_len > 1 << 20 {
        return Err(DataError::Malformed {
            file: what.to_string(),
            detail: format!("a header of {header_len} bytes is not a .npy header"),
        });
    }
    let mut header = vec![0u8; header_len];
    read_full(&mut r, &mut header)
        .map_err(io)?
        .then_some(())
        .ok_or_else(|| truncated(format!("the header says {header_len} bytes but the stream ends before")))?;
    let header = String::from_utf8_lossy(&header);
    let (dtype, big, shape) = parse_header(&header, what)?;
    let need = shape.iter().try_fold(dtype.size(), |a, &d| a.checked_mul(d)).ok_or_else(|| DataError::Malformed {
        file: what.to_string(),
        detail: format!("shape {shape:?} is too large"),
    })?;
    let mut data = Vec::new();
    data.try_reserve_exact(need).map_err(|_| DataError::Malformed {
        file: what.to_string(),
        detail: format!("cannot allocate {need} bytes for an array of shape {shape:?}"),
    })?;
    let got = r.by_ref().take(need as u64).read_to_end(&mut data).map_err(io)?;
    if got < need {
        return Err(truncated(format!(
            "header promises shape {shape:?} of {} ({need} bytes) but only {got} bytes follow",
            dtype.code()
        )));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(io)? > 0 {
        return Err(DataError::Malformed {
            file: what.to_string(),
            detail: format!("more bytes follow the {need} bytes of shape {shape:?} of {}", dtype.code()),
        });
    }
    Array::new(dtype, big, shape, data, what)
}

/// Fills `buf` entirely; `Ok(false)` when the stream ends first.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Parses the dict literal of a `.npy` header.
fn parse_header(h: &str, what: &str) -> Result<(Dtype, bool, Vec<usize>)> {
    let bad = |detail: String| DataError::Malformed { file: what.to_string(), detail };
    let value_of = |key: &str| -> Result<&str> {
        let k = h.find(&format!("'{key}'")).ok_or_else(|| bad(format!("header {h:?} has no '{key}'")))?;
        let rest = &h[k + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| bad(format!("header {h:?}: no value for '{key}'")))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_of("descr")?;
    let descr = match descr.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let end = descr[1..].find(q).ok_or_else(|| bad(format!("header {h:?}: unterminated 'descr'")))?;
            &descr[1..1 + end]
        }
        _ => return Err(bad(format!("structured arrays are not supported (header {h:?})"))),
    };
    let (dtype, big) = Dtype::parse(descr).ok_or_else(|| {
        bad(if descr.ends_with('O') {
            format!("type {descr:?} is an object array (pickled Python objects), which is not read")
        } else {
            format!("type {descr:?} is not a plain numeric type")
        })
    })?;
    let fortran = value_of("fortran_order")?;
    if fortran.starts_with("True") {
        return Err(bad("arrays stored in Fortran order are not supported".to_string()));
    } else if !fortran.starts_with("False") {
        return Err(bad(format!("header {h:?}: 'fortran_order' is neither True nor False")));
    }
    let shape = value_of("shape")?;
    let close = shape.find(')').filter(|_| shape.starts_with('('));
    let close = close.ok_or_else(|| bad(format!("header {h:?}: 'shape' is not a tuple")))?;
    let dims = shape[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| bad(format!("shape entry {s:?} is not a size"))))
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, big, dims))
}

/// An `.npz` archive opened for reading arrays by name.
pub struct Npz {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<std::fs::File>>,
}

impl Npz {
    /// Opens `path`; a file that is not a complete zip archive is an error naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Npz> {
        let path = path.as_ref().to_path_buf();
        let f = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let zip = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| zip_error(&path, "", e))?;
        Ok(Npz { path, zip })
    }

    /// The names of the arrays (members without their `.npy`), in archive order.
    pub fn names(&self) -> Vec<String> {
        self.zip.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect()
    }

    /// Whether an array `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(&format!("{name}.npy")).is_some() || self.zip.index_for_name(name).is_some()
    }

    /// The array `name` (member `name.npy`).
    pub fn array(&mut self, name: &str) -> Result<Array> {
        let member = if self.zip.index_for_name(&format!("{name}.npy")).is_some() {
            format!("{name}.npy")
        } else if self.zip.index_for_name(name).is_some() {
            name.to_string()
        } else {
            return Err(DataError::Malformed {
                file: display_name(&self.path),
                detail: format!("no array '{name}'; the archive holds: {}", self.names().join(", ")),
            });
        };
        let what = format!("{}[{member}]", display_name(&self.path));
        let entry = self.zip.by_name(&member).map_err(|e| zip_error(&self.path, &member, e))?;
        read_npy(entry, &what)
    }
}

/// A zip error as a [`DataError`] naming the file (and member).
fn zip_error(path: &Path, member: &str, e: zip::result::ZipError) -> DataError {
    let file = if member.is_empty() { display_name(path) } else { format!("{}[{member}]", display_name(path)) };
    match e {
        zip::result::ZipError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DataError::Truncated { file, detail: format!("the zip archive ends early ({e})") }
        }
        e => DataError::Malformed { file, detail: format!("not a readable zip (npz) archive: {e}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1.0 `.npy` stream with the given header dict and data.
    fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.to_string();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_numeric_types_and_byte_orders() {
        let data: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read_npy(&npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", &data)[..], "a").unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (Dtype::F64, vec![2]));
        assert_eq!(a.to_f64(), vec![1.5, -2.0]);
        let data: Vec<u8> = [-3i32, 7].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = read_npy(&npy("{'descr': '>i4', 'fortran_order': False, 'shape': (1, 2), }", &data)[..], "b").unwrap();
        assert_eq!(a.to_i64("b").unwrap(), vec![-3, 7]);
        let a = read_npy(&npy("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", &[9])[..], "c").unwrap();
        assert_eq!((a.len(), a.into_u8("c").unwrap()), (1, vec![9]));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let e =
            read_npy(&npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", &[0; 8])[..], "m").unwrap_err();
        assert!(e.to_string().contains("object array"), "{e}");
        let e =
            read_npy(&npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4])[..], "f").unwrap_err();
        assert!(e.to_string().contains("Fortran order"), "{e}");
        let e = read_npy(&b"PK\x03\x04 not npy"[..], "z").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { .. }), "{e}");
        let full = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", &[0; 24]);
        let e = read_npy(&full[..full.len() - 5], "t").unwrap_err();
        assert_eq!(e.to_string(), "t: truncated: header promises shape [3] of i8 (24 bytes) but only 19 bytes follow");
        let mut long = full.clone();
        long.push(0);
        assert!(read_npy(&long[..], "l").unwrap_err().to_string().contains("more bytes follow"));
        let e = read_npy(&npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", &[0; 8])[..], "x")
            .unwrap()
            .into_u8("x")
            .unwrap_err();
        assert_eq!(e.to_string(), "x: expected an array of bytes (uint8) but found type f8");
    }
}
