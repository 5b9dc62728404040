//! Layout changes between candle's NCHW tensors and the channel-innermost (NHWC) scratch of the Winograd path,
//! as 8x8 register transposes (AVX) with scalar edges, plus a pool of reusable scratch buffers.

use rayon::prelude::*;
use std::sync::Mutex;

/// Copies `src` `[B][c][h][w]` into `dst` `[B][hs][ws][cp]` at offset `(pt, pl)`, adding `bias` (`[B, c]` or
/// `[c]`) to every copied value; every other element of `dst` (the padding, and channels `c..cp`) is set to 0.
/// With `mask = (m, a)` (`m` shaped like `src`), each value is first multiplied by `m > 0 ? 1 : a` (the gradient
/// of a leaky ReLU whose output is `m`).
#[allow(clippy::too_many_arguments)]
pub fn nchw_to_nhwc_padded(
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    dst: &mut [f32],
    (hs, ws, cp): (usize, usize, usize),
    (pt, pl): (usize, usize),
    bias: Option<&[f32]>,
    mask: Option<(&[f32], f32)>,
) {
    assert!(pt + h <= hs && pl + w <= ws && c <= cp, "nchw_to_nhwc_padded: scratch too small");
    let img = hs * ws * cp;
    let batch = dst.len() / img;
    assert_eq!(src.len(), batch * c * h * w);
    if let Some(b) = bias {
        assert!(b.len() == c || b.len() == batch * c, "nchw_to_nhwc_padded: bias length");
    }
    if let Some((m, _)) = mask {
        assert_eq!(m.len(), src.len(), "nchw_to_nhwc_padded: mask length");
    }
    let simd = super::gemm::simd_available();
    dst.par_chunks_mut(img).enumerate().for_each(|(b, d)| {
        let s = &src[b * c * h * w..(b + 1) * c * h * w];
        let mask_b = mask.map(|(m, a)| (&m[b * c * h * w..(b + 1) * c * h * w], a));
        let bias_b: Option<&[f32]> = bias.map(|v| if v.len() == c { v } else { &v[b * c..(b + 1) * c] });
        // borders
        d[..pt * ws * cp].fill(0.0);
        d[(pt + h) * ws * cp..].fill(0.0);
        for y in 0..h {
            let row = &mut d[(y + pt) * ws * cp..(y + pt + 1) * ws * cp];
            row[..pl * cp].fill(0.0);
            row[(pl + w) * cp..].fill(0.0);
            if c < cp {
                for x in 0..w {
                    row[(pl + x) * cp + c..(pl + x + 1) * cp].fill(0.0);
                }
            }
        }
        // SAFETY: the sizes were checked above; SIMD only after the CPU check.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if simd {
                return avx::to_nhwc(s, (c, h, w), d, (ws, cp), (pt, pl), bias_b, mask_b);
            }
            let _ = simd;
            to_nhwc_scalar(s, (c, h, w), d, (ws, cp), (pt, pl), bias_b, mask_b, 0, 0)
        }
    });
}

/// The scalar copy of channels `>= c0` and columns `>= x0` (the SIMD path's edges, or everything).
#[allow(clippy::too_many_arguments)]
fn to_nhwc_scalar(
    s: &[f32],
    (c, h, w): (usize, usize, usize),
    d: &mut [f32],
    (ws, cp): (usize, usize),
    (pt, pl): (usize, usize),
    bias: Option<&[f32]>,
    mask: Option<(&[f32], f32)>,
    c0: usize,
    x0: usize,
) {
    for y in 0..h {
        let row = &mut d[((y + pt) * ws + pl) * cp..];
        for ci in 0..c {
            let add = bias.map_or(0.0, |v| v[ci]);
            let srow = &s[(ci * h + y) * w..(ci * h + y + 1) * w];
            let xs = if ci >= c0 { 0 } else { x0 };
            match mask {
                None => {
                    for x in xs..w {
                        row[x * cp + ci] = srow[x] + add;
                    }
                }
                Some((m, a)) => {
                    let mrow = &m[(ci * h + y) * w..(ci * h + y + 1) * w];
                    for x in xs..w {
                        row[x * cp + ci] = srow[x] * if mrow[x] > 0.0 { 1.0 } else { a } + add;
                    }
                }
            }
        }
    }
}

