//! Single-threaded f32 matrix multiplication on packed panels, the engine under the convolutions.
//!
//! `C (m x n) [+]= A (m x k) * B (k x n)` in the BLIS structure: `B` is packed in blocks of `KC` rows into panels
//! of [`NR`] columns, `A` into panels of [`MR`] rows, and a register-blocked microkernel (6 x 16 with AVX2 + FMA,
//! twelve 8-wide accumulators; a portable scalar kernel elsewhere) computes one `MR x NR` tile of `C` per call.
//! The convolutions call the driver with their own packing routines (im2col writes packed `B` panels directly)
//! and parallelise over images or tiles themselves, so nothing here spawns threads.

use std::cell::RefCell;

/// Rows of `C` per microkernel tile.
pub const MR: usize = 6;
/// Columns of `C` per microkernel tile.
pub const NR: usize = 16;
/// Depth of one packed block (a `KC x NR` panel of `B` is 16 KiB: it stays in L1).
pub const KC: usize = 256;
/// Rows of `A` per L2 block.
pub const MC: usize = 96;
/// Columns of `B` per packed block.
pub const NC: usize = 1024;

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

static FORCE_PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every convolution kernel use its portable (non-SIMD) code from now on, process-wide: for testing that
/// code on CPUs that have AVX2.
pub fn force_portable_kernels() {
    FORCE_PORTABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the vectorised (AVX2 + FMA) kernels run on this CPU (and are not disabled by
/// [`force_portable_kernels`]).
pub fn simd_available() -> bool {
    if FORCE_PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One `MR x NR` tile: `C[r][j] (+)= sum_k A(r, k) * B[k][j]` for `r < mr`, `j < nr`.
///
/// `A(r, k)` is at `a + r * rsa + k * csa` (packed panels: `rsa = 1, csa = MR`; plain row-major rows:
/// `rsa = row stride, csa = 1`); `B[k][0..NR]` is at `b + k * rsb` (always `NR` readable values). `C[r][j]` is at
/// `c + r * rsc + j * csc`.
///
/// # Safety
/// Every address above must be valid for `r < mr` (rows `>= mr` of `A` are never read), `k < kc`, `j < NR` for
/// `B`, and `j < nr` for `C`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn microkernel(
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    rsc: usize,
    csc: usize,
    accumulate: bool,
    mr: usize,
    nr: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd_available() {
            return avx2::kernel(kc, a, rsa, csa, b, rsb, c, rsc, csc, accumulate, mr, nr);
        }
    }
    scalar_kernel(kc, a, rsa, csa, b, rsb, c, rsc, csc, accumulate, mr, nr)
}

#[allow(clippy::too_many_arguments)]
unsafe fn scalar_kernel(
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    rsc: usize,
    csc: usize,
    accumulate: bool,
    mr: usize,
    nr: usize,
) {
    let mut acc = [[0f32; NR]; MR];
    for k in 0..kc {
        let bk = std::slice::from_raw_parts(b.add(k * rsb), NR);
        for (r, row) in acc.iter_mut().enumerate().take(mr) {
            let av = *a.add(r * rsa + k * csa);
            for (o, bv) in row.iter_mut().zip(bk) {
                *o += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(mr) {
        for (j, v) in row.iter().enumerate().take(nr) {
            let p = c.add(r * rsc + j * csc);
            *p = if accumulate { *p + v } else { *v };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel(
        kc: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        rsb: usize,
        c: *mut f32,
        rsc: usize,
        csc: usize,
        accumulate: bool,
        mr: usize,
        nr: usize,
    ) {
        // Rows past `mr` read row 0 again (valid memory); their results are dropped.
        let row = |r: usize| if r < mr { a.add(r * rsa) } else { a };
        let (mut p0, mut p1, mut p2, mut p3, mut p4, mut p5) = (row(0), row(1), row(2), row(3), row(4), row(5));
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        let mut bp = b;
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            let x = _mm256_broadcast_ss(&*p0);
            c00 = _mm256_fmadd_ps(x, b0, c00);
            c01 = _mm256_fmadd_ps(x, b1, c01);
            let x = _mm256_broadcast_ss(&*p1);
            c10 = _mm256_fmadd_ps(x, b0, c10);
            c11 = _mm256_fmadd_ps(x, b1, c11);
            let x = _mm256_broadcast_ss(&*p2);
            c20 = _mm256_fmadd_ps(x, b0, c20);
            c21 = _mm256_fmadd_ps(x, b1, c21);
            let x = _mm256_broadcast_ss(&*p3);
            c30 = _mm256_fmadd_ps(x, b0, c30);
            c31 = _mm256_fmadd_ps(x, b1, c31);
            let x = _mm256_broadcast_ss(&*p4);
            c40 = _mm256_fmadd_ps(x, b0, c40);
            c41 = _mm256_fmadd_ps(x, b1, c41);
            let x = _mm256_broadcast_ss(&*p5);
            c50 = _mm256_fmadd_ps(x, b0, c50);
            c51 = _mm256_fmadd_ps(x, b1, c51);
            p0 = p0.add(csa);
            p1 = p1.add(csa);
            p2 = p2.add(csa);
            p3 = p3.add(csa);
            p4 = p4.add(csa);
            p5 = p5.add(csa);
            bp = bp.add(rsb);
        }
        let acc = [[c00, c01], [c10, c11], [c20, c21], [c30, c31], [c40, c41], [c50, c51]];
        if nr == NR && csc == 1 {
            for (r, [lo, hi]) in acc.iter().enumerate().take(mr) {
                let p = c.add(r * rsc);
                if accumulate {
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *lo));
                    _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), *hi));
                } else {
                    _mm256_storeu_ps(p, *lo);
                    _mm256_storeu_ps(p.add(8), *hi);
                }
            }
        } else {
            let mut tmp = [[0f32; NR]; MR];
            for (r, [lo, hi]) in acc.iter().enumerate() {
                _mm256_storeu_ps(tmp[r].as_mut_ptr(), *lo);
                _mm256_storeu_ps(tmp[r].as_mut_ptr().add(8), *hi);
            }
            for (r, trow) in tmp.iter().enumerate().take(mr) {
                for (j, v) in trow.iter().enumerate().take(nr) {
                    let p = c.add(r * rsc + j * csc);
                    *p = if accumulate { *p + v } else { *v };
                }
            }
        }
    }
}

