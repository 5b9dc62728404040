//! Winograd convolutions (Lavin & Gray 2016): F(4x4, 3x3) for 3x3 stride-1 kernels and, through a space-to-depth
//! rearrangement, F(4x4, 2x2) for 4x4 stride-2 kernels. Transform matrices from the Cook-Toom construction with
//! points 0, +-1, +-2 (F(4,3)) and 0, +-1, 2 (F(4,2)), plus the point at infinity.
//!
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A` per 4x4 output tile: each tile needs its `N x N` input patch `d`
//! (`N = 4 + R - 1`), and the `N^2` elementwise products over all channel pairs become `N^2` GEMMs
//! `M_xi (tiles x cout) = V_xi (tiles x cin) * U_xi (cin x cout)`: 36 multiplies per 16 outputs instead of 144
//! for 3x3 (4x), 25 instead of 64 for 2x2 (2.56x).
//!
//! Stride 2. A 4x4 stride-2 convolution of the padded input `Xp` is the 2x2 stride-1 convolution of its
//! space-to-depth rearrangement `Z[Y][X][(r, s, c)] = Xp[2Y + r][2X + s][c]` (4x the channels) with the kernel
//! `W'[co][(r, s, c)][a][b] = W[co][c][2a + r][2b + s]`. In an NHWC scratch this rearrangement is only a change of
//! strides, so the transforms read `Xp` directly; the input gradient writes the gradient of `Z` straight into an
//! NHWC gradient of `Xp` the same way.
//!
//! Layout. The input is copied once into a zero-padded NHWC scratch (channels innermost) so that every transform
//! works on 8-channel vectors without bounds checks; the input bias, when given, is added there (before the
//! padding, as the official `conv_block` does). Tiles are processed in chunks of [`chunk_tiles`] per rayon task:
//! the input transform writes `V[t][xi][cin]` for the chunk, the microkernel of [`gemm`](super::gemm) multiplies
//! rows of 6 tiles by 16-wide panels of the transformed weights `U[xi][cout / 16][cin][16]` into
//! `M[t][xi][cout]`, and the output transform writes NHWC tiles that one final pass transposes back to NCHW.

use super::gemm::{microkernel, simd_available, MR, NR};
use super::geom::ConvGeom;
use super::layout::{give_scratch, nchw_to_nhwc_padded, nhwc_to_nchw, take_scratch};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    static V_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static M_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

// ---------------------------------------------------------------------------------------------------------------
// vectors

/// 8-lane vectors: AVX2 when available, plain arrays otherwise (the same transform code runs on both).
trait Lanes: Copy {
    fn zero() -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `self * s + acc`.
    fn fma(self, s: f32, acc: Self) -> Self;
    fn scale(self, s: f32) -> Self;
}

#[derive(Clone, Copy)]
struct Scalar8([f32; 8]);

