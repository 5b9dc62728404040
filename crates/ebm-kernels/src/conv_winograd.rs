//! Winograd F(4x4, 3x3) convolution for 3x3 stride-1 kernels (Lavin & Gray 2016, points 0, +-1, +-2).
//!
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A` per 4x4 output tile: each tile needs its 6x6 input patch `d`, and the 36
//! elementwise products over all channel pairs become 36 GEMMs `M_xi (tiles x cout) = V_xi (tiles x cin) *
//! U_xi (cin x cout)`, a 4x reduction of multiplies against the direct convolution.
//!
//! Layout. The input is copied once into a zero-padded NHWC scratch (channels innermost, rounded up to 8) so that
//! every transform works on 8-channel vectors without bounds checks; the input bias, when given, is added there
//! (before the padding, as the official `conv_block` does). Tiles are processed in chunks of [`chunk_tiles`]
//! per rayon task: the input transform writes `V[t][xi][cin]` for the chunk, the microkernel of
//! [`crate::conv_gemm`] multiplies rows of 6 tiles by 16-wide panels of the transformed weights
//! `U[xi][cout / 16][cin][16]` into `M[t][xi][cout]`, and the output transform writes NHWC tiles that one final
//! pass transposes back to NCHW.

use crate::conv::{ConvGeom, ConvPad};
use crate::conv_gemm::{microkernel, simd_available, MR, NR};
use crate::conv_layout::{give_scratch, nchw_to_nhwc_padded, nhwc_to_nchw, take_scratch};
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows of the transformed products.
const XI: usize = 36;

thread_local! {
    static V_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static M_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// One Winograd convolution: `cin -> cout` channels, 3x3, stride 1, output `ho x wo`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    g: ConvGeom,
    th: usize,
    tw: usize,
    cinp: usize,
    coutp: usize,
    /// Padded NHWC scratch height and width (`4 th + 2`, `4 tw + 2`).
    hs: usize,
    ws: usize,
}

impl Plan {
    fn new(g: &ConvGeom) -> Self {
        let (th, tw) = (g.ho().div_ceil(4), g.wo().div_ceil(4));
        Self { g: *g, th, tw, cinp: round_up(g.cin, 8), coutp: round_up(g.cout, NR), hs: 4 * th + 2, ws: 4 * tw + 2 }
    }
    fn tiles(&self) -> usize {
        self.g.batch * self.th * self.tw
    }
}

/// Tiles per rayon task: about 64 (so that the transformed weights streamed per task are amortised over many
/// tiles), fewer when that would leave a thread idle; always a multiple of [`MR`].
fn chunk_tiles(tiles: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let target = 60usize;
    let balanced = tiles.div_ceil(2 * threads);
    round_up(target.min(balanced).max(1), MR)
}

/// Where tap `(co, ci, i, j)` of a 3x3 kernel lives: `base + co * co_s + ci * ci_s + i * i_s + j * j_s` (negative
/// strides describe the flipped kernel of the input gradient).
#[derive(Debug, Clone, Copy)]
struct Taps {
    base: isize,
    co_s: isize,
    ci_s: isize,
    i_s: isize,
    j_s: isize,
}

impl Taps {
    /// `w[co][ci][i][j]` of a `[cout, cin, 3, 3]` kernel.
    fn forward(cin: usize) -> Self {
        Self { base: 0, co_s: 9 * cin as isize, ci_s: 9, i_s: 3, j_s: 1 }
    }

    /// The kernel of the transposed convolution of a `[cout0, cin0, 3, 3]` kernel `w`:
    /// `k(co, ci, i, j) = w[ci][co][2 - i][2 - j]` (`co` ranges over `cin0`, `ci` over `cout0`).
    fn transposed(cin0: usize) -> Self {
        Self { base: 8, co_s: 9, ci_s: 9 * cin0 as isize, i_s: -3, j_s: -1 }
    }
}

