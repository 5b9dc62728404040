//! MATLAB level 5 MAT-files (what `save -v7` and `scipy.io.savemat` write), read whole into memory.
//!
//! Layout: a 128-byte header (116 bytes of text starting `MATLAB 5.0 MAT-file`, 8 bytes of subsystem offset, a
//! 2-byte version 0x0100 and the endian indicator `IM` or `MI`), then data elements. Each element is an 8-byte
//! tag (type, byte count) and its data, or a "small" element whose type and count share the first 4 bytes and
//! whose data fits the next 4. Top-level elements are `miMATRIX` (a variable) or `miCOMPRESSED` (a zlib stream
//! that holds one `miMATRIX`; 7.x files compress every variable). A numeric `miMATRIX` holds sub-elements, each
//! padded to 8 bytes: array flags (the class), dimensions, name, and the real part, which MATLAB may store in a
//! smaller type than its class (for example `uint8` for a `double` array of small integers). Values are in
//! column-major order.
//!
//! Non-numeric variables (cells, structs, chars, sparse) are listed with their class but not decoded. Version 7.3
//! files are HDF5 and are refused with a message saying so.

use crate::error::{DataError, Result};
use crate::file::display_name;
use std::io::Read;
use std::path::Path;

/// `mxClassID` of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatClass {
    Double,
    Single,
    Int8,
    Uint8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    /// Cell, struct, object, char, sparse or function: listed, not decoded.
    Other(u8),
}

impl MatClass {
    fn from_id(id: u8) -> MatClass {
        match id {
            6 => MatClass::Double,
            7 => MatClass::Single,
            8 => MatClass::Int8,
            9 => MatClass::Uint8,
            10 => MatClass::Int16,
            11 => MatClass::Uint16,
            12 => MatClass::Int32,
            13 => MatClass::Uint32,
            14 => MatClass::Int64,
            15 => MatClass::Uint64,
            other => MatClass::Other(other),
        }
    }
}

/// The values of a numeric variable: bytes when stored as `miUINT8`, otherwise widened to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    U8(Vec<u8>),
    F64(Vec<f64>),
    /// Not decoded (a non-numeric class).
    None,
}

/// One variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatVar {
    pub name: String,
    pub class: MatClass,
    /// Dimensions as MATLAB gives them (at least two).
    pub dims: Vec<usize>,
    /// The real part, column-major.
    pub data: MatData,
}

impl MatVar {
    /// Number of values, the product of the dimensions.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Every value as `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            MatData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            MatData::F64(v) => v.clone(),
            MatData::None => Vec::new(),
        }
    }
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Reads every variable of the MAT-file at `path`.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<MatVar>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes, &display_name(path))
}

/// Parses the bytes of a MAT-file; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Vec<MatVar>> {
    let p = Parser { file };
    if bytes.len() < 128 {
        return Err(p.truncated(format!("{} bytes, shorter than the 128-byte MAT-file header", bytes.len())));
    }
    if bytes.starts_with(b"MATLAB 7.3") || bytes.get(512..520) == Some(b"\x89HDF\r\n\x1a\n") {
        return Err(p.bad("a MATLAB 7.3 (HDF5) file; only level 5 MAT-files (save -v7 or earlier) are read".into()));
    }
    if !bytes.starts_with(b"MATLAB 5.0 MAT-file") {
        let text: String =
            bytes[..20].iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
        return Err(p.bad(format!("not a MATLAB 5 MAT-file (it starts with {text:?})")));
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => return Err(p.bad(format!("endian indicator {other:?} is neither \"IM\" nor \"MI\""))),
    };
    let mut vars = Vec::new();
    let mut pos = 128;
    while pos < bytes.len() {
        let el = p.element(bytes, pos, big)?;
        match el.kind {
            MI_COMPRESSED => {
                let mut inner = Vec::new();
                flate2::read::ZlibDecoder::new(el.data).read_to_end(&mut inner).map_err(|e| {
                    p.truncated(format!("the compressed variable at byte {pos} does not decompress: {e}"))
                })?;
                let m = p.element(&inner, 0, big)?;
                if m.kind != MI_MATRIX {
                    return Err(
                        p.bad(format!("the compressed element at byte {pos} holds type {}, not a matrix", m.kind))
                    );
                }
                vars.push(p.matrix(m.data, big)?);
            }
            MI_MATRIX => vars.push(p.matrix(el.data, big)?),
            _ => {} // other top-level elements carry no variable
        }
        // Top-level elements are not padded (a matrix's own size is a multiple of 8).
        pos = el.end;
    }
    Ok(vars)
}

/// The variable `name` of `vars`, or an error naming the file and listing what it holds.
pub fn find<'a>(vars: &'a [MatVar], name: &str, file: &str) -> Result<&'a MatVar> {
    vars.iter().find(|v| v.name == name).ok_or_else(|| DataError::Malformed {
        file: file.to_string(),
        detail: format!(
            "no variable '{name}'; the file holds: {}",
            if vars.is_empty() {
                "nothing".to_string()
            } else {
                vars.iter().map(|v| v.name.clone()).collect::<Vec<_>>().join(", ")
            }
        ),
    })
}

/// One data element: its type, its data, and where the next one starts (unpadded).
struct Element<'a> {
    kind: u32,
    data: &'a [u8],
    end: usize,
    /// Where the next sub-element starts: `end` rounded up to 8 bytes (small elements take exactly 8).
    padded_end: usize,
}

