//! Inception-v3 as the FID network of pytorch-fid (`pytorch_fid.inception.InceptionV3` with `fid_inception_v3()`,
//! the port of TensorFlow's `inception-2015-12-05` graph that FID and IS were defined with), in candle, layer for
//! layer: torchvision's `Inception3` stem and blocks with the FID patches (average pools that ignore the padding in
//! `Mixed_5*`, `Mixed_6b..e` and `Mixed_7b`; a max pool in `Mixed_7c`'s pool branch), 1008 logits.
//!
//! The forward pass is pytorch-fid's: images in [0, 1] are resized to 299x299 (bilinear, `align_corners=False`),
//! mapped to [-1, 1], run to the final average pool (the 2048-d "pool_3" features of FID); the logits (for the
//! Inception Score) are `fc` applied to those features. Grey images are repeated to three channels.
//!
//! Weights are not bundled (nothing here can download them): pass pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` (read with candle's PyTorch pickle reader) or a safetensors copy with
//! the same tensor names (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, ..., `fc.weight`).
//! Batch normalisation (eps 0.001) is folded into a per-channel scale and shift, as PyTorch's CPU inference does.

use crate::convert::{resize_bilinear, to_channels};
use candle_core::{DType, Device, Result, Tensor, D};
use ebm_models::ops::{conv2d, Pad2d};
use std::collections::HashMap;
use std::path::Path;

/// pytorch-fid's weights file, as its release names it.
pub const FID_WEIGHTS_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";
/// Where pytorch-fid downloads it from (a user with network access fetches it once).
pub const FID_WEIGHTS_URL: &str =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// Dimension of the pool features.
pub const POOL_DIM: usize = 2048;
/// Number of logits of the FID network (1000 ImageNet classes and 8 unused).
pub const LOGITS: usize = 1008;

const BN_EPS: f64 = 0.001;

/// One `BasicConv2d`: convolution without bias, batch norm, ReLU.
#[derive(Debug, Clone)]
struct ConvSpec {
    name: String,
    cin: usize,
    cout: usize,
    k: (usize, usize),
    stride: usize,
    pad: (usize, usize),
}

fn spec(name: &str, cin: usize, cout: usize, k: (usize, usize), stride: usize, pad: (usize, usize)) -> ConvSpec {
    ConvSpec { name: name.to_string(), cin, cout, k, stride, pad }
}

/// The blocks of the network in order.
#[derive(Debug, Clone)]
enum Block {
    Conv(ConvSpec),
    MaxPool3s2,
    /// InceptionA (FID: pool ignores padding).
    A {
        name: String,
        cin: usize,
        pool: usize,
    },
    B {
        name: String,
        cin: usize,
    },
    C {
        name: String,
        cin: usize,
        c7: usize,
    },
    D {
        name: String,
        cin: usize,
    },
    /// InceptionE; `max_pool` for the FID `Mixed_7c` (E_2), average pool ignoring padding for `Mixed_7b` (E_1).
    E {
        name: String,
        cin: usize,
        max_pool: bool,
    },
}

