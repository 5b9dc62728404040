//! Files that never end up half-written, and safetensors bundles that carry their own description.
//!
//! Every checkpoint of the project (model weights, optimizer state, replay buffer) goes through [`write_atomic`]:
//! the bytes go to a temporary file in the same folder, are flushed to disk, and only then renamed over the
//! target, so a crash or a full disk leaves the previous file intact.
//!
//! [`tf_bundle`] reads the other checkpoint format the project meets: TensorFlow's tensor bundles (the authors'
//! released models), without TensorFlow.

pub mod tf_bundle;

use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What can go wrong reading or writing a bundle; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid safetensors file ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Content { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, IoError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically: a temporary file `.<name>.<random>.tmp` in the same folder, fsync,
/// rename over the target, fsync of the folder (so the rename itself survives a crash). On error the target is
/// untouched and the temporary file is removed. Safe from several threads or processes at once (each writes its
/// own temporary file; the last rename wins).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err(path))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| IoError::Io { path: path.to_path_buf(), source: e.error })?;
    // the rename is durable once the folder's entry is on disk (not possible everywhere: best effort)
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The suffix of [`write_atomic`]'s temporary files: what a crash can leave behind in a folder.
pub const TEMP_SUFFIX: &str = ".tmp";

/// `bytes` (a safetensors file) with its JSON header rewritten with sorted keys and padded with spaces to a
/// multiple of 8 bytes, as the format asks; the data section is unchanged (its offsets are relative to it).
fn canonical_header(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "short safetensors output")?) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| e.to_string())?;
    // serde_json's maps are sorted by key (the crate is built without `preserve_order`)
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Named tensors plus string metadata: the content of one safetensors file.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

impl Bundle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.tensors.insert(name.into(), t);
    }

    pub fn set_meta(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Serialises to safetensors bytes (tensors are made contiguous on the CPU first). The header's keys (tensor
    /// names and metadata) are written in sorted order, so equal bundles give equal bytes.
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let mut cpu = Vec::with_capacity(self.tensors.len());
        for (k, t) in &self.tensors {
            let t = t.to_device(&Device::Cpu).and_then(|t| t.contiguous()).map_err(|e| format!("{k}: {e}"))?;
            cpu.push((k.clone(), t));
        }
        let meta: Option<HashMap<String, String>> =
            if self.metadata.is_empty() { None } else { Some(self.metadata.clone().into_iter().collect()) };
        let bytes =
            safetensors::serialize(cpu.iter().map(|(k, t)| (k.as_str(), t)), meta).map_err(|e| e.to_string())?;
        canonical_header(bytes)
    }

    /// Writes the bundle to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes().map_err(|reason| IoError::Content { path: path.to_path_buf(), reason })?;
        write_atomic(path, &bytes)
    }

    /// Reads a bundle, with an error naming the file if it is missing, truncated or not safetensors.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        Self::from_bytes(&bytes, device).map_err(|reason| IoError::Corrupt { path: path.to_path_buf(), reason })
    }

    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Self, String> {
        use candle_core::safetensors::Load;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let mut out = Bundle { tensors: BTreeMap::new(), metadata };
        for (name, view) in st.tensors() {
            let t = view.load(device).map_err(|e| format!("tensor {name}: {e}"))?;
            out.tensors.insert(name, t);
        }
        Ok(out)
    }

    /// The tensor `name`, or an error naming the file and the missing entry.
    pub fn get(&self, path: &Path, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| IoError::Content { path: path.to_path_buf(), reason: format!("missing tensor `{name}`") })
    }

    /// The metadata entry `key`, or an error naming the file and the key.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(|s| s.as_str())
            .ok_or_else(|| IoError::Content { path: path.to_path_buf(), reason: format!("missing metadata `{key}`") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-io-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_with_metadata() {
        let d = tmpdir("rt");
        let p = d.join("b.safetensors");
        let mut b = Bundle::new();
        b.insert("w", Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap());
        b.insert("n", Tensor::new(&[7u32], &Device::Cpu).unwrap());
        b.set_meta("kind", "test");
        b.save(&p).unwrap();
        let c = Bundle::load(&p, &Device::Cpu).unwrap();
        assert_eq!(c.meta(&p, "kind").unwrap(), "test");
        assert_eq!(c.get(&p, "w").unwrap().to_vec2::<f32>().unwrap(), vec![vec![1., 2.], vec![3., 4.]]);
        let err = c.get(&p, "nope").unwrap_err().to_string();
        assert!(err.contains("b.safetensors") && err.contains("nope"), "{err}");
    }

    #[test]
    fn equal_bundles_give_equal_bytes_whatever_the_insertion_order() {
        let t = |v: f32| Tensor::new(&[v, 2.0 * v], &Device::Cpu).unwrap();
        let keys = ["zeta", "alpha", "model_config", "iteration", "rng", "b", "a"];
        let mut one = Bundle::new();
        let mut two = Bundle::new();
        for (i, k) in keys.iter().enumerate() {
            one.set_meta(*k, format!("v{i}"));
            one.insert(format!("t/{k}"), t(i as f32));
        }
        for (i, k) in keys.iter().enumerate().rev() {
            two.set_meta(*k, format!("v{i}"));
            two.insert(format!("t/{k}"), t(i as f32));
        }
        let (a, b) = (one.to_bytes().unwrap(), two.to_bytes().unwrap());
        assert_eq!(a, b);
        // still a valid safetensors file, header padded to 8 bytes
        let n = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let back = Bundle::from_bytes(&a, &Device::Cpu).unwrap();
        assert_eq!(back.metadata, one.metadata);
        assert_eq!(back.tensors["t/rng"].to_vec1::<f32>().unwrap(), vec![4.0, 8.0]);
    }

    #[test]
    fn truncated_and_missing_files_name_the_file() {
        let d = tmpdir("bad");
        let p = d.join("t.safetensors");
        let mut b = Bundle::new();
        b.insert("w", Tensor::zeros(100, candle_core::DType::F32, &Device::Cpu).unwrap());
        b.save(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let err = Bundle::load(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("t.safetensors") && err.contains("not a valid safetensors"), "{err}");
        let err = Bundle::load(&d.join("missing.safetensors"), &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("missing.safetensors"), "{err}");
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let d = tmpdir("keep");
        let p = d.join("x.bin");
        write_atomic(&p, b"old").unwrap();
        // a target whose folder does not exist fails without touching anything
        assert!(write_atomic(&d.join("no/such/dir/x.bin"), b"new").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
