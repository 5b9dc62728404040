//! The fused Langevin update on NVIDIA GPUs (feature `cuda`): the same formula and the same noise as the CPU op,
//! compiled at run time with NVRTC, so the crate builds and tests without a CUDA toolkit.
//!
//! The kernel follows the CPU code operation for operation in plain f32 arithmetic, compiled with
//! `--fmad=false` (no fused multiply-add) and IEEE division and square root, so with an elementwise or no clip the
//! result is bit-identical to [`crate::langevin::update_slices`]. With `Clip::SampleL2` the per-sample norms are
//! summed in a different order and may differ in the last bit.
//!
//! It works on cudarc buffers. Running it on candle's CUDA tensors (a `cuda_fwd` of the in-place op) needs candle's
//! own `cuda` feature, which needs `nvcc` at build time; that wiring is not done yet.

use crate::langevin::{Clip, LangevinUpdate, NoiseOrder};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use std::sync::Arc;

/// What can go wrong on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver or device: {0}")]
    Unavailable(String),
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    #[error("NVRTC could not compile the Langevin kernel: {0}")]
    Compile(String),
    #[error("{0}")]
    Shape(String),
}

const SOURCE: &str = r#"
#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u

__device__ __forceinline__ void philox(unsigned int c[4], unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        if (r > 0) { k0 += W0; k1 += W1; }
        unsigned long long p0 = (unsigned long long)M0 * c[0];
        unsigned long long p1 = (unsigned long long)M1 * c[2];
        unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
        unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        unsigned int n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
    }
}

__device__ __forceinline__ float uniform01(unsigned int w) {
    return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

__device__ __forceinline__ float ln_unit(float x) {
    unsigned int bits = __float_as_uint(x);
    bool big = (bits & 0x007fffffu) > 0x003504f3u;
    int e = (int)((bits >> 23) & 0xffu) - 127 + (big ? 1 : 0);
    float m = __uint_as_float((bits & 0x007fffffu) | (big ? 0x3f000000u : 0x3f800000u));
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float poly = 1.0f + s2 * (1.0f / 3.0f + s2 * (1.0f / 5.0f + s2 * (1.0f / 7.0f + s2 * (1.0f / 9.0f + s2 * (1.0f / 11.0f)))));
    return (float)e * 0.693147180559945309f + 2.0f * s * poly;
}

__device__ __forceinline__ void cos_sin_turn(float u, float* co, float* si) {
    int q = (int)(4.0f * u + 0.5f);
    float a = 6.28318530717958648f * (u - 0.25f * (float)q);
    float a2 = a * a;
    float s = a * (1.0f - a2 / 6.0f * (1.0f - a2 / 20.0f * (1.0f - a2 / 42.0f * (1.0f - a2 / 72.0f))));
    float c = 1.0f - a2 / 2.0f * (1.0f - a2 / 12.0f * (1.0f - a2 / 30.0f * (1.0f - a2 / 56.0f * (1.0f - a2 / 90.0f))));
    bool odd = (q & 1) == 1;
    float x = odd ? s : c, y = odd ? c : s;
    bool neg_x = (q & 3) == 1 || (q & 3) == 2;
    bool neg_y = (q & 2) == 2;
    *co = neg_x ? -x : x;
    *si = neg_y ? -y : y;
}

__device__ __forceinline__ void normal_pair(unsigned int w0, unsigned int w1, float* a, float* b) {
    float r = sqrtf(-2.0f * ln_unit(uniform01(w0)));
    float c, s;
    cos_sin_turn(uniform01(w1), &c, &s);
    *a = r * c;
    *b = r * s;
}

__device__ __forceinline__ float clampf(float v, float lo, float hi) {
    // as Rust's f32::clamp: NaN passes through
    return v < lo ? lo : (v > hi ? hi : v);
}

// One thread per Philox block of four elements: element i takes lane i % 4 of block i / 4 of stream `step`.
extern "C" __global__ void langevin_update(
    float* x, const float* g, const float* mask, const float* scales,
    unsigned long long n, unsigned long long sample_len,
    unsigned int key0, unsigned int key1, unsigned long long step,
    float step_size, float noise_std, float clip, float lo, float hi,
    int has_grad, int has_mask, int has_scales, int textbook)
{
    unsigned long long blk = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long first = blk * 4ull;
    if (first >= n) return;
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (noise_std != 0.0f) {
        unsigned int c[4] = {(unsigned int)blk, (unsigned int)(blk >> 32), (unsigned int)step, (unsigned int)(step >> 32)};
        philox(c, key0, key1);
        normal_pair(c[0], c[1], &z[0], &z[1]);
        normal_pair(c[2], c[3], &z[2], &z[3]);
    }
    for (int lane = 0; lane < 4; ++lane) {
        unsigned long long i = first + lane;
        if (i >= n) break;
        if (has_mask && mask[i] == 0.0f) continue;
        float d = 0.0f;
        if (has_grad) {
            float sc = has_scales ? scales[i / sample_len] : 1.0f;
            d = -step_size * clampf(g[i] * sc, -clip, clip);
        }
        float nz = noise_std * z[lane];
        float v = textbook ? clampf(x[i] + d + nz, lo, hi) : clampf(x[i] + d, lo, hi) + nz;
        x[i] = v;
    }
}

// min(1, c / |g_b|) per sample: one block per sample, a shared-memory tree over double partial sums.
extern "C" __global__ void sample_scales(const float* g, float* scales, unsigned long long sample_len, float c) {
    __shared__ double part[256];
    const float* s = g + (unsigned long long)blockIdx.x * sample_len;
    double acc = 0.0;
    for (unsigned long long j = threadIdx.x; j < sample_len; j += blockDim.x) acc += (double)s[j] * (double)s[j];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float norm = (float)sqrt(part[0]);
        scales[blockIdx.x] = norm > c ? c / norm : 1.0f;
    }
}
"#;