struct Parser<'f> {
    file: &'f str,
}

impl Parser<'_> {
    fn bad(&self, detail: String) -> DataError {
        DataError::Malformed { file: self.file.to_string(), detail }
    }

    fn truncated(&self, detail: String) -> DataError {
        DataError::Truncated { file: self.file.to_string(), detail }
    }

    fn u32_at(&self, b: &[u8], pos: usize, big: bool) -> Result<u32> {
        let s =
            b.get(pos..pos + 4).ok_or_else(|| self.truncated(format!("the data ends inside the tag at byte {pos}")))?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    }

    fn element<'a>(&self, b: &'a [u8], pos: usize, big: bool) -> Result<Element<'a>> {
        let first = self.u32_at(b, pos, big)?;
        if first >> 16 != 0 {
            // Small data element: count in the upper half, type in the lower half, data in the next 4 bytes.
            let (kind, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(self.bad(format!("small element at byte {pos} claims {n} bytes (at most 4)")));
            }
            let data = b.get(pos + 4..pos + 4 + n).ok_or_else(|| self.truncated(format!("element at byte {pos}")))?;
            return Ok(Element { kind, data, end: pos + 8, padded_end: pos + 8 });
        }
        let n = self.u32_at(b, pos + 4, big)? as usize;
        let start = pos + 8;
        let end = start.checked_add(n).filter(|&e| e <= b.len()).ok_or_else(|| {
            self.truncated(format!(
                "the element at byte {pos} says {n} bytes but only {} remain",
                b.len().saturating_sub(start)
            ))
        })?;
        Ok(Element { kind: first, data: &b[start..end], end, padded_end: start + n.div_ceil(8) * 8 })
    }

    /// Decodes the contents of an `miMATRIX` element.
    fn matrix(&self, b: &[u8], big: bool) -> Result<MatVar> {
        if b.is_empty() {
            return Ok(MatVar {
                name: String::new(),
                class: MatClass::Other(0),
                dims: vec![0, 0],
                data: MatData::None,
            });
        }
        let flags = self.element(b, 0, big)?;
        if flags.kind != MI_UINT32 || flags.data.len() < 8 {
            return Err(self.bad("a matrix does not start with its array flags".into()));
        }
        let f0 = self.u32_at(flags.data, 0, big)?;
        let class = MatClass::from_id((f0 & 0xff) as u8);
        let complex = f0 & 0x800 != 0;
        let dims_el = self.element(b, flags.padded_end, big)?;
        if dims_el.kind != MI_INT32 {
            return Err(self.bad(format!("matrix dimensions have type {}, expected miINT32", dims_el.kind)));
        }
        let dims: Vec<usize> = (0..dims_el.data.len() / 4)
            .map(|k| self.u32_at(dims_el.data, 4 * k, big).map(|d| d as i32))
            .collect::<Result<Vec<i32>>>()?
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| self.bad(format!("negative dimension {d}"))))
            .collect::<Result<_>>()?;
        let name_el = self.element(b, dims_el.padded_end, big)?;
        let name = String::from_utf8_lossy(name_el.data).into_owned();
        if let MatClass::Other(_) = class {
            return Ok(MatVar { name, class, dims, data: MatData::None });
        }
        if complex {
            return Err(self.bad(format!("variable '{name}' is complex; only real arrays are read")));
        }
        let real = self.element(b, name_el.padded_end, big)?;
        let numel: usize = dims.iter().product();
        let data = self.numbers(real.kind, real.data, big, numel, &name)?;
        Ok(MatVar { name, class, dims, data })
    }

    /// The `numel` values of a real part stored as `kind`.
    fn numbers(&self, kind: u32, d: &[u8], big: bool, numel: usize, name: &str) -> Result<MatData> {
        let size = match kind {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            other => return Err(self.bad(format!("variable '{name}' stores its values as type {other}"))),
        };
        if d.len() != numel * size {
            let detail = format!(
                "variable '{name}' has {numel} values of {size} bytes ({} bytes) but its data is {} bytes",
                numel * size,
                d.len()
            );
            return Err(if d.len() < numel * size { self.truncated(detail) } else { self.bad(detail) });
        }
        if kind == MI_UINT8 {
            return Ok(MatData::U8(d.to_vec()));
        }
        let word = |c: &[u8]| -> u64 {
            let it = c.iter();
            if big {
                it.fold(0u64, |v, &x| (v << 8) | x as u64)
            } else {
                it.rev().fold(0u64, |v, &x| (v << 8) | x as u64)
            }
        };
        let v = d
            .chunks_exact(size)
            .map(|c| {
                let w = word(c);
                match kind {
                    MI_INT8 => w as u8 as i8 as f64,
                    MI_INT16 => w as u16 as i16 as f64,
                    MI_UINT16 => w as f64,
                    MI_INT32 => w as u32 as i32 as f64,
                    MI_UINT32 => w as f64,
                    MI_SINGLE => f32::from_bits(w as u32) as f64,
                    MI_DOUBLE => f64::from_bits(w),
                    MI_INT64 => w as i64 as f64,
                    _ => w as f64,
                }
            })
            .collect();
        Ok(MatData::F64(v))
    }
}