fn blocks() -> Vec<Block> {
    let s = |n: &str| n.to_string();
    vec![
        Block::Conv(spec("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0))),
        Block::Conv(spec("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0))),
        Block::Conv(spec("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1))),
        Block::MaxPool3s2,
        Block::Conv(spec("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0))),
        Block::Conv(spec("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0))),
        Block::MaxPool3s2,
        Block::A { name: s("Mixed_5b"), cin: 192, pool: 32 },
        Block::A { name: s("Mixed_5c"), cin: 256, pool: 64 },
        Block::A { name: s("Mixed_5d"), cin: 288, pool: 64 },
        Block::B { name: s("Mixed_6a"), cin: 288 },
        Block::C { name: s("Mixed_6b"), cin: 768, c7: 128 },
        Block::C { name: s("Mixed_6c"), cin: 768, c7: 160 },
        Block::C { name: s("Mixed_6d"), cin: 768, c7: 160 },
        Block::C { name: s("Mixed_6e"), cin: 768, c7: 192 },
        Block::D { name: s("Mixed_7a"), cin: 768 },
        Block::E { name: s("Mixed_7b"), cin: 1280, max_pool: false },
        Block::E { name: s("Mixed_7c"), cin: 2048, max_pool: true },
    ]
}

/// The `BasicConv2d`s of a block, by torchvision's names.
fn convs_of(b: &Block) -> Vec<ConvSpec> {
    let (k1, k3, k5) = ((1, 1), (3, 3), (5, 5));
    let (k17, k71, k13, k31) = ((1, 7), (7, 1), (1, 3), (3, 1));
    let n = |block: &str, sub: &str| format!("{block}.{sub}");
    match b {
        Block::Conv(c) => vec![c.clone()],
        Block::MaxPool3s2 => vec![],
        Block::A { name, cin, pool } => vec![
            spec(&n(name, "branch1x1"), *cin, 64, k1, 1, (0, 0)),
            spec(&n(name, "branch5x5_1"), *cin, 48, k1, 1, (0, 0)),
            spec(&n(name, "branch5x5_2"), 48, 64, k5, 1, (2, 2)),
            spec(&n(name, "branch3x3dbl_1"), *cin, 64, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3dbl_2"), 64, 96, k3, 1, (1, 1)),
            spec(&n(name, "branch3x3dbl_3"), 96, 96, k3, 1, (1, 1)),
            spec(&n(name, "branch_pool"), *cin, *pool, k1, 1, (0, 0)),
        ],
        Block::B { name, cin } => vec![
            spec(&n(name, "branch3x3"), *cin, 384, k3, 2, (0, 0)),
            spec(&n(name, "branch3x3dbl_1"), *cin, 64, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3dbl_2"), 64, 96, k3, 1, (1, 1)),
            spec(&n(name, "branch3x3dbl_3"), 96, 96, k3, 2, (0, 0)),
        ],
        Block::C { name, cin, c7 } => vec![
            spec(&n(name, "branch1x1"), *cin, 192, k1, 1, (0, 0)),
            spec(&n(name, "branch7x7_1"), *cin, *c7, k1, 1, (0, 0)),
            spec(&n(name, "branch7x7_2"), *c7, *c7, k17, 1, (0, 3)),
            spec(&n(name, "branch7x7_3"), *c7, 192, k71, 1, (3, 0)),
            spec(&n(name, "branch7x7dbl_1"), *cin, *c7, k1, 1, (0, 0)),
            spec(&n(name, "branch7x7dbl_2"), *c7, *c7, k71, 1, (3, 0)),
            spec(&n(name, "branch7x7dbl_3"), *c7, *c7, k17, 1, (0, 3)),
            spec(&n(name, "branch7x7dbl_4"), *c7, *c7, k71, 1, (3, 0)),
            spec(&n(name, "branch7x7dbl_5"), *c7, 192, k17, 1, (0, 3)),
            spec(&n(name, "branch_pool"), *cin, 192, k1, 1, (0, 0)),
        ],
        Block::D { name, cin } => vec![
            spec(&n(name, "branch3x3_1"), *cin, 192, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3_2"), 192, 320, k3, 2, (0, 0)),
            spec(&n(name, "branch7x7x3_1"), *cin, 192, k1, 1, (0, 0)),
            spec(&n(name, "branch7x7x3_2"), 192, 192, k17, 1, (0, 3)),
            spec(&n(name, "branch7x7x3_3"), 192, 192, k71, 1, (3, 0)),
            spec(&n(name, "branch7x7x3_4"), 192, 192, k3, 2, (0, 0)),
        ],
        Block::E { name, cin, .. } => vec![
            spec(&n(name, "branch1x1"), *cin, 320, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3_1"), *cin, 384, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3_2a"), 384, 384, k13, 1, (0, 1)),
            spec(&n(name, "branch3x3_2b"), 384, 384, k31, 1, (1, 0)),
            spec(&n(name, "branch3x3dbl_1"), *cin, 448, k1, 1, (0, 0)),
            spec(&n(name, "branch3x3dbl_2"), 448, 384, k3, 1, (1, 1)),
            spec(&n(name, "branch3x3dbl_3a"), 384, 384, k13, 1, (0, 1)),
            spec(&n(name, "branch3x3dbl_3b"), 384, 384, k31, 1, (1, 0)),
            spec(&n(name, "branch_pool"), *cin, 192, k1, 1, (0, 0)),
        ],
    }
}

/// Every tensor the network reads, with its PyTorch shape, in a fixed order (BatchNorm's `num_batches_tracked`
/// counters are not read).
pub fn parameter_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for b in blocks() {
        for c in convs_of(&b) {
            v.push((format!("{}.conv.weight", c.name), vec![c.cout, c.cin, c.k.0, c.k.1]));
            for p in ["weight", "bias", "running_mean", "running_var"] {
                v.push((format!("{}.bn.{p}", c.name), vec![c.cout]));
            }
        }
    }
    v.push(("fc.weight".into(), vec![LOGITS, POOL_DIM]));
    v.push(("fc.bias".into(), vec![LOGITS]));
    v
}

/// A folded `BasicConv2d`.
struct Conv {
    w: Tensor,
    scale: Tensor,
    shift: Tensor,
    stride: usize,
    pad: Pad2d,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv2d(x, &self.w, self.stride, self.pad)?;
        y.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?.relu()
    }
}

/// The FID Inception-v3.
pub struct InceptionV3 {
    convs: HashMap<String, Conv>,
    fc_w: Tensor,
    fc_b: Tensor,
    device: Device,
}

/// Reads a weights file: PyTorch (`.pth`, `.pt`, `.bin`: a pickled state dict, also under a `state_dict` key) or
/// safetensors. Errors name the file.
pub fn read_weights(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let shown = path.display();
    if !path.exists() {
        candle_core::bail!(
            "{shown}: no such file (the FID Inception weights are pytorch-fid's {FID_WEIGHTS_FILE}, from \
             {FID_WEIGHTS_URL})"
        );
    }
    let is_st = path.extension().is_some_and(|e| e == "safetensors");
    let map: HashMap<String, Tensor> = if is_st {
        candle_core::safetensors::load(path, device).map_err(|e| candle_core::Error::msg(format!("{shown}: {e}")))?
    } else {
        // candle's unpickler copies memoised values and cannot be bounded: vet the file's pickle first
        ebm_data::pickle::vet_torch_file(path).map_err(|e| candle_core::Error::msg(e.to_string()))?;
        let read = |key: Option<&str>| candle_core::pickle::read_all_with_key(path, key);
        let mut v =
            read(None).map_err(|e| candle_core::Error::msg(format!("{shown}: not a PyTorch state dict ({e})")))?;
        if v.is_empty() {
            v = read(Some("state_dict")).unwrap_or_default();
        }
        v.into_iter().map(|(k, t)| Ok((k, t.to_device(device)?))).collect::<Result<_>>()?
    };
    Ok(map)
}

impl InceptionV3 {
    /// The network with the tensors of `weights` (names as in pytorch-fid's state dict). Every tensor of
    /// [`parameter_shapes`] must be present with its shape; `source` names the weights in errors.
    pub fn from_tensors(weights: &HashMap<String, Tensor>, source: &str, device: &Device) -> Result<Self> {
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = weights.get(name).ok_or_else(|| {
                candle_core::Error::msg(format!(
                    "{source}: missing tensor `{name}`: not the FID Inception-v3 weights (pytorch-fid's \
                     {FID_WEIGHTS_FILE})"
                ))
            })?;
            if t.dims() != shape {
                candle_core::bail!(
                    "{source}: tensor `{name}` has shape {:?}, the FID Inception-v3 needs {shape:?}",
                    t.dims()
                );
            }
            t.to_dtype(DType::F32)?.to_device(device)
        };
        let mut convs = HashMap::new();
        for b in blocks() {
            for c in convs_of(&b) {
                let w = get(&format!("{}.conv.weight", c.name), &[c.cout, c.cin, c.k.0, c.k.1])?;
                let bn = |p: &str| get(&format!("{}.bn.{p}", c.name), &[c.cout]);
                let (g, beta, mean, var) = (bn("weight")?, bn("bias")?, bn("running_mean")?, bn("running_var")?);
                let scale = g.div(&(var + BN_EPS)?.sqrt()?)?;
                let shift = (beta - mean.mul(&scale)?)?;
                let pad = Pad2d { top: c.pad.0, bottom: c.pad.0, left: c.pad.1, right: c.pad.1 };
                let conv = Conv {
                    w,
                    scale: scale.reshape((1, c.cout, 1, 1))?,
                    shift: shift.reshape((1, c.cout, 1, 1))?,
                    stride: c.stride,
                    pad,
                };
                convs.insert(c.name.clone(), conv);
            }
        }
        let fc_w = get("fc.weight", &[LOGITS, POOL_DIM])?;
        let fc_b = get("fc.bias", &[LOGITS])?;
        Ok(Self { convs, fc_w, fc_b, device: device.clone() })
    }

    /// Loads pytorch-fid's `.pth` or a safetensors copy of it.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let w = read_weights(path, device)?;
        Self::from_tensors(&w, &path.display().to_string(), device)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn c(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        self.convs.get(name).ok_or_else(|| candle_core::Error::msg(format!("no conv {name}")))?.forward(x)
    }

    fn block(&self, b: &Block, x: &Tensor) -> Result<Tensor> {
        let c = |n: &str, sub: &str, x: &Tensor| self.c(&format!("{n}.{sub}"), x);
        match b {
            Block::Conv(s) => self.c(&s.name, x),
            Block::MaxPool3s2 => x.max_pool2d_with_stride(3, 2),
            Block::A { name: n, .. } => {
                let b1 = c(n, "branch1x1", x)?;
                let b5 = c(n, "branch5x5_2", &c(n, "branch5x5_1", x)?)?;
                let b3 = c(n, "branch3x3dbl_3", &c(n, "branch3x3dbl_2", &c(n, "branch3x3dbl_1", x)?)?)?;
                let bp = c(n, "branch_pool", &avg_pool3_exclude_pad(x)?)?;
                Tensor::cat(&[b1, b5, b3, bp], 1)
            }
            Block::B { name: n, .. } => {
                let b3 = c(n, "branch3x3", x)?;
                let bd = c(n, "branch3x3dbl_3", &c(n, "branch3x3dbl_2", &c(n, "branch3x3dbl_1", x)?)?)?;
                let bp = x.max_pool2d_with_stride(3, 2)?;
                Tensor::cat(&[b3, bd, bp], 1)
            }
            Block::C { name: n, .. } => {
                let b1 = c(n, "branch1x1", x)?;
                let mut b7 = c(n, "branch7x7_1", x)?;
                for s in ["branch7x7_2", "branch7x7_3"] {
                    b7 = c(n, s, &b7)?;
                }
                let mut bd = c(n, "branch7x7dbl_1", x)?;
                for s in ["branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"] {
                    bd = c(n, s, &bd)?;
                }
                let bp = c(n, "branch_pool", &avg_pool3_exclude_pad(x)?)?;
                Tensor::cat(&[b1, b7, bd, bp], 1)
            }
            Block::D { name: n, .. } => {
                let b3 = c(n, "branch3x3_2", &c(n, "branch3x3_1", x)?)?;
                let mut b7 = c(n, "branch7x7x3_1", x)?;
                for s in ["branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"] {
                    b7 = c(n, s, &b7)?;
                }
                let bp = x.max_pool2d_with_stride(3, 2)?;
                Tensor::cat(&[b3, b7, bp], 1)
            }
            Block::E { name: n, max_pool, .. } => {
                let b1 = c(n, "branch1x1", x)?;
                let b3 = c(n, "branch3x3_1", x)?;
                let b3 = Tensor::cat(&[c(n, "branch3x3_2a", &b3)?, c(n, "branch3x3_2b", &b3)?], 1)?;
                let bd = c(n, "branch3x3dbl_2", &c(n, "branch3x3dbl_1", x)?)?;
                let bd = Tensor::cat(&[c(n, "branch3x3dbl_3a", &bd)?, c(n, "branch3x3dbl_3b", &bd)?], 1)?;
                let pooled = if *max_pool { max_pool3_same(x)? } else { avg_pool3_exclude_pad(x)? };
                let bp = c(n, "branch_pool", &pooled)?;
                Tensor::cat(&[b1, b3, bd, bp], 1)
            }
        }
    }

    /// The 2048-d pool features `[B, 2048]` and the logits `[B, 1008]` of images `[B, C, H, W]` in [0, 1]
    /// (C = 1 or 3, any size: resized to 299x299 as pytorch-fid does).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, c, h, w) = x.dims4()?;
        if c != 1 && c != 3 {
            candle_core::bail!("Inception-v3 takes images of 1 or 3 channels, got {c}");
        }
        let x = to_channels(&x.to_dtype(DType::F32)?.to_device(&self.device)?, 3)?;
        let x = if (h, w) == (299, 299) { x } else { resize_bilinear(&x, 299, 299)? };
        let mut x = ((x * 2.0)? - 1.0)?;
        for b in blocks() {
            x = self.block(&b, &x)?;
        }
        let pool = x.mean(D::Minus1)?.mean(D::Minus1)?; // [B, 2048]
        let logits = pool.matmul(&self.fc_w.t()?)?.broadcast_add(&self.fc_b)?;
        Ok((pool, logits))
    }

    /// Pool features and logits of many images, `batch` at a time, as row-major host vectors.
    pub fn features(&self, x: &Tensor, batch: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = x.dims()[0];
        let (mut pool, mut logits) = (Vec::with_capacity(n * POOL_DIM), Vec::with_capacity(n * LOGITS));
        let mut start = 0;
        while start < n {
            let len = batch.max(1).min(n - start);
            let (p, l) = self.forward(&x.narrow(0, start, len)?)?;
            pool.extend(p.flatten_all()?.to_vec1::<f32>()?);
            logits.extend(l.flatten_all()?.to_vec1::<f32>()?);
            start += len;
        }
        Ok((pool, logits))
    }
}

/// 3x3 average pool, stride 1, padding 1, the padding not counted (`count_include_pad=False`).
fn avg_pool3_exclude_pad(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let p = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let s = (p.avg_pool2d_with_stride(3, 1)? * 9.0)?; // window sums
    let count = |i: usize, n: usize| (if i > 0 { 1 } else { 0 }) + 1 + (if i + 1 < n { 1 } else { 0 });
    let inv: Vec<f32> = (0..h * w).map(|k| 1.0 / (count(k / w, h) * count(k % w, w)) as f32).collect();
    let inv = Tensor::from_vec(inv, (1, 1, h, w), x.device())?;
    s.broadcast_mul(&inv)
}

/// 3x3 max pool, stride 1, padding 1 (padding never wins).
fn max_pool3_same(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let dev = x.device();
    let ninf = |hh: usize, ww: usize| Tensor::full(f32::NEG_INFINITY, (b, c, hh, ww), dev);
    let p = Tensor::cat(&[ninf(1, w)?, x.clone(), ninf(1, w)?], 2)?;
    let p = Tensor::cat(&[ninf(h + 2, 1)?, p, ninf(h + 2, 1)?], 3)?;
    p.max_pool2d_with_stride(3, 1)
}

/// Inception Score `exp(E_x KL(p(y|x) || p(y)))` of logits (rows of `classes`), as the mean and standard deviation
/// over `splits` consecutive parts (the reference uses `max(1, N / 5000)` splits).
pub fn inception_score(logits: &[f32], classes: usize, splits: usize) -> Result<(f64, f64)> {
    if classes == 0 || logits.len() % classes != 0 || logits.is_empty() {
        candle_core::bail!("inception_score: {} values are not rows of {classes}", logits.len());
    }
    let n = logits.len() / classes;
    let splits = splits.clamp(1, n);
    let probs: Vec<Vec<f64>> = logits
        .chunks(classes)
        .map(|r| {
            let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = r.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        })
        .collect();
    let mut scores = Vec::with_capacity(splits);
    for k in 0..splits {
        let part = &probs[k * n / splits..(k + 1) * n / splits];
        let mut py = vec![0f64; classes];
        for p in part {
            for (a, b) in py.iter_mut().zip(p) {
                *a += b / part.len() as f64;
            }
        }
        let kl: f64 = part
            .iter()
            .map(|p| p.iter().zip(&py).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a.ln() - b.ln())).sum::<f64>())
            .sum::<f64>()
            / part.len() as f64;
        scores.push(kl.exp());
    }
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}

/// Deterministic stand-in weights, a closed-form function of each tensor's name and element index, shared with
/// the Python script that produced the pytorch-fid exactness fixture (`tests/fixtures/inception/make_fixture.py`):
/// `u = (splitmix64(fnv1a64(name) ^ (i * 0x9E3779B97F4A7C15)) >> 40 - 2^23) / 2^23` in [-1, 1) (exact in f32),
/// scaled per kind of tensor so that activations keep their size through the 94 layers.
pub mod formula {
    use super::*;

    /// FNV-1a of a name ([`ebm_kernels::rng::stream_id`]).
    pub use ebm_kernels::rng::stream_id as fnv1a64;

    pub fn splitmix64(mut x: u64) -> u64 {
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// The value in [-1, 1) of element `i` of tensor `name`.
    pub fn unit(name: &str, i: u64) -> f64 {
        let h = fnv1a64(name);
        let k = splitmix64(h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 40;
        (k as f64 - 8_388_608.0) / 8_388_608.0
    }

    /// Element `i` of tensor `name` of `shape`.
    pub fn value(name: &str, shape: &[usize], i: u64) -> f32 {
        let u = unit(name, i);
        let v = if name.ends_with(".conv.weight") {
            let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
            u * (6.0 / fan_in).sqrt()
        } else if name.ends_with(".bn.weight") {
            1.0 + 0.1 * u
        } else if name.ends_with(".bn.bias") || name.ends_with(".bn.running_mean") {
            0.1 * u
        } else if name.ends_with(".bn.running_var") {
            1.0 + 0.25 * (u + 1.0)
        } else if name == "fc.weight" {
            u * (3.0 / POOL_DIM as f64).sqrt()
        } else {
            0.1 * u
        };
        v as f32
    }

    /// Every tensor of the network filled by [`value`].
    pub fn weights(device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut m = HashMap::new();
        for (name, shape) in parameter_shapes() {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n as u64).map(|i| value(&name, &shape, i)).collect();
            m.insert(name, Tensor::from_vec(v, shape.as_slice(), device)?);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_list_matches_pytorch_fid() {
        // pytorch-fid's fid_inception_v3(): 94 BasicConv2d and fc
        let p = parameter_shapes();
        let convs = p.iter().filter(|(n, _)| n.ends_with(".conv.weight")).count();
        assert_eq!(convs, 94);
        let total: usize = p.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        // torchvision inception_v3(num_classes=1008, aux_logits=False, weights=None): 23,850,960 parameters and
        // 34,432 BatchNorm running statistics (counted with torchvision 0.29)
        assert_eq!(total, 23_850_960 + 34_432, "parameter count");
    }

    #[test]
    fn inception_score_of_known_distributions() {
        // confident and uniform over k classes: IS = k; all identical predictions: IS = 1
        let k = 4;
        let mut l = vec![];
        for i in 0..8 {
            let mut r = vec![-1e4f32; 10];
            r[i % k] = 0.0;
            l.extend(r);
        }
        let (m, s) = inception_score(&l, 10, 1).unwrap();
        assert!((m - k as f64).abs() < 1e-9 && s == 0.0, "{m} {s}");
        let same = vec![0.5f32; 30];
        assert!((inception_score(&same, 10, 1).unwrap().0 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pools_match_their_definitions() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((1, 1, 3, 4)).unwrap();
        let a = avg_pool3_exclude_pad(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // corner (0,0): mean of 0, 1, 4, 5 = 2.5; centre (1,1): mean of 0,1,2,4,5,6,8,9,10 = 5
        assert!((a[0] - 2.5).abs() < 1e-6 && (a[5] - 5.0).abs() < 1e-6, "{a:?}");
        let m = max_pool3_same(&(x.neg().unwrap())).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(m[0], 0.0);
        assert_eq!(m[11], -6.0);
    }
}