/// `G v` for one column `v` of three taps: six values.
#[inline(always)]
fn gcol<L: Lanes>(v: [L; 3]) -> [L; 6] {
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

/// Transforms panel `p` (output channels `[16 p, 16 p + 16)`) of the kernel into `u`, 8 output channels per
/// vector: `U[xi][p][ci][co % 16] = (G g G^T)[xi]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_panel<L: Lanes>(w: &[f32], t: Taps, cin: usize, cout: usize, panels: usize, p: usize, u: *mut f32) {
    for ci in 0..cin {
        for half in 0..NR / 8 {
            let co0 = p * NR + half * 8;
            // taps of 8 output channels (zeros past cout)
            let mut g = [[0f32; 8]; 9];
            for lane in 0..8usize.min(cout.saturating_sub(co0)) {
                let off = t.base + (co0 + lane) as isize * t.co_s + ci as isize * t.ci_s;
                for (ij, tap) in g.iter_mut().enumerate() {
                    let (i, j) = ((ij / 3) as isize, (ij % 3) as isize);
                    tap[lane] = w[(off + i * t.i_s + j * t.j_s) as usize];
                }
            }
            // T = G g: column j of g -> six rows (no closures: they would not inherit the target features)
            let c0 = gcol([L::load(g[0].as_ptr()), L::load(g[3].as_ptr()), L::load(g[6].as_ptr())]);
            let c1 = gcol([L::load(g[1].as_ptr()), L::load(g[4].as_ptr()), L::load(g[7].as_ptr())]);
            let c2 = gcol([L::load(g[2].as_ptr()), L::load(g[5].as_ptr()), L::load(g[8].as_ptr())]);
            for r in 0..6 {
                let row = gcol([c0[r], c1[r], c2[r]]);
                for (s, v) in row.iter().enumerate() {
                    let xi = r * 6 + s;
                    v.store(u.add(((xi * panels + p) * cin + ci) * NR + half * 8));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_panel_avx(w: &[f32], t: Taps, cin: usize, cout: usize, panels: usize, p: usize, u: *mut f32) {
    weight_panel::<avx::Avx8>(w, t, cin, cout, panels, p, u)
}

/// The transformed kernel of the convolution `cout x cin` whose taps `t` locates in `w`, packed as the
/// microkernel's `B` panels: `U[xi][co / NR][ci][co % NR]`, zero for `co >= cout`.
fn transform_weights(w: &[f32], t: Taps, cin: usize, cout: usize, coutp: usize) -> Vec<f32> {
    let panels = coutp / NR;
    let mut u = take_scratch(XI * coutp * cin);
    let ptr = SendPtr(u.as_mut_ptr());
    let simd = simd_available();
    (0..panels).into_par_iter().for_each(|p| {
        let ptr = &ptr;
        // SAFETY: panel p writes only the `[xi][p]` blocks; the tap offsets stay inside `w` (checked by the
        // callers' length checks).
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if simd {
                return weight_panel_avx(w, t, cin, cout, panels, p, ptr.0);
            }
            let _ = simd;
            weight_panel::<Scalar8>(w, t, cin, cout, panels, p, ptr.0)
        }
    });
    u
}

/// 8-lane vectors: AVX2 when available, plain arrays otherwise (the same transform code runs on both).
trait Lanes: Copy {
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
    // run-time check in `conv_gemm::simd_available`.
    impl Lanes for Avx8 {
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

/// `B^T d` along one axis: six inputs to six outputs.
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

/// `A^T m` along one axis: six inputs to four outputs.
#[inline(always)]
fn at<L: Lanes>(m: [L; 6]) -> [L; 4] {
    let s12 = m[1].add(m[2]);
    let d12 = m[1].sub(m[2]);
    let s34 = m[3].add(m[4]);
    let d34 = m[3].sub(m[4]);
    [m[0].add(s12).add(s34), d34.fma(2.0, d12), s34.fma(4.0, s12), d34.fma(8.0, d12).add(m[5])]
}

/// Input transform of tiles `[t0, t0 + n)` into `v[t - t0][xi][cinp]`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn input_transform<L: Lanes>(p: &Plan, xs: &[f32], t0: usize, n: usize, v: &mut [f32]) {
    let (cinp, hs, ws) = (p.cinp, p.hs, p.ws);
    let per_img = p.th * p.tw;
    for ti in 0..n {
        let t = t0 + ti;
        let (b, r) = (t / per_img, t % per_img);
        let (ty, tx) = (r / p.tw, r % p.tw);
        let base = xs.as_ptr().add(((b * hs + 4 * ty) * ws + 4 * tx) * cinp);
        let out = v.as_mut_ptr().add(ti * XI * cinp);
        for c in (0..cinp).step_by(8) {
            // rows: B^T along the patch's columns, for each of its 6 rows
            let mut rows = [[L::load(base); 6]; 6];
            for (i, row) in rows.iter_mut().enumerate() {
                let rp = base.add(i * ws * cinp + c);
                let d = [
                    L::load(rp),
                    L::load(rp.add(cinp)),
                    L::load(rp.add(2 * cinp)),
                    L::load(rp.add(3 * cinp)),
                    L::load(rp.add(4 * cinp)),
                    L::load(rp.add(5 * cinp)),
                ];
                *row = bt(d);
            }
            // columns: B^T along the rows
            for s in 0..6 {
                let col = bt([rows[0][s], rows[1][s], rows[2][s], rows[3][s], rows[4][s], rows[5][s]]);
                for (r, val) in col.iter().enumerate() {
                    val.store(out.add((r * 6 + s) * cinp + c));
                }
            }
        }
    }
}

/// Output transform of the products `m[t - t0][xi][coutp]` into the NHWC tile scratch.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn output_transform<L: Lanes>(p: &Plan, m: &[f32], t0: usize, n: usize, ys: &mut [f32]) {
    let coutp = p.coutp;
    let (hs, ws) = (4 * p.th, 4 * p.tw);
    let per_img = p.th * p.tw;
    for ti in 0..n {
        let t = t0 + ti;
        let (b, r) = (t / per_img, t % per_img);
        let (ty, tx) = (r / p.tw, r % p.tw);
        let src = m.as_ptr().add(ti * XI * coutp);
        let dst = ys.as_mut_ptr().add(((b * hs + 4 * ty) * ws + 4 * tx) * coutp);
        for c in (0..coutp).step_by(8) {
            let mut rows = [[L::load(src); 4]; 6];
            for (i, row) in rows.iter_mut().enumerate() {
                let q = src.add(i * 6 * coutp + c);
                let mm = [
                    L::load(q),
                    L::load(q.add(coutp)),
                    L::load(q.add(2 * coutp)),
                    L::load(q.add(3 * coutp)),
                    L::load(q.add(4 * coutp)),
                    L::load(q.add(5 * coutp)),
                ];
                *row = at(mm);
            }
            for s in 0..4 {
                let col = at([rows[0][s], rows[1][s], rows[2][s], rows[3][s], rows[4][s], rows[5][s]]);
                for (r, val) in col.iter().enumerate() {
                    val.store(dst.add((r * ws + s) * coutp + c));
                }
            }
        }
    }
}

/// One chunk: input transform, the 36 products, output transform. `v` and `m` hold at least
/// `round_up(n, MR) * XI * cinp` and `... * coutp` values. No closures here: this body is inlined into the
/// `target_feature` entry point, and closures would not inherit its features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<L: Lanes>(
    p: &Plan,
    xs: &[f32],
    u: &[f32],
    t0: usize,
    n: usize,
    v: &mut [f32],
    m: &mut [f32],
    ys: &mut [f32],
) {
    let (cin, cinp, coutp) = (p.g.cin, p.cinp, p.coutp);
    let np = round_up(n, MR);
    input_transform::<L>(p, xs, t0, n, v);
    let panels = coutp / NR;
    for xi in 0..XI {
        for panel in 0..panels {
            let bp = u.as_ptr().add((xi * panels + panel) * cin * NR);
            for tb in (0..np).step_by(MR) {
                microkernel(
                    cin,
                    v.as_ptr().add((tb * XI + xi) * cinp),
                    XI * cinp,
                    1,
                    bp,
                    NR,
                    m.as_mut_ptr().add((tb * XI + xi) * coutp + panel * NR),
                    XI * coutp,
                    1,
                    false,
                    MR,
                    NR,
                );
            }
        }
    }
    output_transform::<L>(p, m, t0, n, ys);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx(
    p: &Plan,
    xs: &[f32],
    u: &[f32],
    t0: usize,
    n: usize,
    v: &mut [f32],
    m: &mut [f32],
    ys: &mut [f32],
) {
    chunk::<avx::Avx8>(p, xs, u, t0, n, v, m, ys)
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The convolution of `p` with the transformed weights `u`, writing NCHW `y`.
fn run(p: &Plan, x: &[f32], bias: Option<&[f32]>, u: &[f32], y: &mut [f32]) {
    let g = &p.g;
    let mut xs = take_scratch(g.batch * p.hs * p.ws * p.cinp);
    nchw_to_nhwc_padded(x, (g.cin, g.h, g.w), &mut xs, (p.hs, p.ws, p.cinp), (g.pad.top, g.pad.left), bias);
    let ys_len = g.batch * 16 * p.th * p.tw * p.coutp;
    let mut ys = take_scratch(ys_len);
    let tiles = p.tiles();
    let ct = chunk_tiles(tiles);
    let ptr = SendPtr(ys.as_mut_ptr());
    let simd = simd_available();
    let (vlen, mlen) = (round_up(ct, MR) * XI * p.cinp, round_up(ct, MR) * XI * p.coutp);
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
                // SAFETY: tiles of different chunks write disjoint 4x4 blocks of the scratch; every buffer is
                // sized by the plan; SIMD only after the CPU check.
                unsafe {
                    let ys = std::slice::from_raw_parts_mut(ptr.0, ys_len);
                    #[cfg(target_arch = "x86_64")]
                    if simd {
                        return chunk_avx(p, &xs, u, t0, n, &mut v, &mut m, ys);
                    }
                    let _ = simd;
                    chunk::<Scalar8>(p, &xs, u, t0, n, &mut v, &mut m, ys)
                }
            })
        })
    });
    nhwc_to_nchw(&ys, (4 * p.th, 4 * p.tw, p.coutp), y, (g.cout, g.ho(), g.wo()));
    give_scratch(xs);
    give_scratch(ys);
}

/// `y = conv(x + bias, w)` for a 3x3 stride-1 convolution.
pub fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    debug_assert!(g.kh == 3 && g.kw == 3 && g.stride == 1);
    let p = Plan::new(g);
    let cin = g.cin;
    let u = transform_weights(w, Taps::forward(cin), cin, g.cout, p.coutp);
    run(&p, x, bias, &u, y);
    give_scratch(u);
}

/// `dx = conv^T(dy, w)`: the convolution of `dy` with the flipped, transposed kernel and padding `2 - p`.
pub fn backward_input(g: &ConvGeom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let pad = g.pad;
    let gt = ConvGeom {
        batch: g.batch,
        cin: g.cout,
        h: g.ho(),
        w: g.wo(),
        cout: g.cin,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: ConvPad { top: 2 - pad.top, bottom: 2 - pad.bottom, left: 2 - pad.left, right: 2 - pad.right },
    };
    debug_assert_eq!((gt.ho(), gt.wo()), (g.h, g.w));
    let p = Plan::new(&gt);
    let (cin0, cout0) = (g.cin, g.cout);
    let u = transform_weights(w, Taps::transposed(cin0), cout0, cin0, p.coutp);
    run(&p, dy, None, &u, dx);
    give_scratch(u);
}
