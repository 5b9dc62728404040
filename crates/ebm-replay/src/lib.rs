//! The replay buffer of the IGEBM recipe: past Langevin samples, so that most chains continue where earlier ones
//! stopped instead of starting from noise.
//!
//! Generic over the stored element: `u8` (images quantised to 8 bits, as the official code stores them, a quarter
//! of the memory) or `f32` (exact; low-dimensional data). Each entry keeps its condition vector (its label), which
//! the official buffer drops; a replayed chain can then be refined under the label it was sampled for.
//!
//! Saved and loaded with safetensors (entries, conditions, write position, policy state), so a resumed run draws
//! exactly what an uninterrupted one would.

use candle_core::{DType, Device, Result, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use std::path::Path;

/// How an element type stores values in [0, 1] (u8) or as they are (f32).
pub trait Stored: Copy + Default + Send + Sync + candle_core::WithDType + 'static {
    /// Encodes one value.
    fn encode(x: f32, codec: Codec) -> Self;
    /// Decodes one value; `u` is a uniform in (0, 1) for dequantisation.
    fn decode(self, codec: Codec, u: f32) -> f32;
    /// Whether decoding uses the uniform draw.
    const DITHERED: bool;
}

/// The 8-bit quantisation scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `q = min(floor(256 x), 255)`, `x = (q + u) / 256`: the round trip is unbiased.
    Uniform256,
    /// The official code's pair: `q = floor(255 x)`, `x = (q + u) / 256`. Each round trip shrinks values by
    /// 255/256 on average (the chains undo it); kept for exact reproduction.
    Official,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Uniform256 => "uniform256",
            Codec::Official => "official",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "uniform256" => Some(Codec::Uniform256),
            "official" => Some(Codec::Official),
            _ => None,
        }
    }
}

impl Stored for u8 {
    fn encode(x: f32, codec: Codec) -> Self {
        let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        match codec {
            Codec::Uniform256 => (x * 256.0).floor().min(255.0) as u8,
            Codec::Official => (x * 255.0).floor() as u8,
        }
    }
    fn decode(self, _codec: Codec, u: f32) -> f32 {
        (self as f32 + u) / 256.0
    }
    const DITHERED: bool = true;
}

impl Stored for f32 {
    fn encode(x: f32, _codec: Codec) -> Self {
        x
    }
    fn decode(self, _codec: Codec, _u: f32) -> f32 {
        self
    }
    const DITHERED: bool = false;
}

/// Which entry a new sample replaces once the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The oldest (the official behaviour).
    Fifo,
    /// A uniformly random one with probability capacity / seen (reservoir sampling: a uniform sample of history).
    Reservoir,
}

/// A bounded store of samples and their conditions.
#[derive(Debug, Clone)]
pub struct ReplayBuffer<E: Stored> {
    capacity: usize,
    sample_shape: Vec<usize>,
    cond_dim: usize,
    codec: Codec,
    policy: Policy,
    data: Vec<E>,
    cond: Vec<f32>,
    len: usize,
    next: usize,
    seen: u64,
}