/// Copies `src` `[B][hs][ws][cp]` from row `oy`, column `ox` on (`h` rows, `w` columns, channels `< c`) into
/// `dst` `[B][c][h][w]`, applying a leaky ReLU of slope `leaky` when given.
pub fn nhwc_to_nchw(
    src: &[f32],
    (hs, ws, cp): (usize, usize, usize),
    (oy, ox): (usize, usize),
    dst: &mut [f32],
    (c, h, w): (usize, usize, usize),
    leaky: Option<f32>,
) {
    assert!(oy + h <= hs && ox + w <= ws && c <= cp, "nhwc_to_nchw: scratch too small");
    let img = c * h * w;
    if img == 0 {
        return;
    }
    let batch = dst.len() / img;
    assert!(src.len() >= batch * hs * ws * cp);
    let simd = super::gemm::simd_available();
    dst.par_chunks_mut(img).enumerate().for_each(|(b, d)| {
        let s = &src[b * hs * ws * cp + (oy * ws + ox) * cp..(b + 1) * hs * ws * cp];
        // SAFETY: sizes checked above; SIMD only after the CPU check.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if simd {
                return avx::to_nchw(s, (ws, cp), d, (c, h, w), leaky);
            }
            let _ = simd;
            to_nchw_scalar(s, (ws, cp), d, (c, h, w), leaky, 0, 0)
        }
    });
}

