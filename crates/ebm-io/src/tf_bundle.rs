//! Reading TensorFlow's tensor-bundle checkpoints (what `tf.train.Saver` writes in its V2 format) without
//! TensorFlow.
//!
//! A checkpoint `PREFIX` is two or more files:
//!
//! - `PREFIX.index`: a sorted string table (the LevelDB table layout TensorFlow reuses): data blocks of
//!   prefix-compressed `key -> value` entries, an index block pointing at them, and a 48-byte footer ending in a
//!   magic number. Every block is followed by a type byte (0 = stored, 1 = Snappy) and a masked CRC32C. The key `""`
//!   holds a `BundleHeaderProto` (number of data shards, endianness); every other key is a variable name whose
//!   value is a `BundleEntryProto` (dtype, shape, shard, offset, size, masked CRC32C of the bytes).
//! - `PREFIX.data-00000-of-0000N`: the raw little-endian tensor bytes at the recorded offsets.
//!
//! Everything read from the files is checked before it is trusted: block and tensor checksums, offsets against the
//! file's length, and a tensor's byte count against its shape, so a corrupt file gives an error naming the file and
//! never an allocation sized by an unchecked number. Only what the IGEBM checkpoints use is supported (one or more
//! shards, uncompressed blocks, unpartitioned variables, little-endian); anything else is refused by name.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What can go wrong reading a tensor bundle; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TfError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid TensorFlow checkpoint ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
}

type Result<T> = std::result::Result<T, TfError>;

/// The element types of TensorFlow's `DataType` enum that a checkpoint of ours can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfDType {
    F32,
    F64,
    I32,
    I64,
    /// Any other `DataType` value (listed by number; its bytes are never read).
    Other(u32),
}

impl TfDType {
    fn from_proto(v: u64) -> Self {
        match v {
            1 => Self::F32,
            2 => Self::F64,
            3 => Self::I32,
            9 => Self::I64,
            v => Self::Other(v as u32),
        }
    }

    fn size(self) -> Option<u64> {
        match self {
            Self::F32 | Self::I32 => Some(4),
            Self::F64 | Self::I64 => Some(8),
            Self::Other(_) => None,
        }
    }
}

/// One variable of a bundle, as its `.index` entry describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TfVariable {
    pub dtype: TfDType,
    pub shape: Vec<usize>,
    shard: u32,
    offset: u64,
    size: u64,
    crc32c: Option<u32>,
}