/// Errors of a buffer file, naming it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Io(#[from] ebm_io::IoError),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl<E: Stored> ReplayBuffer<E> {
    /// An empty buffer of `capacity` samples of `sample_shape`, each with a condition vector of `cond_dim` floats
    /// (0 for none).
    pub fn new(capacity: usize, sample_shape: &[usize], cond_dim: usize, codec: Codec, policy: Policy) -> Self {
        assert!(capacity > 0, "replay capacity must be positive");
        let n: usize = sample_shape.iter().product();
        Self {
            capacity,
            sample_shape: sample_shape.to_vec(),
            cond_dim,
            codec,
            policy,
            data: Vec::with_capacity(capacity.min(1 << 20) * n),
            cond: Vec::new(),
            len: 0,
            next: 0,
            seen: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shape of one stored sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The length of the stored conditions (0: none).
    pub fn cond_dim(&self) -> usize {
        self.cond_dim
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn numel(&self) -> usize {
        self.sample_shape.iter().product()
    }

    fn write(&mut self, slot: usize, x: &[f32], c: &[f32]) {
        let n = self.numel();
        let enc = x.iter().map(|v| E::encode(*v, self.codec));
        if slot == self.len {
            self.data.extend(enc);
            self.cond.extend_from_slice(c);
            self.len += 1;
        } else {
            for (d, v) in self.data[slot * n..(slot + 1) * n].iter_mut().zip(enc) {
                *d = v;
            }
            self.cond[slot * self.cond_dim..(slot + 1) * self.cond_dim].copy_from_slice(c);
        }
    }

    /// Adds a batch `[B, ...]` with its conditions `[B, cond_dim]` (required when `cond_dim > 0`). `rng` is used
    /// by the reservoir policy only.
    pub fn push(&mut self, x: &Tensor, cond: Option<&Tensor>, rng: &mut Rng) -> Result<()> {
        let b = x.dims().first().copied().unwrap_or(0);
        if x.dims().get(1..) != Some(&self.sample_shape[..]) {
            candle_core::bail!(
                "replay buffer holds samples of shape {:?}, got a batch {:?}",
                self.sample_shape,
                x.dims()
            );
        }
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let cs = match (cond, self.cond_dim) {
            (_, 0) => Vec::new(),
            (Some(c), d) if c.dims() == [b, d] => c.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
            (Some(c), d) => candle_core::bail!("replay conditions must be [{b}, {d}], got {:?}", c.dims()),
            (None, d) => candle_core::bail!("this replay buffer stores {d}-dimensional conditions: pass them"),
        };
        let (n, d) = (self.numel(), self.cond_dim);
        for i in 0..b {
            self.seen += 1;
            let slot = if self.len < self.capacity {
                self.len
            } else {
                match self.policy {
                    Policy::Fifo => {
                        let s = self.next;
                        self.next = (self.next + 1) % self.capacity;
                        s
                    }
                    Policy::Reservoir => {
                        let j = rng.below(self.seen) as usize;
                        if j >= self.capacity {
                            continue;
                        }
                        j
                    }
                }
            };
            self.write(slot, &xs[i * n..(i + 1) * n], &cs[i * d..(i + 1) * d]);
        }
        Ok(())
    }

    /// `n` indices drawn uniformly with replacement.
    pub fn sample_indices(&self, n: usize, rng: &mut Rng) -> Vec<usize> {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        (0..n).map(|_| rng.below(self.len as u64) as usize).collect()
    }

    /// The entries at `idx` as `[n, ...]` f32 (dequantised with draws from `rng` for u8 storage) and their
    /// conditions `[n, cond_dim]` (None when the buffer stores none).
    pub fn get(&self, idx: &[usize], rng: &mut Rng, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let (n, d) = (self.numel(), self.cond_dim);
        let mut out = vec![0f32; idx.len() * n];
        let mut u = vec![0.5f32; if E::DITHERED { idx.len() * n } else { 0 }];
        if E::DITHERED {
            rng.fill_uniform(&mut u, 0.0, 1.0);
        }
        for (k, &i) in idx.iter().enumerate() {
            if i >= self.len {
                candle_core::bail!("replay index {i} out of range (len {})", self.len);
            }
            for j in 0..n {
                let uu = if E::DITHERED { u[k * n + j] } else { 0.5 };
                out[k * n + j] = self.data[i * n + j].decode(self.codec, uu);
            }
        }
        let mut shape = vec![idx.len()];
        shape.extend_from_slice(&self.sample_shape);
        let x = Tensor::from_vec(out, shape, device)?;
        let c = if d == 0 {
            None
        } else {
            let cv: Vec<f32> = idx.iter().flat_map(|&i| self.cond[i * d..(i + 1) * d].iter().copied()).collect();
            Some(Tensor::from_vec(cv, (idx.len(), d), device)?)
        };
        Ok((x, c))
    }

    /// Adds the buffer's tensors and metadata to `b` under `prefix` (so it can share a checkpoint file).
    pub fn to_bundle(&self, b: &mut Bundle, prefix: &str) -> Result<()> {
        let mut shape = vec![self.len];
        shape.extend_from_slice(&self.sample_shape);
        b.insert(format!("{prefix}data"), Tensor::from_slice(&self.data, shape, &Device::Cpu)?);
        b.insert(format!("{prefix}cond"), Tensor::from_slice(&self.cond, (self.len, self.cond_dim), &Device::Cpu)?);
        b.set_meta(format!("{prefix}format"), "ebm-replay/1");
        b.set_meta(format!("{prefix}capacity"), self.capacity.to_string());
        b.set_meta(format!("{prefix}next"), self.next.to_string());
        b.set_meta(format!("{prefix}seen"), self.seen.to_string());
        b.set_meta(format!("{prefix}codec"), self.codec.name());
        b.set_meta(format!("{prefix}policy"), if self.policy == Policy::Fifo { "fifo" } else { "reservoir" });
        Ok(())
    }

    /// Writes the buffer atomically to `path`.
    pub fn save(&self, path: &Path) -> std::result::Result<(), ReplayError> {
        let mut b = Bundle::new();
        self.to_bundle(&mut b, "")
            .map_err(|e| ReplayError::Invalid { path: path.display().to_string(), reason: e.to_string() })?;
        b.save(path)?;
        Ok(())
    }

    /// Reads a buffer written by [`ReplayBuffer::save`]; the element type must match the file's.
    pub fn load(path: &Path) -> std::result::Result<Self, ReplayError> {
        Self::from_bundle(&Bundle::load(path, &Device::Cpu)?, "", path)
    }

    /// Reads the buffer stored in `b` under `prefix`; `path` names the file in errors.
    pub fn from_bundle(b: &Bundle, prefix: &str, path: &Path) -> std::result::Result<Self, ReplayError> {
        let bad = |reason: String| ReplayError::Invalid { path: path.display().to_string(), reason };
        let key = |k: &str| format!("{prefix}{k}");
        if b.metadata.get(&key("format")).map(String::as_str) != Some("ebm-replay/1") {
            return Err(bad("not an ebm replay buffer (format tag missing)".into()));
        }
        let num = |k: &str| -> std::result::Result<u64, ReplayError> {
            b.meta(path, &key(k))?.parse::<u64>().map_err(|e| bad(format!("metadata `{k}`: {e}")))
        };
        let (capacity, next, seen) = (num("capacity")? as usize, num("next")? as usize, num("seen")?);
        let codec = Codec::parse(b.meta(path, &key("codec"))?).ok_or_else(|| bad("unknown codec".into()))?;
        let policy = match b.meta(path, &key("policy"))? {
            "fifo" => Policy::Fifo,
            "reservoir" => Policy::Reservoir,
            p => return Err(bad(format!("unknown policy `{p}`"))),
        };
        let data = b.get(path, &key("data"))?;
        if data.dtype() != E::DTYPE {
            return Err(bad(format!("stores {:?} samples, expected {:?}", data.dtype(), E::DTYPE)));
        }
        let cond = b.get(path, &key("cond"))?;
        if data.rank() < 1 || cond.rank() != 2 || cond.dtype() != DType::F32 {
            return Err(bad(format!(
                "entries of shape {:?} and conditions of shape {:?} ({:?}); expected [N, ...] and f32 [N, D]",
                data.dims(),
                cond.dims(),
                cond.dtype()
            )));
        }
        let len = data.dims()[0];
        if len > capacity || next >= capacity.max(1) || cond.dims().first() != Some(&len) {
            return Err(bad(format!("inconsistent sizes: {len} entries, capacity {capacity}, next {next}")));
        }
        let flat = |t: &Tensor| t.flatten_all().map_err(|e| bad(e.to_string()));
        Ok(Self {
            capacity,
            sample_shape: data.dims()[1..].to_vec(),
            cond_dim: cond.dims()[1],
            codec,
            policy,
            data: flat(data)?.to_vec1::<E>().map_err(|e| bad(e.to_string()))?,
            cond: flat(cond)?.to_vec1::<f32>().map_err(|e| bad(e.to_string()))?,
            len,
            next,
            seen,
        })
    }
}

/// A replay buffer is where [`ebm_sampler::starts::replay_mixed`] restarts chains from: `draw` takes
/// [`ReplayBuffer::sample_indices`] then [`ReplayBuffer::get`], in that order, from the same stream.
impl<E: Stored> ebm_sampler::ChainPool for ReplayBuffer<E> {
    fn len(&self) -> usize {
        ReplayBuffer::len(self)
    }

    fn draw(&self, n: usize, rng: &mut Rng, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let idx = self.sample_indices(n, rng);
        self.get(&idx, rng, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(start: f32, b: usize) -> Tensor {
        let v: Vec<f32> = (0..b * 4).map(|i| (start + i as f32) / 64.0).collect();
        Tensor::from_vec(v, (b, 1, 2, 2), &Device::Cpu).unwrap()
    }

    fn labels(start: usize, b: usize) -> Tensor {
        let v: Vec<f32> = (0..b).map(|i| ((start + i) % 3) as f32).collect();
        Tensor::from_vec(v, (b, 1), &Device::Cpu).unwrap()
    }

    #[test]
    fn fifo_overwrites_the_oldest_and_keeps_labels() {
        let mut r = ReplayBuffer::<f32>::new(5, &[1, 2, 2], 1, Codec::Uniform256, Policy::Fifo);
        let mut rng = Rng::new(0);
        r.push(&batch(0.0, 4), Some(&labels(0, 4)), &mut rng).unwrap();
        r.push(&batch(16.0, 3), Some(&labels(4, 3)), &mut rng).unwrap();
        assert_eq!(r.len(), 5);
        // entries 0 and 1 were replaced by the 6th and 7th samples
        let (x, c) = r.get(&[0, 1, 2], &mut rng, &Device::Cpu).unwrap();
        let x = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(x[0][0], 20.0 / 64.0);
        assert_eq!(x[1][0], 24.0 / 64.0);
        assert_eq!(x[2][0], 8.0 / 64.0);
        assert_eq!(c.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![2.0, 0.0, 2.0]);
    }

    #[test]
    fn u8_codec_round_trips_within_a_quantum() {
        let mut r = ReplayBuffer::<u8>::new(10, &[1, 2, 2], 0, Codec::Uniform256, Policy::Fifo);
        let mut rng = Rng::new(1);
        let x = batch(0.0, 2);
        r.push(&x, None, &mut rng).unwrap();
        let (y, c) = r.get(&[0, 1], &mut rng, &Device::Cpu).unwrap();
        assert!(c.is_none());
        let d = (y - x).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1.0 / 256.0, "{d}");
        assert_eq!(u8::encode(1.0, Codec::Official), 255);
        assert_eq!(u8::encode(1.0, Codec::Uniform256), 255);
        assert_eq!(u8::encode(0.5, Codec::Official), 127);
        assert_eq!(u8::encode(0.5, Codec::Uniform256), 128);
    }

    #[test]
    fn uniform256_is_unbiased_where_official_shrinks() {
        // mean of decode(encode(x)) over a grid of x and dither draws
        let mut rng = Rng::new(2);
        for (codec, want) in [(Codec::Uniform256, 1.0f64), (Codec::Official, 255.0 / 256.0)] {
            let (mut sx, mut sy) = (0f64, 0f64);
            for i in 0..10_000 {
                let x = (i as f32 + 0.5) / 10_000.0;
                sx += x as f64;
                sy += u8::encode(x, codec).decode(codec, rng.uniform()) as f64;
            }
            assert!((sy / sx - want).abs() < 2e-3, "{codec:?}: ratio {}", sy / sx);
        }
    }

    #[test]
    fn sampling_is_uniform_with_replacement() {
        let mut r = ReplayBuffer::<f32>::new(4, &[1], 0, Codec::Uniform256, Policy::Fifo);
        let mut rng = Rng::new(3);
        r.push(&Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap(), None, &mut rng).unwrap();
        let idx = r.sample_indices(40_000, &mut rng);
        let mut counts = [0usize; 4];
        idx.iter().for_each(|i| counts[*i] += 1);
        // Binomial(40000, 1/4): sd 87; 5 sd
        assert!(counts.iter().all(|c| (*c as i64 - 10_000).abs() < 435), "{counts:?}");
    }

    #[test]
    fn reservoir_keeps_a_uniform_sample_of_history() {
        // push 0..1000 into a reservoir of 100, many times: each value kept with probability 1/10
        let mut kept_early = 0usize;
        for seed in 0..40 {
            let mut r = ReplayBuffer::<f32>::new(100, &[1], 0, Codec::Uniform256, Policy::Reservoir);
            let mut rng = Rng::new(seed);
            let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
            r.push(&Tensor::from_vec(v, (1000, 1), &Device::Cpu).unwrap(), None, &mut rng).unwrap();
            let all: Vec<usize> = (0..100).collect();
            let (x, _) = r.get(&all, &mut rng, &Device::Cpu).unwrap();
            kept_early += x.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().filter(|v| **v < 500.0).count();
        }
        // expected half of 4000 entries come from the first 500 values; sd ~ 32; 5 sd
        assert!((kept_early as i64 - 2000).abs() < 160, "{kept_early}");
    }

    #[test]
    fn save_load_resumes_exactly() {
        let dir = std::env::temp_dir().join(format!("ebm-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("replay.safetensors");
        let mut rng = Rng::new(4);
        let mut a = ReplayBuffer::<u8>::new(6, &[1, 2, 2], 1, Codec::Official, Policy::Fifo);
        a.push(&batch(0.0, 4), Some(&labels(0, 4)), &mut rng).unwrap();
        a.push(&batch(16.0, 4), Some(&labels(4, 4)), &mut rng).unwrap();
        a.save(&p).unwrap();
        let mut b = ReplayBuffer::<u8>::load(&p).unwrap();
        let (mut ra, mut rb) = (Rng::new(9), Rng::new(9));
        for r in [&mut a, &mut b] {
            r.push(&batch(32.0, 3), Some(&labels(8, 3)), &mut Rng::new(0)).unwrap();
        }
        let (ia, ib) = (a.sample_indices(8, &mut ra), b.sample_indices(8, &mut rb));
        assert_eq!(ia, ib);
        let (xa, ca) = a.get(&ia, &mut ra, &Device::Cpu).unwrap();
        let (xb, cb) = b.get(&ib, &mut rb, &Device::Cpu).unwrap();
        assert_eq!(
            xa.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            xb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            ca.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cb.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // wrong element type and corrupt files are reported with the file name
        let err = ReplayBuffer::<f32>::load(&p).unwrap_err().to_string();
        assert!(err.contains("replay.safetensors") && err.contains("expected F32"), "{err}");
        std::fs::write(&p, b"garbage").unwrap();
        let err = ReplayBuffer::<u8>::load(&p).unwrap_err().to_string();
        assert!(err.contains("replay.safetensors"), "{err}");
    }
}