/// `A` (`m x k`) packed once into `MR`-row panels per `KC`-deep block, to be reused by many products (a conv's
/// weights against every image).
#[derive(Debug, Clone)]
pub struct PackedA {
    pub m: usize,
    pub k: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs `A(i, j) = a[i * rs + j * cs]`.
    pub fn new(m: usize, k: usize, a: &[f32], rs: usize, cs: usize) -> Self {
        if m > 0 && k > 0 {
            assert!((m - 1) * rs + (k - 1) * cs < a.len(), "PackedA: matrix exceeds its slice");
        }
        Self::from_fn(m, k, |i, j| a[i * rs + j * cs])
    }

    /// Packs `A(i, j) = f(i, j)`.
    pub fn from_fn(m: usize, k: usize, f: impl Fn(usize, usize) -> f32) -> Self {
        let mp = m.div_ceil(MR) * MR;
        let mut data = vec![0f32; mp * k];
        for (blk, k0) in (0..k).step_by(KC).enumerate() {
            let kc = KC.min(k - k0);
            let base = blk * mp * KC;
            for i in 0..m {
                let (panel, r) = (i / MR, i % MR);
                let off = base + panel * MR * kc;
                for kk in 0..kc {
                    data[off + kk * MR + r] = f(i, k0 + kk);
                }
            }
        }
        Self { m, k, data }
    }

    fn mp(&self) -> usize {
        self.m.div_ceil(MR) * MR
    }

    /// The packed panel of rows `[panel * MR, +MR)` in the depth block starting at `k0`.
    fn panel(&self, k0: usize, panel: usize) -> *const f32 {
        let kc = KC.min(self.k - k0);
        let base = (k0 / KC) * self.mp() * KC;
        self.data[base + panel * MR * kc..].as_ptr()
    }
}

/// Scratch for a packed block of `B`: `ceil(nc / NR)` panels of `kc x NR`, zero beyond `nc`.
pub fn packed_b_len(kc: usize, nc: usize) -> usize {
    nc.div_ceil(NR) * NR * kc
}