impl TfVariable {
    /// Number of elements (checked against the byte count when the index is read).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened checkpoint: its variables' descriptions; tensors are read on demand with [`TfBundle::read_f32`].
#[derive(Debug, Clone)]
pub struct TfBundle {
    prefix: PathBuf,
    num_shards: u32,
    variables: BTreeMap<String, TfVariable>,
}

impl TfBundle {
    /// Opens the checkpoint `prefix` (e.g. `cachedir/cifar10_cond/model_74700`; a path to its `.index`, `.meta` or
    /// a `.data-*` file is taken as its prefix). Reads and checks the whole index; the data shards must exist and
    /// be long enough for every entry.
    pub fn open(prefix: &Path) -> Result<Self> {
        if prefix.is_dir() {
            return Err(TfError::Unsupported {
                path: prefix.to_path_buf(),
                reason: format!("is a folder, not a checkpoint prefix{}", hint_prefixes(prefix)),
            });
        }
        let prefix = strip_suffix(prefix);
        let index_path = with_suffix(&prefix, ".index");
        let bytes = std::fs::read(&index_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TfError::Unsupported {
                    path: index_path.clone(),
                    reason: format!(
                        "no such file: a TensorFlow checkpoint `{}` is the files `{0}.index` and \
                         `{0}.data-00000-of-00001`",
                        prefix.display(),
                    ),
                }
            } else {
                TfError::Io { path: index_path.clone(), source }
            }
        })?;
        let corrupt = |reason: String| TfError::Corrupt { path: index_path.clone(), reason };
        let entries = read_table(&bytes).map_err(corrupt)?;
        let mut num_shards = None;
        let mut variables = BTreeMap::new();
        for (key, value) in entries {
            if key.is_empty() {
                let header = parse_header(&value).map_err(|e| corrupt(format!("bundle header: {e}")))?;
                if header.endianness != 0 {
                    return Err(TfError::Unsupported {
                        path: index_path.clone(),
                        reason: "big-endian tensor data is not supported".into(),
                    });
                }
                num_shards = Some(header.num_shards);
                continue;
            }
            let name = String::from_utf8(key).map_err(|_| corrupt("a variable name is not UTF-8".into()))?;
            let var = parse_entry(&value).map_err(|e| match e {
                EntryError::Bad(e) => corrupt(format!("entry `{name}`: {e}")),
                EntryError::Unsupported(e) => {
                    TfError::Unsupported { path: index_path.clone(), reason: format!("variable `{name}`: {e}") }
                }
            })?;
            variables.insert(name, var);
        }
        let num_shards = num_shards.ok_or_else(|| corrupt("no bundle header (the entry with the empty key)".into()))?;
        if num_shards == 0 || num_shards > 1 << 16 {
            return Err(corrupt(format!("the header declares {num_shards} data shards")));
        }
        let bundle = Self { prefix, num_shards, variables };
        bundle.check_shards(&index_path)?;
        Ok(bundle)
    }

    /// The checkpoint prefix (without `.index`).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Every variable, sorted by name.
    pub fn variables(&self) -> &BTreeMap<String, TfVariable> {
        &self.variables
    }

    /// The path of data shard `shard`.
    pub fn shard_path(&self, shard: u32) -> PathBuf {
        with_suffix(&self.prefix, &format!(".data-{shard:05}-of-{:05}", self.num_shards))
    }

    /// Every entry's shard, shard index and byte range must be valid before any tensor is read.
    fn check_shards(&self, index_path: &Path) -> Result<()> {
        let mut lengths = BTreeMap::new();
        for (name, v) in &self.variables {
            if v.shard >= self.num_shards {
                return Err(TfError::Corrupt {
                    path: index_path.to_path_buf(),
                    reason: format!("entry `{name}` is in shard {} of {}", v.shard, self.num_shards),
                });
            }
            if v.size == 0 {
                continue;
            }
            let path = self.shard_path(v.shard);
            let len = match lengths.get(&v.shard) {
                Some(&len) => len,
                None => {
                    let len = std::fs::metadata(&path)
                        .map_err(|source| {
                            if source.kind() == std::io::ErrorKind::NotFound {
                                TfError::Unsupported {
                                    path: path.clone(),
                                    reason: format!("missing data shard of the checkpoint `{}`", self.prefix.display()),
                                }
                            } else {
                                TfError::Io { path: path.clone(), source }
                            }
                        })?
                        .len();
                    lengths.insert(v.shard, len);
                    len
                }
            };
            if v.offset.checked_add(v.size).is_none_or(|end| end > len) {
                return Err(TfError::Corrupt {
                    path,
                    reason: format!(
                        "truncated: variable `{name}` needs bytes {}..{} but the file has {len}",
                        v.offset,
                        v.offset.saturating_add(v.size)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks the stored CRC32C of every variable, the ones a conversion leaves out included: a damaged file is
    /// reported as such even where the damage would not reach the model.
    pub fn verify(&self) -> Result<()> {
        for name in self.variables.keys() {
            self.read_bytes(name)?;
        }
        Ok(())
    }

    /// The values of a float variable (F32, or F64 narrowed), in TensorFlow's row-major order, after checking the
    /// stored CRC32C of its bytes.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (v, path, bytes) = self.read_bytes(name)?;
        match v.dtype {
            TfDType::F32 => Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            TfDType::F64 => {
                Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect())
            }
            other => {
                Err(TfError::Unsupported { path, reason: format!("variable `{name}` holds {other:?}, not floats") })
            }
        }
    }

    /// A variable's entry, its shard's path and its bytes, checksum checked.
    fn read_bytes(&self, name: &str) -> Result<(&TfVariable, PathBuf, Vec<u8>)> {
        let v = self.variables.get(name).ok_or_else(|| TfError::Unsupported {
            path: with_suffix(&self.prefix, ".index"),
            reason: format!("no variable `{name}`"),
        })?;
        let path = self.shard_path(v.shard);
        let mut bytes = vec![0u8; v.size as usize]; // size checked against the shard's length and the shape in `open`
        if v.size > 0 {
            let mut f = std::fs::File::open(&path).map_err(|source| TfError::Io { path: path.clone(), source })?;
            f.seek(SeekFrom::Start(v.offset)).map_err(|source| TfError::Io { path: path.clone(), source })?;
            f.read_exact(&mut bytes).map_err(|source| {
                if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    TfError::Corrupt { path: path.clone(), reason: format!("truncated inside variable `{name}`") }
                } else {
                    TfError::Io { path: path.clone(), source }
                }
            })?;
        }
        if let Some(want) = v.crc32c {
            let got = mask(crc32c(&bytes));
            if got != want {
                return Err(TfError::Corrupt {
                    path,
                    reason: format!(
                        "checksum mismatch in variable `{name}` (CRC32C {got:#010x}, index says {want:#010x})"
                    ),
                });
            }
        }
        Ok((v, path, bytes))
    }
}

/// `model_7.index` -> `model_7`; `model_7.data-00000-of-00001` -> `model_7`; anything else unchanged.
fn strip_suffix(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    for suffix in [".index", ".meta"] {
        if let Some(stem) = s.strip_suffix(suffix) {
            return PathBuf::from(stem);
        }
    }
    if let Some(pos) = s.rfind(".data-") {
        return PathBuf::from(&s[..pos]);
    }
    p.to_path_buf()
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The checkpoints in the folder `prefix` (so the error can say which to pass).
fn hint_prefixes(prefix: &Path) -> String {
    let Ok(dir) = std::fs::read_dir(prefix) else { return String::new() };
    let folder = prefix.to_string_lossy();
    let folder = folder.trim_end_matches('/');
    let mut found: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".index").map(str::to_owned))
        .collect();
    found.sort();
    if found.is_empty() {
        return "; the folder holds no `.index` file".into();
    }
    let pass: Vec<String> = found.iter().map(|f| format!("`{folder}/{f}`")).collect();
    format!("; pass one of its checkpoints: {}", pass.join(", "))
}

// ---------------------------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), as LevelDB and TensorFlow mask it.

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_extend(0, data)
}

fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// LevelDB's masking of a stored CRC (so a CRC of data that itself holds CRCs stays informative).
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

// ---------------------------------------------------------------------------------------------------------------
// The sorted string table.

const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
const BLOCK_TRAILER_LEN: usize = 5;

/// A cursor over bytes whose every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("varint runs past the end")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn bytes(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("a length of {n} runs past the end"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn fixed32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap()))
    }
}

/// A block's contents, after checking its trailer.
fn block<'a>(file: &'a [u8], handle: &[u8], what: &str) -> std::result::Result<&'a [u8], String> {
    let mut r = Reader::new(handle);
    let (offset, size) = (r.varint()?, r.varint()?);
    let start = usize::try_from(offset).map_err(|_| format!("{what} block offset {offset}"))?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|s| start.checked_add(s))
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN))
        .filter(|&e| e <= file.len())
        .ok_or_else(|| format!("truncated: the {what} block at {offset} (+{size} bytes) runs past the end"))?;
    let contents = &file[start..end - BLOCK_TRAILER_LEN];
    let kind = file[end - BLOCK_TRAILER_LEN];
    let stored = u32::from_le_bytes(file[end - 4..end].try_into().unwrap());
    let actual = mask(crc32c_extend(crc32c(contents), &[kind]));
    if stored != actual {
        return Err(format!("checksum mismatch in the {what} block at {offset}"));
    }
    match kind {
        0 => Ok(contents),
        1 => Err(format!("the {what} block is Snappy-compressed, which this reader does not support")),
        k => Err(format!("unknown compression type {k} of the {what} block")),
    }
}

/// One block's entries: each key in full (prefix compression undone) and its value, borrowed from the block.
type BlockEntries<'a> = Vec<(Vec<u8>, &'a [u8])>;

/// A whole table's entries, owned.
type TableEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// The `(key, value)` entries of one block, in order.
fn block_entries(contents: &[u8]) -> std::result::Result<BlockEntries<'_>, String> {
    if contents.len() < 4 {
        return Err("a block shorter than its restart count".into());
    }
    let n_restarts = u32::from_le_bytes(contents[contents.len() - 4..].try_into().unwrap()) as usize;
    let restarts_len = n_restarts.checked_mul(4).and_then(|n| n.checked_add(4)).filter(|&n| n <= contents.len());
    let restarts_len = restarts_len.ok_or_else(|| format!("a block declares {n_restarts} restart points"))?;
    let mut r = Reader::new(&contents[..contents.len() - restarts_len]);
    let mut key = Vec::new();
    let mut out = Vec::new();
    while !r.done() {
        let (shared, non_shared, value_len) = (r.varint()?, r.varint()?, r.varint()?);
        if shared > key.len() as u64 {
            return Err(format!("an entry shares {shared} bytes of a {}-byte key", key.len()));
        }
        key.truncate(shared as usize);
        key.extend_from_slice(r.bytes(non_shared)?);
        out.push((key.clone(), r.bytes(value_len)?));
    }
    Ok(out)
}