impl Lanes for Scalar8 {
    #[inline(always)]
    fn zero() -> Self {
        Scalar8([0.0; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Scalar8(std::ptr::read_unaligned(p as *const [f32; 8]))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        std::ptr::write_unaligned(p as *mut [f32; 8], self.0)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Scalar8(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Scalar8(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
    #[inline(always)]
    fn fma(self, s: f32, acc: Self) -> Self {
        Scalar8(std::array::from_fn(|i| self.0[i] * s + acc.0[i]))
    }
    #[inline(always)]
    fn scale(self, s: f32) -> Self {
        Scalar8(std::array::from_fn(|i| self.0[i] * s))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::Lanes;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct Avx8(__m256);

    // SAFETY (all methods): only instantiated inside functions compiled with `avx2,fma` and called after the
    // run-time check in `gemm::simd_available`.
    impl Lanes for Avx8 {
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Avx8(_mm256_setzero_ps()) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx8(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { Avx8(_mm256_add_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { Avx8(_mm256_sub_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn fma(self, s: f32, acc: Self) -> Self {
            unsafe { Avx8(_mm256_fmadd_ps(self.0, _mm256_set1_ps(s), acc.0)) }
        }
        #[inline(always)]
        fn scale(self, s: f32) -> Self {
            unsafe { Avx8(_mm256_mul_ps(self.0, _mm256_set1_ps(s))) }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// the two algorithms

/// One Winograd algorithm F(4, R): 1D transforms on arrays of 6 (of which the first `N` are used).
trait Variant {
    /// Kernel taps per side.
    const R: usize;
    /// Patch size `4 + R - 1`.
    const N: usize;
    /// `B^T d`: `N` inputs to `N` outputs.
    fn bt<L: Lanes>(d: [L; 6]) -> [L; 6];
    /// `A^T m`: `N` inputs to 4 outputs.
    fn at<L: Lanes>(m: [L; 6]) -> [L; 4];
    /// `G v`: `R` taps to `N` values.
    fn g<L: Lanes>(v: [L; 3]) -> [L; 6];
}

/// F(4x4, 3x3), points 0, +-1, +-2, infinity.
struct F43;

impl Variant for F43 {
    const R: usize = 3;
    const N: usize = 6;

    #[inline(always)]
    fn bt<L: Lanes>(d: [L; 6]) -> [L; 6] {
        let t0 = d[2].fma(-4.0, d[4]); // d4 - 4 d2
        let t1 = d[1].fma(-4.0, d[3]); // d3 - 4 d1
        let t2 = d[4].sub(d[2]); // d4 - d2
        let t3 = d[3].sub(d[1]).scale(2.0); // 2 (d3 - d1)
        [
            d[0].fma(4.0, d[2].fma(-5.0, d[4])),
            t0.add(t1),
            t0.sub(t1),
            t2.add(t3),
            t2.sub(t3),
            d[1].fma(4.0, d[3].fma(-5.0, d[5])),
        ]
    }

    #[inline(always)]
    fn at<L: Lanes>(m: [L; 6]) -> [L; 4] {
        let s12 = m[1].add(m[2]);
        let d12 = m[1].sub(m[2]);
        let s34 = m[3].add(m[4]);
        let d34 = m[3].sub(m[4]);
        [m[0].add(s12).add(s34), d34.fma(2.0, d12), s34.fma(4.0, s12), d34.fma(8.0, d12).add(m[5])]
    }

    #[inline(always)]
    fn g<L: Lanes>(v: [L; 3]) -> [L; 6] {
        let s02 = v[0].add(v[2]);
        let a = v[2].fma(1.0 / 6.0, v[0].scale(1.0 / 24.0));
        [
            v[0].scale(0.25),
            s02.add(v[1]).scale(-1.0 / 6.0),
            s02.sub(v[1]).scale(-1.0 / 6.0),
            v[1].fma(1.0 / 12.0, a),
            v[1].fma(-1.0 / 12.0, a),
            v[2],
        ]
    }
}

/// F(4x4, 2x2), points 0, +-1, 2, infinity:
/// `B^T = [2 -1 -2 1 0; 0 2 1 -1 0; 0 -2 3 -1 0; 0 -1 0 1 0; 0 2 -1 -2 1]`,
/// `G = [1/2 0; 1/2 1/2; 1/6 -1/6; 1/6 1/3; 0 1]`, `A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]`.
struct F42;

impl Variant for F42 {
    const R: usize = 2;
    const N: usize = 5;

    #[inline(always)]
    fn bt<L: Lanes>(d: [L; 6]) -> [L; 6] {
        let t = d[3].sub(d[1]);
        [
            d[0].sub(d[2]).fma(2.0, t),
            d[1].add(d[2]).sub(t),
            d[2].sub(d[1]).fma(2.0, d[2].sub(d[3])),
            t,
            t.fma(-2.0, d[4].sub(d[2])),
            L::zero(),
        ]
    }

    #[inline(always)]
    fn at<L: Lanes>(m: [L; 6]) -> [L; 4] {
        let s = m[1].add(m[2]);
        let d = m[1].sub(m[2]);
        [m[0].add(s).add(m[3]), m[3].fma(2.0, d), m[3].fma(4.0, s), m[3].fma(8.0, d).add(m[4])]
    }

    #[inline(always)]
    fn g<L: Lanes>(v: [L; 3]) -> [L; 6] {
        [
            v[0].scale(0.5),
            v[0].add(v[1]).scale(0.5),
            v[0].sub(v[1]).scale(1.0 / 6.0),
            v[1].fma(1.0 / 3.0, v[0].scale(1.0 / 6.0)),
            v[1],
            L::zero(),
        ]
    }
}

// ---------------------------------------------------------------------------------------------------------------
// plans

/// Where a transform reads (or writes) the pixel `(row, col)` of the tile grid, 8 channels at a time: `img * b +
/// row_s * row + col_s * col + chunk[q]` for channels `[8 q, 8 q + 8)`.
#[derive(Debug, Clone)]
struct Io {
    img: usize,
    row_s: usize,
    col_s: usize,
    chunk: Vec<usize>,
}

impl Io {
    /// An NHWC scratch `[b][rows][cols][cp]`.
    fn nhwc(rows: usize, cols: usize, cp: usize) -> Self {
        Self { img: rows * cols * cp, row_s: cols * cp, col_s: cp, chunk: (0..cp / 8).map(|q| 8 * q).collect() }
    }

    /// The space-to-depth view `Z[Y][X][(r, s, c)] = Xp[2Y + r][2X + s][c]` of an NHWC scratch
    /// `Xp[b][rows][cols][c]` (`c` a multiple of 8).
    fn space_to_depth(rows: usize, cols: usize, c: usize) -> Self {
        let chunk = (0..4 * c / 8)
            .map(|q| {
                let k = 8 * q;
                let (phase, c0) = (k / c, k % c);
                (phase / 2) * cols * c + (phase % 2) * c + c0
            })
            .collect();
        Self { img: rows * cols * c, row_s: 2 * cols * c, col_s: 2 * c, chunk }
    }
}

/// One Winograd convolution over a grid of `th x tw` tiles per image.
#[derive(Debug, Clone)]
struct Plan {
    batch: usize,
    th: usize,
    tw: usize,
    /// Depth of the products (input channels of the transformed convolution).
    k: usize,
    /// `k` rounded up to 8: the stride of `V` per transformed position.
    kp: usize,
    /// Output channels rounded up to 16 (the panel width).
    coutp: usize,
    input: Io,
    output: Io,
}

impl Plan {
    fn tiles(&self) -> usize {
        self.batch * self.th * self.tw
    }
}

/// Tiles per rayon task: about 60 (so that the transformed weights streamed per task are amortised over many
/// tiles), fewer when that would leave a thread idle; always a multiple of [`MR`].
fn chunk_tiles(tiles: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let target = 60usize;
    let balanced = tiles.div_ceil(2 * threads);
    round_up(target.min(balanced).max(1), MR)
}

// ---------------------------------------------------------------------------------------------------------------
// weights

/// Where tap `(co, ci, i, j)` of an `R x R` kernel lives: `co_off[co] + ci_off[ci] + i * i_s + j * j_s`.
#[derive(Debug, Clone)]
struct Taps {
    co_off: Vec<isize>,
    ci_off: Vec<isize>,
    i_s: isize,
    j_s: isize,
}

/// Transforms panel `p` (output channels `[16 p, 16 p + 16)`) of the kernel into `u`, 8 output channels per
/// vector: `U[xi][p][ci][co % 16] = (G g G^T)[xi]`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn weight_panel<V: Variant, L: Lanes>(w: &[f32], t: &Taps, panels: usize, p: usize, u: *mut f32) {
    let (cin, cout) = (t.ci_off.len(), t.co_off.len());
    for ci in 0..cin {
        for half in 0..NR / 8 {
            let co0 = p * NR + half * 8;
            // taps of 8 output channels (zeros past cout), [i * 3 + j][lane]
            let mut g = [[0f32; 8]; 9];
            for lane in 0..8usize.min(cout.saturating_sub(co0)) {
                let off = t.co_off[co0 + lane] + t.ci_off[ci];
                for i in 0..V::R {
                    for j in 0..V::R {
                        g[i * 3 + j][lane] = w[(off + i as isize * t.i_s + j as isize * t.j_s) as usize];
                    }
                }
            }
            // T = G g, column by column (no closures: they would not inherit the target features)
            let c0 = V::g([L::load(g[0].as_ptr()), L::load(g[3].as_ptr()), L::load(g[6].as_ptr())]);
            let c1 = V::g([L::load(g[1].as_ptr()), L::load(g[4].as_ptr()), L::load(g[7].as_ptr())]);
            let c2 = V::g([L::load(g[2].as_ptr()), L::load(g[5].as_ptr()), L::load(g[8].as_ptr())]);
            for r in 0..V::N {
                let row = V::g([c0[r], c1[r], c2[r]]);
                for (s, v) in row.iter().enumerate().take(V::N) {
                    let xi = r * V::N + s;
                    v.store(u.add(((xi * panels + p) * cin + ci) * NR + half * 8));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_panel_avx<V: Variant>(w: &[f32], t: &Taps, panels: usize, p: usize, u: *mut f32) {
    weight_panel::<V, avx::Avx8>(w, t, panels, p, u)
}

/// The transformed kernel whose taps `t` locates in `w`, packed as the microkernel's `B` panels:
/// `U[xi][co / NR][ci][co % NR]`, zero for `co >= cout`.
fn transform_weights<V: Variant>(w: &[f32], t: &Taps, coutp: usize) -> Vec<f32> {
    let (cin, panels) = (t.ci_off.len(), coutp / NR);
    let mut u = take_scratch(V::N * V::N * coutp * cin);
    let ptr = SendPtr(u.as_mut_ptr());
    let simd = simd_available();
    (0..panels).into_par_iter().for_each(|p| {
        let ptr = &ptr;
        // SAFETY: panel p writes only the `[xi][p]` blocks; the tap offsets stay inside `w` (the callers' tap
        // tables come from the checked kernel shape).
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if simd {
                return weight_panel_avx::<V>(w, t, panels, p, ptr.0);
            }
            let _ = simd;
            weight_panel::<V, Scalar8>(w, t, panels, p, ptr.0)
        }
    });
    u
}

// ---------------------------------------------------------------------------------------------------------------
// transforms and products

/// Input transform of tiles `[t0, t0 + n)` into `v[t - t0][xi][kp]`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn input_transform<V: Variant, L: Lanes>(p: &Plan, xs: &[f32], t0: usize, n: usize, v: &mut [f32]) {
    let (kp, io) = (p.kp, &p.input);
    let xin = V::N * V::N;
    let per_img = p.th * p.tw;
    for ti in 0..n {
        let t = t0 + ti;
        let (b, r) = (t / per_img, t % per_img);
        let (ty, tx) = (r / p.tw, r % p.tw);
        let base = xs.as_ptr().add(b * io.img + 4 * ty * io.row_s + 4 * tx * io.col_s);
        let out = v.as_mut_ptr().add(ti * xin * kp);
        for (q, &coff) in io.chunk.iter().enumerate() {
            // B^T along each patch row, then along the columns
            let mut rows = [[L::zero(); 6]; 6];
            for i in 0..V::N {
                let rp = base.add(i * io.row_s + coff);
                let mut d = [L::zero(); 6];
                for j in 0..V::N {
                    d[j] = L::load(rp.add(j * io.col_s));
                }
                rows[i] = V::bt(d);
            }
            for s in 0..V::N {
                let mut c = [L::zero(); 6];
                for i in 0..V::N {
                    c[i] = rows[i][s];
                }
                let col = V::bt(c);
                for r in 0..V::N {
                    col[r].store(out.add((r * V::N + s) * kp + 8 * q));
                }
            }
        }
    }
}

/// Output transform of the products `m[t - t0][xi][coutp]` into the output scratch.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn output_transform<V: Variant, L: Lanes>(p: &Plan, m: &[f32], t0: usize, n: usize, ys: &mut [f32]) {
    let (coutp, io) = (p.coutp, &p.output);
    let xin = V::N * V::N;
    let per_img = p.th * p.tw;
    for ti in 0..n {
        let t = t0 + ti;
        let (b, r) = (t / per_img, t % per_img);
        let (ty, tx) = (r / p.tw, r % p.tw);
        let src = m.as_ptr().add(ti * xin * coutp);
        let dst = ys.as_mut_ptr().add(b * io.img + 4 * ty * io.row_s + 4 * tx * io.col_s);
        for (q, &coff) in io.chunk.iter().enumerate() {
            let mut rows = [[L::zero(); 4]; 6];
            for i in 0..V::N {
                let mut mm = [L::zero(); 6];
                for j in 0..V::N {
                    mm[j] = L::load(src.add((i * V::N + j) * coutp + 8 * q));
                }
                rows[i] = V::at(mm);
            }
            for s in 0..4 {
                let mut c = [L::zero(); 6];
                for i in 0..V::N {
                    c[i] = rows[i][s];
                }
                let col = V::at(c);
                for (r, val) in col.iter().enumerate() {
                    val.store(dst.add(r * io.row_s + s * io.col_s + coff));
                }
            }
        }
    }
}

/// One chunk: input transform, the `N^2` products, output transform. `v` and `m` hold at least
/// `round_up(n, MR) * N^2 * kp` and `... * coutp` values. No closures here: this body is inlined into the
/// `target_feature` entry point, and closures would not inherit its features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<V: Variant, L: Lanes>(
    p: &Plan,
    xs: &[f32],
    u: &[f32],
    t0: usize,
    n: usize,
    v: &mut [f32],
    m: &mut [f32],
    ys: &mut [f32],
) {
    let (k, kp, coutp) = (p.k, p.kp, p.coutp);
    let xin = V::N * V::N;
    let np = round_up(n, MR);
    input_transform::<V, L>(p, xs, t0, n, v);
    let panels = coutp / NR;
    for xi in 0..xin {
        for panel in 0..panels {
            let bp = u.as_ptr().add((xi * panels + panel) * k * NR);
            for tb in (0..np).step_by(MR) {
                microkernel(
                    k,
                    v.as_ptr().add((tb * xin + xi) * kp),
                    xin * kp,
                    1,
                    bp,
                    NR,
                    m.as_mut_ptr().add((tb * xin + xi) * coutp + panel * NR),
                    xin * coutp,
                    1,
                    false,
                    MR,
                    NR,
                );
            }
        }
    }
    output_transform::<V, L>(p, m, t0, n, ys);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx<V: Variant>(
    p: &Plan,
    xs: &[f32],
    u: &[f32],
    t0: usize,
    n: usize,
    v: &mut [f32],
    m: &mut [f32],
    ys: &mut [f32],
) {
    chunk::<V, avx::Avx8>(p, xs, u, t0, n, v, m, ys)
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The convolution of plan `p`: input scratch `xs`, transformed weights `u`, output scratch `ys`.
fn run<V: Variant>(p: &Plan, xs: &[f32], u: &[f32], ys: &mut [f32]) {
    let tiles = p.tiles();
    let ct = chunk_tiles(tiles);
    let xin = V::N * V::N;
    let (ys_len, ptr) = (ys.len(), SendPtr(ys.as_mut_ptr()));
    let simd = simd_available();
    let (vlen, mlen) = (round_up(ct, MR) * xin * p.kp, round_up(ct, MR) * xin * p.coutp);
    (0..tiles.div_ceil(ct)).into_par_iter().for_each(|ci| {
        let t0 = ci * ct;
        let n = ct.min(tiles - t0);
        let ptr = &ptr;
        V_BUF.with(|vb| {
            M_BUF.with(|mb| {
                let (mut v, mut m) = (vb.borrow_mut(), mb.borrow_mut());
                if v.len() < vlen {
                    v.resize(vlen, 0.0);
                }
                if m.len() < mlen {
                    m.resize(mlen, 0.0);
                }
                // SAFETY: tiles of different chunks write disjoint 4x4 blocks of the output scratch; every
                // buffer is sized by the plan; SIMD only after the CPU check.
                unsafe {
                    let ys = std::slice::from_raw_parts_mut(ptr.0, ys_len);
                    #[cfg(target_arch = "x86_64")]
                    if simd {
                        return chunk_avx::<V>(p, xs, u, t0, n, &mut v, &mut m, ys);
                    }
                    let _ = simd;
                    chunk::<V, Scalar8>(p, xs, u, t0, n, &mut v, &mut m, ys)
                }
            })
        })
    });
}

// ---------------------------------------------------------------------------------------------------------------
// entry points

/// Whether [`forward`] handles this convolution: 3x3 stride 1 with padding at most 2 (F(4,3)), or 4x4 stride 2
/// with a multiple of 8 input channels (F(4,2) on the space-to-depth input).
pub fn forward_ok(g: &ConvGeom) -> bool {
    is_3x3(g) || is_4x4_s2(g)
}

/// Whether [`backward_input`] handles this convolution (the same shapes as [`forward_ok`]).
pub fn backward_input_ok(g: &ConvGeom) -> bool {
    is_3x3(g) || is_4x4_s2(g)
}

fn is_3x3(g: &ConvGeom) -> bool {
    let p = g.pad;
    g.kh == 3 && g.kw == 3 && g.stride == 1 && p.top.max(p.bottom).max(p.left).max(p.right) <= 2
}

fn is_4x4_s2(g: &ConvGeom) -> bool {
    g.kh == 4 && g.kw == 4 && g.stride == 2 && g.cin % 8 == 0 && g.cin > 0
}

/// `y = act(conv(x + bias, w))` for a shape of [`forward_ok`], `act` a leaky ReLU of slope `leaky` (or none).
pub fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, leaky: Option<f32>, y: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let (th, tw) = (ho.div_ceil(4), wo.div_ceil(4));
    let coutp = round_up(g.cout, NR);
    let (b, cin) = (g.batch, g.cin);
    let mut ys = take_scratch(b * 16 * th * tw * coutp);
    let output = Io::nhwc(4 * th, 4 * tw, coutp);
    if is_3x3(g) {
        let kp = round_up(cin, 8);
        let (hs, ws) = (4 * th + 2, 4 * tw + 2);
        let mut xs = take_scratch(b * hs * ws * kp);
        nchw_to_nhwc_padded(x, (cin, g.h, g.w), &mut xs, (hs, ws, kp), (g.pad.top, g.pad.left), bias, None);
        let taps = Taps {
            co_off: (0..g.cout).map(|co| (co * cin * 9) as isize).collect(),
            ci_off: (0..cin).map(|ci| (ci * 9) as isize).collect(),
            i_s: 3,
            j_s: 1,
        };
        let u = transform_weights::<F43>(w, &taps, coutp);
        let p = Plan { batch: b, th, tw, k: cin, kp, coutp, input: Io::nhwc(hs, ws, kp), output };
        run::<F43>(&p, &xs, &u, &mut ys);
        give_scratch(xs);
        give_scratch(u);
    } else {
        assert!(is_4x4_s2(g), "winograd::forward: unsupported shape {g:?}");
        // the padded input, rows/columns enough for the space-to-depth grid of 4 th + 1 (and for all data)
        let rows = 2 * (4 * th + 1).max((g.h + g.pad.top).div_ceil(2));
        let cols = 2 * (4 * tw + 1).max((g.w + g.pad.left).div_ceil(2));
        let mut xs = take_scratch(b * rows * cols * cin);
        nchw_to_nhwc_padded(x, (cin, g.h, g.w), &mut xs, (rows, cols, cin), (g.pad.top, g.pad.left), bias, None);
        // W'[co][(r, s, c)][a][b] = W[co][c][2a + r][2b + s]
        let taps = Taps {
            co_off: (0..g.cout).map(|co| (co * cin * 16) as isize).collect(),
            ci_off: (0..4 * cin)
                .map(|k| {
                    let (phase, c) = (k / cin, k % cin);
                    (c * 16 + (phase / 2) * 4 + phase % 2) as isize
                })
                .collect(),
            i_s: 8,
            j_s: 2,
        };
        let u = transform_weights::<F42>(w, &taps, coutp);
        let input = Io::space_to_depth(rows, cols, cin);
        let p = Plan { batch: b, th, tw, k: 4 * cin, kp: 4 * cin, coutp, input, output };
        run::<F42>(&p, &xs, &u, &mut ys);
        give_scratch(xs);
        give_scratch(u);
    }
    nhwc_to_nchw(&ys, (4 * th, 4 * tw, coutp), (0, 0), y, (g.cout, ho, wo), leaky);
    give_scratch(ys);
}

/// `dx = conv^T(dy . mask, w)` for a shape of [`backward_input_ok`]; `mask = (y, a)` multiplies `dy` by
/// `y > 0 ? 1 : a` first (the gradient through a leaky ReLU whose output is `y`).
pub fn backward_input(g: &ConvGeom, dy: &[f32], mask: Option<(&[f32], f32)>, w: &[f32], dx: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let (b, cin, cout) = (g.batch, g.cin, g.cout);
    let kp = round_up(cout, 8);
    if is_3x3(g) {
        // the convolution of dy with the flipped, transposed kernel and padding 2 - p, producing h x w
        let pad = g.pad;
        let (th, tw) = (g.h.div_ceil(4), g.w.div_ceil(4));
        let (hs, ws) = (4 * th + 2, 4 * tw + 2);
        let mut xs = take_scratch(b * hs * ws * kp);
        nchw_to_nhwc_padded(dy, (cout, ho, wo), &mut xs, (hs, ws, kp), (2 - pad.top, 2 - pad.left), None, mask);
        // k(co = original ci, ci = original co, i, j) = w[ci][co][2 - i][2 - j]
        let taps = Taps {
            co_off: (0..cin).map(|c| (c * 9 + 8) as isize).collect(),
            ci_off: (0..cout).map(|c| (c * cin * 9) as isize).collect(),
            i_s: -3,
            j_s: -1,
        };
        let coutp = round_up(cin, NR);
        let u = transform_weights::<F43>(w, &taps, coutp);
        let mut ys = take_scratch(b * 16 * th * tw * coutp);
        let output = Io::nhwc(4 * th, 4 * tw, coutp);
        let p = Plan { batch: b, th, tw, k: cout, kp, coutp, input: Io::nhwc(hs, ws, kp), output };
        run::<F43>(&p, &xs, &u, &mut ys);
        nhwc_to_nchw(&ys, (4 * th, 4 * tw, coutp), (0, 0), dx, (cin, g.h, g.w), None);
        give_scratch(xs);
        give_scratch(u);
        give_scratch(ys);
    } else {
        assert!(is_4x4_s2(g), "winograd::backward_input: unsupported shape {g:?}");
        // dZ (the gradient of the space-to-depth input, 4 cin channels) is the 2x2 convolution of dy padded by one
        // on top/left with the flipped kernel; rows/columns of dZ needed to cover the cropped input:
        let (zh, zw) = ((g.h + g.pad.top).div_ceil(2), (g.w + g.pad.left).div_ceil(2));
        let (th, tw) = (zh.div_ceil(4), zw.div_ceil(4));
        let (hs, ws) = (4 * th + 1, 4 * tw + 1);
        let mut xs = take_scratch(b * hs * ws * kp);
        // dy rows beyond the scratch only feed dZ rows past zh (not needed)
        let (hc, wc) = (ho.min(hs - 1), wo.min(ws - 1));
        if (hc, wc) == (ho, wo) {
            nchw_to_nhwc_padded(dy, (cout, ho, wo), &mut xs, (hs, ws, kp), (1, 1), None, mask);
        } else {
            let mut crop = vec![0f32; b * cout * hc * wc];
            for (i, row) in crop.chunks_mut(wc).enumerate() {
                let (bc, y) = (i / hc, i % hc);
                let src = (bc * ho + y) * wo;
                for (x, o) in row.iter_mut().enumerate() {
                    let f = match mask {
                        Some((m, a)) if m[src + x] <= 0.0 => a,
                        _ => 1.0,
                    };
                    *o = dy[src + x] * f;
                }
            }
            nchw_to_nhwc_padded(&crop, (cout, hc, wc), &mut xs, (hs, ws, kp), (1, 1), None, None);
        }
        // k'(co' = (r, s, c), ci' = co, a, b) = W'[co][co'][1 - a][1 - b] = W[co][c][2 - 2a + r][2 - 2b + s]
        let taps = Taps {
            co_off: (0..4 * cin)
                .map(|k| {
                    let (phase, c) = (k / cin, k % cin);
                    (c * 16 + (phase / 2) * 4 + phase % 2 + 10) as isize
                })
                .collect(),
            ci_off: (0..cout).map(|co| (co * cin * 16) as isize).collect(),
            i_s: -8,
            j_s: -2,
        };
        let coutp = 4 * cin; // a multiple of 32
        let u = transform_weights::<F42>(w, &taps, coutp);
        let (rows, cols) = (8 * th, 8 * tw);
        let mut ys = take_scratch(b * rows * cols * cin);
        let output = Io::space_to_depth(rows, cols, cin);
        let p = Plan { batch: b, th, tw, k: cout, kp, coutp, input: Io::nhwc(hs, ws, kp), output };
        run::<F42>(&p, &xs, &u, &mut ys);
        nhwc_to_nchw(&ys, (rows, cols, cin), (g.pad.top, g.pad.left), dx, (cin, g.h, g.w), None);
        give_scratch(xs);
        give_scratch(u);
        give_scratch(ys);
    }
}