/// The compiled kernels on one device's stream.
pub struct CudaLangevin {
    stream: Arc<CudaStream>,
    update: CudaFunction,
    scales: CudaFunction,
}

impl CudaLangevin {
    /// Whether a CUDA driver can be loaded and reports at least one device.
    pub fn available() -> bool {
        // SAFETY: only probes whether the shared library can be opened.
        let present = unsafe { cudarc::driver::sys::is_culib_present() };
        present && CudaContext::device_count().map(|n| n > 0).unwrap_or(false)
    }

    /// Compiles the kernels for device `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        if !Self::available() {
            return Err(CudaError::Unavailable("libcuda could not be loaded or reports no device".into()));
        }
        let ctx = CudaContext::new(ordinal)?;
        let opts = CompileOptions {
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(SOURCE, opts).map_err(|e| CudaError::Compile(e.to_string()))?;
        let module = ctx.load_module(ptx)?;
        Ok(Self {
            stream: ctx.default_stream(),
            update: module.load_function("langevin_update")?,
            scales: module.load_function("sample_scales")?,
        })
    }

    /// The stream the kernels run on (allocate and copy buffers with it).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Applies the update to `x` in place on the GPU; `grad` and `mask` must have `x`'s length, `sample_len`
    /// divides it.
    pub fn update(
        &self,
        x: &mut CudaSlice<f32>,
        grad: Option<&CudaSlice<f32>>,
        mask: Option<&CudaSlice<f32>>,
        p: &LangevinUpdate,
        sample_len: usize,
    ) -> Result<(), CudaError> {
        let n = x.len();
        let sample_len = sample_len.max(1);
        for (what, len) in [("grad", grad.map(|g| g.len())), ("mask", mask.map(|m| m.len()))] {
            if let Some(l) = len {
                if l != n {
                    return Err(CudaError::Shape(format!("langevin update: {what} has {l} elements, x has {n}")));
                }
            }
        }
        if n % sample_len != 0 {
            return Err(CudaError::Shape(format!("{n} elements are not whole samples of {sample_len}")));
        }
        if n == 0 {
            return Ok(());
        }
        let mut scales: CudaSlice<f32> = self.stream.alloc_zeros(n / sample_len)?;
        let has_scales = matches!((grad, p.clip), (Some(_), Clip::SampleL2(_)));
        if let (Some(g), Clip::SampleL2(c)) = (grad, p.clip) {
            let cfg =
                LaunchConfig { grid_dim: ((n / sample_len) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
            let sl = sample_len as u64;
            let mut b = self.stream.launch_builder(&self.scales);
            b.arg(g).arg(&mut scales).arg(&sl).arg(&c);
            // SAFETY: the kernel reads n floats of g and writes n / sample_len floats of scales, both sized so.
            unsafe { b.launch(cfg) }?;
        }
        // operands the flags switch off still need a valid pointer
        let dummy: CudaSlice<f32> = self.stream.alloc_zeros(1)?;
        let g = grad.unwrap_or(&dummy);
        let m = mask.unwrap_or(&dummy);
        let clip = match p.clip {
            Clip::Elementwise(c) => c,
            _ => f32::INFINITY,
        };
        let (lo, hi) = p.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let key = crate::philox::key_of(p.seed);
        let (n64, sl) = (n as u64, sample_len as u64);
        let flags =
            [grad.is_some() as i32, mask.is_some() as i32, has_scales as i32, (p.order == NoiseOrder::Textbook) as i32];
        let blocks = n.div_ceil(4);
        let cfg =
            LaunchConfig { grid_dim: (blocks.div_ceil(256) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let mut b = self.stream.launch_builder(&self.update);
        b.arg(x).arg(g).arg(m).arg(&scales).arg(&n64).arg(&sl).arg(&key[0]).arg(&key[1]).arg(&p.step);
        b.arg(&p.step_size).arg(&p.noise_std).arg(&clip).arg(&lo).arg(&hi);
        b.arg(&flags[0]).arg(&flags[1]).arg(&flags[2]).arg(&flags[3]);
        // SAFETY: every buffer the kernel indexes holds n floats (or is not read, by its flag), scales n / sample_len.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }
}