/// Every `(key, value)` of the table, checking that keys are strictly increasing.
fn read_table(file: &[u8]) -> std::result::Result<TableEntries, String> {
    if file.len() < FOOTER_LEN {
        return Err(format!("truncated: {} bytes, shorter than the {FOOTER_LEN}-byte footer", file.len()));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[FOOTER_LEN - 8..].try_into().unwrap());
    if magic != TABLE_MAGIC {
        return Err("no table magic number at the end (truncated, or not an .index file)".into());
    }
    let mut r = Reader::new(&footer[..FOOTER_LEN - 8]);
    let _metaindex = (r.varint()?, r.varint()?);
    let index_handle = &footer[r.pos..];
    let index = block(file, index_handle, "index")?;
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (i, (_, handle)) in block_entries(index)?.into_iter().enumerate() {
        let data = block(file, handle, &format!("data #{i}"))?;
        for (k, v) in block_entries(data)? {
            if out.last().is_some_and(|(last, _)| *last >= k) {
                return Err(format!("keys out of order at `{}`", String::from_utf8_lossy(&k)));
            }
            out.push((k, v.to_vec()));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// The two protobuf messages of the index (decoded by hand: a few fields of two messages).

/// One protobuf field: its number and its value (a varint, a fixed-width number or a byte string).
enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

fn fields(buf: &[u8]) -> std::result::Result<Vec<(u64, Field<'_>)>, String> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.done() {
        let tag = r.varint()?;
        let value = match tag & 7 {
            0 => Field::Varint(r.varint()?),
            1 => {
                r.bytes(8)?;
                Field::Fixed64
            }
            2 => {
                let n = r.varint()?;
                Field::Bytes(r.bytes(n)?)
            }
            5 => Field::Fixed32(r.fixed32()?),
            w => return Err(format!("protobuf wire type {w} of field {}", tag >> 3)),
        };
        out.push((tag >> 3, value));
    }
    Ok(out)
}

struct Header {
    num_shards: u32,
    endianness: u64,
}

fn parse_header(buf: &[u8]) -> std::result::Result<Header, String> {
    let mut h = Header { num_shards: 0, endianness: 0 };
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Varint(v)) => h.num_shards = u32::try_from(v).map_err(|_| format!("{v} shards"))?,
            (2, Field::Varint(v)) => h.endianness = v,
            _ => {}
        }
    }
    Ok(h)
}

enum EntryError {
    Bad(String),
    Unsupported(String),
}

impl From<String> for EntryError {
    fn from(s: String) -> Self {
        Self::Bad(s)
    }
}

impl From<&str> for EntryError {
    fn from(s: &str) -> Self {
        Self::Bad(s.into())
    }
}

/// Tensors larger than this many bytes are refused (no IGEBM variable comes near: the largest is ~38 MB).
const MAX_TENSOR_BYTES: u64 = 1 << 34;

fn parse_entry(buf: &[u8]) -> std::result::Result<TfVariable, EntryError> {
    let mut dtype = TfDType::Other(0);
    let mut shape = Vec::new();
    let (mut shard, mut offset, mut size, mut crc) = (0u32, 0u64, 0u64, None);
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Varint(v)) => dtype = TfDType::from_proto(v),
            (2, Field::Bytes(b)) => shape = parse_shape(b)?,
            (3, Field::Varint(v)) => shard = u32::try_from(v).map_err(|_| format!("shard id {v}"))?,
            (4, Field::Varint(v)) => offset = v,
            (5, Field::Varint(v)) => size = v,
            (6, Field::Fixed32(v)) => crc = Some(v),
            (7, Field::Bytes(_)) => {
                return Err(EntryError::Unsupported("a partitioned (sliced) variable is not supported".into()))
            }
            _ => {}
        }
    }
    let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or("the shape overflows")?;
    if let Some(elem) = dtype.size() {
        let want = numel.checked_mul(elem).filter(|&b| b <= MAX_TENSOR_BYTES);
        if want != Some(size) {
            return Err(EntryError::Bad(format!("{size} bytes for a {dtype:?} tensor of shape {shape:?}")));
        }
    }
    Ok(TfVariable { dtype, shape, shard, offset, size, crc32c: crc })
}

fn parse_shape(buf: &[u8]) -> std::result::Result<Vec<usize>, EntryError> {
    let mut dims = Vec::new();
    for (n, f) in fields(buf)? {
        match (n, f) {
            (2, Field::Bytes(dim)) => {
                let mut size = 0i64;
                for (m, g) in fields(dim)? {
                    if let (1, Field::Varint(v)) = (m, g) {
                        size = v as i64;
                    }
                }
                let d = usize::try_from(size).map_err(|_| format!("dimension {size}"))?;
                dims.push(d);
            }
            (3, Field::Varint(1)) => return Err(EntryError::Bad("a tensor of unknown rank".into())),
            _ => {}
        }
    }
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 B.4 and the usual "123456789" check value
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c_extend(crc32c(b"1234"), b"56789"), crc32c(b"123456789"));
    }

    #[test]
    fn varints_and_bounds() {
        let mut r = Reader::new(&[0xac, 0x02, 0x80]);
        assert_eq!(r.varint().unwrap(), 300);
        assert!(r.varint().is_err());
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.bytes(u64::MAX).is_err());
        assert!(r.bytes(4).is_err());
        assert_eq!(r.bytes(3).unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn prefixes_from_any_of_the_checkpoint_files() {
        for p in ["a/model_7.index", "a/model_7.meta", "a/model_7.data-00000-of-00001", "a/model_7"] {
            assert_eq!(strip_suffix(Path::new(p)), PathBuf::from("a/model_7"), "{p}");
        }
    }
}