/// The scalar copy of channels `>= c0` and columns `>= x0`; `s` starts at the first copied pixel.
fn to_nchw_scalar(
    s: &[f32],
    (ws, cp): (usize, usize),
    d: &mut [f32],
    (c, h, w): (usize, usize, usize),
    leaky: Option<f32>,
    c0: usize,
    x0: usize,
) {
    for y in 0..h {
        let srow = &s[y * ws * cp..];
        for ci in 0..c {
            let drow = &mut d[(ci * h + y) * w..(ci * h + y + 1) * w];
            let xs = if ci >= c0 { 0 } else { x0 };
            for x in xs..w {
                let v = srow[x * cp + ci];
                drow[x] = match leaky {
                    Some(a) if v <= 0.0 => v * a,
                    _ => v,
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn to_nhwc(
        s: &[f32],
        (c, h, w): (usize, usize, usize),
        d: &mut [f32],
        (ws, cp): (usize, usize),
        (pt, pl): (usize, usize),
        bias: Option<&[f32]>,
        mask: Option<(&[f32], f32)>,
    ) {
        let (c8, w8) = (c / 8 * 8, w / 8 * 8);
        let sp = s.as_ptr();
        let (one, zero) = (_mm256_set1_ps(1.0), _mm256_setzero_ps());
        for y in 0..h {
            let dp = d.as_mut_ptr().add(((y + pt) * ws + pl) * cp);
            let mut ci = 0;
            while ci < c8 {
                let bv = match bias {
                    Some(b) => _mm256_loadu_ps(b.as_ptr().add(ci)),
                    None => _mm256_setzero_ps(),
                };
                let mut x = 0;
                while x < w8 {
                    let off = (ci * h + y) * w + x;
                    let src = sp.add(off);
                    let step = h * w;
                    let mut r = [
                        _mm256_loadu_ps(src),
                        _mm256_loadu_ps(src.add(step)),
                        _mm256_loadu_ps(src.add(2 * step)),
                        _mm256_loadu_ps(src.add(3 * step)),
                        _mm256_loadu_ps(src.add(4 * step)),
                        _mm256_loadu_ps(src.add(5 * step)),
                        _mm256_loadu_ps(src.add(6 * step)),
                        _mm256_loadu_ps(src.add(7 * step)),
                    ];
                    if let Some((m, a)) = mask {
                        let (mp, av) = (m.as_ptr().add(off), _mm256_set1_ps(a));
                        for (k, v) in r.iter_mut().enumerate() {
                            let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(mp.add(k * step)), zero);
                            *v = _mm256_mul_ps(*v, _mm256_blendv_ps(av, one, pos));
                        }
                    }
                    let t = transpose8(r);
                    for (j, v) in t.iter().enumerate() {
                        _mm256_storeu_ps(dp.add((x + j) * cp + ci), _mm256_add_ps(*v, bv));
                    }
                    x += 8;
                }
                ci += 8;
            }
        }
        if c8 < c || w8 < w {
            super::to_nhwc_scalar(s, (c, h, w), d, (ws, cp), (pt, pl), bias, mask, c8, w8);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn to_nchw(
        s: &[f32],
        (ws, cp): (usize, usize),
        d: &mut [f32],
        (c, h, w): (usize, usize, usize),
        leaky: Option<f32>,
    ) {
        let (c8, w8) = (c / 8 * 8, w / 8 * 8);
        let av = _mm256_set1_ps(leaky.unwrap_or(1.0));
        let dp = d.as_mut_ptr();
        for y in 0..h {
            let sp = s.as_ptr().add(y * ws * cp);
            let mut ci = 0;
            while ci < c8 {
                let mut x = 0;
                while x < w8 {
                    let src = sp.add(x * cp + ci);
                    let r = [
                        _mm256_loadu_ps(src),
                        _mm256_loadu_ps(src.add(cp)),
                        _mm256_loadu_ps(src.add(2 * cp)),
                        _mm256_loadu_ps(src.add(3 * cp)),
                        _mm256_loadu_ps(src.add(4 * cp)),
                        _mm256_loadu_ps(src.add(5 * cp)),
                        _mm256_loadu_ps(src.add(6 * cp)),
                        _mm256_loadu_ps(src.add(7 * cp)),
                    ];
                    let t = transpose8(r);
                    for (i, v) in t.iter().enumerate() {
                        // max(v, a v) is the leaky ReLU for 0 < a < 1 (and v itself for a = 1)
                        let v = _mm256_max_ps(*v, _mm256_mul_ps(*v, av));
                        _mm256_storeu_ps(dp.add(((ci + i) * h + y) * w + x), v);
                    }
                    x += 8;
                }
                ci += 8;
            }
        }
        if c8 < c || w8 < w {
            super::to_nchw_scalar(s, (ws, cp), d, (c, h, w), leaky, c8, w8);
        }
    }
}

/// Reusable scratch buffers, so that the large per-call scratch is not requested from the allocator (and faulted
/// in) at every convolution. Buffers come back with unspecified contents.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Buffers kept at most.
const POOL_MAX: usize = 8;

/// A buffer of `len` values with unspecified contents (previously used values or zeros).
pub fn take_scratch(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    // the smallest buffer that fits
    let best = pool.iter().enumerate().filter(|(_, v)| v.capacity() >= len).min_by_key(|(_, v)| v.capacity());
    let mut v = match best {
        Some((i, _)) => pool.swap_remove(i),
        None => Vec::new(),
    };
    drop(pool);
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v.truncate(len);
    v
}

/// Returns a buffer to the pool.
pub fn give_scratch(v: Vec<f32>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(v);
    } else if let Some(i) = pool.iter().enumerate().min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i) {
        if pool[i].capacity() < v.capacity() {
            pool[i] = v;
        }
    }
}

/// A vector of `n` values for an op's output, not zeroed: every call site overwrites all `n` values before the
/// vector is read (a zeroing pass would cost as much as a light op itself).
#[allow(clippy::uninit_vec)]
pub(crate) fn output_vec<T: Copy>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: T is f32/f64 (any bit pattern is valid); the callers write every element before reading any.
    unsafe { v.set_len(n) };
    v
}