thread_local! {
    static PACK_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `C (m x n) [+]= A * B` with `A` prepacked and `B` supplied block by block by `pack_b(k0, kc, j0, nc, out)`,
/// which writes the rows `[k0, k0 + kc)`, columns `[j0, j0 + nc)` of `B` as packed panels (`out[p][kk][jj]` =
/// `B(k0 + kk, j0 + p * NR + jj)`, zeros past `nc`) into `out` (length [`packed_b_len`]).
///
/// `C(i, j)` is at `c[i * rsc + j * csc]`; with `accumulate` the product is added to `C`.
pub fn gemm_packed_a(
    pa: &PackedA,
    n: usize,
    mut pack_b: impl FnMut(usize, usize, usize, usize, &mut [f32]),
    c: &mut [f32],
    rsc: usize,
    csc: usize,
    accumulate: bool,
) {
    let (m, k) = (pa.m, pa.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * rsc + (n - 1) * csc < c.len(), "gemm: C exceeds its slice");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * rsc + j * csc] = 0.0;
                }
            }
        }
        return;
    }
    PACK_B.with(|cell| {
        let mut buf = cell.borrow_mut();
        let need = packed_b_len(KC.min(k), NC.min(n));
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let cp = c.as_mut_ptr();
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let bl = packed_b_len(kc, nc);
                pack_b(k0, kc, j0, nc, &mut buf[..bl]);
                let acc = accumulate || k0 > 0;
                for i0 in (0..m).step_by(MC) {
                    let mc = MC.min(m - i0);
                    for (jp, jj) in (0..nc).step_by(NR).enumerate() {
                        let nr = NR.min(nc - jj);
                        let bp = buf[jp * NR * kc..].as_ptr();
                        for ii in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ii);
                            let ap = pa.panel(k0, (i0 + ii) / MR);
                            // SAFETY: the panels hold kc x MR / kc x NR values; C's extent was checked above.
                            unsafe {
                                let cij = cp.add((i0 + ii) * rsc + (j0 + jj) * csc);
                                microkernel(kc, ap, 1, MR, bp, NR, cij, rsc, csc, acc, mr, nr);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `[k0, k0 + kc)`, columns `[j0, j0 + nc)` of `B(k, j) = b[k * rs + j * cs]` into panels.
#[allow(clippy::too_many_arguments)]
pub fn pack_b_strided(b: &[f32], rs: usize, cs: usize, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
    for (p, jp) in (0..nc).step_by(NR).enumerate() {
        let w = NR.min(nc - jp);
        let panel = &mut out[p * NR * kc..(p + 1) * NR * kc];
        for kk in 0..kc {
            let row = &mut panel[kk * NR..(kk + 1) * NR];
            let src = (k0 + kk) * rs + (j0 + jp) * cs;
            if cs == 1 {
                row[..w].copy_from_slice(&b[src..src + w]);
            } else {
                for (jj, o) in row[..w].iter_mut().enumerate() {
                    *o = b[src + jj * cs];
                }
            }
            row[w..].fill(0.0);
        }
    }
}

/// `C (m x n) [+]= A (m x k) * B (k x n)` for strided matrices: `A(i, p) = a[i * rsa + p * csa]`,
/// `B(p, j) = b[p * rsb + j * csb]`, `C(i, j) = c[i * rsc + j * csc]`. Single-threaded.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
    accumulate: bool,
) {
    if m > 0 && n > 0 && k > 0 {
        assert!((k - 1) * rsb + (n - 1) * csb < b.len(), "sgemm: B exceeds its slice");
    }
    let pa = PackedA::new(m, k, a, rsa, csa);
    gemm_packed_a(
        &pa,
        n,
        |k0, kc, j0, nc, out| pack_b_strided(b, rsb, csb, k0, kc, j0, nc, out),
        c,
        rsc,
        csc,
        accumulate,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>() as f32;
            }
        }
        c
    }

    #[test]
    fn sgemm_matches_naive_on_odd_shapes() {
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[(1, 1, 1), (6, 16, 7), (7, 17, 300), (64, 50, 513), (13, 1030, 9), (100, 3, 257)] {
            let a = rng.normal_vec(m * k, 0.0, 1.0);
            let b = rng.normal_vec(k * n, 0.0, 1.0);
            let want = naive(m, n, k, &a, &b);
            let mut c = vec![0f32; m * n];
            sgemm(m, n, k, &a, k, 1, &b, n, 1, &mut c, n, 1, false);
            let err = c.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(err < 1e-3 * (k as f32).sqrt(), "{m}x{n}x{k}: {err}");
            // transposed storage of everything, accumulating on top of the result
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f32> = (0..k * n).map(|i| b[(i % k) * n + i / k]).collect();
            let mut ct = vec![0f32; m * n];
            sgemm(m, n, k, &at, 1, m, &bt, 1, k, &mut ct, 1, m, false);
            sgemm(m, n, k, &at, 1, m, &bt, 1, k, &mut ct, 1, m, true);
            for i in 0..m {
                for j in 0..n {
                    assert!((ct[j * m + i] - 2.0 * want[i * n + j]).abs() < 2e-3 * (k as f32).sqrt());
                }
            }
        }
    }
}
