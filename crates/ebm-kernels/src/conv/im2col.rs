//! The general convolution path (any kernel size, stride, asymmetric padding): im2col straight into packed GEMM
//! panels for the forward pass and the weight gradient, GEMM then col2im for the input gradient.
//!
//! Every image is first copied into a zero-padded plane (`[cin][hp][wp]`, adding the optional per-example input
//! bias before the padding), so that every im2col element is `xpad[off_k[k] + base_p[p]]` without bounds checks.
//! Work is split over groups of images with rayon; small images are grouped so that each product has at least
//! [`MIN_COLS`] columns.

use super::gemm::{gemm_packed_a, PackedA, NR};
use super::geom::ConvGeom;
use rayon::prelude::*;
use std::cell::RefCell;

/// Columns (output pixels) per product below which images are grouped.
const MIN_COLS: usize = 96;
/// Columns of the input-gradient product materialised at once before col2im.
const DX_CHUNK: usize = 96;

thread_local! {
    static XPAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static TMP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Offsets of the im2col rows (`k = (ci, i, j)`) and columns (`p = (oy, ox)`) in a padded plane.
struct Offsets {
    k: Vec<usize>,
    p: Vec<usize>,
    /// Size of one padded image.
    plane: usize,
}

impl Offsets {
    fn new(g: &ConvGeom) -> Self {
        let (hp, wp) = (g.hp(), g.wp());
        let mut k = Vec::with_capacity(g.kdim());
        for ci in 0..g.cin {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    k.push(ci * hp * wp + i * wp + j);
                }
            }
        }
        let mut p = Vec::with_capacity(g.p());
        for oy in 0..g.ho() {
            for ox in 0..g.wo() {
                p.push(oy * g.stride * wp + ox * g.stride);
            }
        }
        Self { k, p, plane: g.cin * hp * wp }
    }
}

/// Images per product and the number of groups.
/// At most this many partial weight gradients are summed (each `cout x kdim` floats): enough tasks for 16
/// cores, a bounded amount of memory, and a summation order fixed by the geometry alone.
const MAX_WEIGHT_PARTIALS: usize = 16;

fn grouping(g: &ConvGeom) -> (usize, usize) {
    let per = MIN_COLS.div_ceil(g.p().max(1)).clamp(1, g.batch.max(1));
    (per, g.batch.div_ceil(per))
}

/// Writes images `[b0, b0 + nb)` of `x` (NCHW) zero-padded into `out` (`[nb][cin][hp][wp]`), adding `bias[b][ci]`
/// (`[batch, cin]`, or `[1, cin]` broadcast) to the data before the padding.
pub(crate) fn pad_images(g: &ConvGeom, x: &[f32], bias: Option<&[f32]>, b0: usize, nb: usize, out: &mut [f32]) {
    let (h, w, hp, wp) = (g.h, g.w, g.hp(), g.wp());
    let (pt, pl) = (g.pad.top, g.pad.left);
    out[..nb * g.cin * hp * wp].fill(0.0);
    for bi in 0..nb {
        let b = b0 + bi;
        for ci in 0..g.cin {
            let src = &x[(b * g.cin + ci) * h * w..][..h * w];
            let dst = &mut out[(bi * g.cin + ci) * hp * wp..][..hp * wp];
            let add = bias.map(|v| if v.len() == g.cin { v[ci] } else { v[b * g.cin + ci] }).unwrap_or(0.0);
            for y in 0..h {
                let d = &mut dst[(y + pt) * wp + pl..][..w];
                let s = &src[y * w..][..w];
                if add == 0.0 {
                    d.copy_from_slice(s);
                } else {
                    for (o, v) in d.iter_mut().zip(s) {
                        *o = v + add;
                    }
                }
            }
        }
    }
}

/// im2col of the padded images `xpad` (`nb` of them) into packed `B` panels: rows `[k0, k0 + kc)`, columns
/// `[j0, j0 + nc)` of the `K x (nb * P)` matrix.
#[allow(clippy::too_many_arguments)]
fn pack_cols(off: &Offsets, xpad: &[f32], np: usize, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
    let mut base = [0usize; NR];
    for (panel, jp) in (0..nc).step_by(NR).enumerate() {
        let wdt = NR.min(nc - jp);
        for (jj, bv) in base.iter_mut().enumerate().take(wdt) {
            let n = j0 + jp + jj;
            *bv = (n / np) * off.plane + off.p[n % np];
        }
        let contiguous = (1..wdt).all(|jj| base[jj] == base[0] + jj);
        let dst = &mut out[panel * NR * kc..(panel + 1) * NR * kc];
        for kk in 0..kc {
            let o = off.k[k0 + kk];
            let row = &mut dst[kk * NR..(kk + 1) * NR];
            if contiguous {
                row[..wdt].copy_from_slice(&xpad[o + base[0]..o + base[0] + wdt]);
            } else {
                for (r, bv) in row.iter_mut().zip(&base[..wdt]) {
                    *r = xpad[o + bv];
                }
            }
            row[wdt..].fill(0.0);
        }
    }
}

/// `y = act(conv(x + bias, w))`: `x` NCHW, `w` `[cout, cin, kh, kw]`, `y` `[batch, cout, ho, wo]`, `act` a leaky
/// ReLU of slope `leaky` (applied to each group's output while it is in cache) or none.
pub fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, leaky: Option<f32>, y: &mut [f32]) {
    let (kd, np, cout) = (g.kdim(), g.p(), g.cout);
    let pa = PackedA::new(cout, kd, w, kd, 1);
    let off = Offsets::new(g);
    let (per, ngroups) = grouping(g);
    let ysz = cout * np;
    y.par_chunks_mut(per * ysz).take(ngroups).enumerate().for_each(|(gi, yg)| {
        let b0 = gi * per;
        let nb = per.min(g.batch - b0);
        XPAD.with(|xp| {
            let mut xp = xp.borrow_mut();
            if xp.len() < nb * off.plane {
                xp.resize(nb * off.plane, 0.0);
            }
            pad_images(g, x, bias, b0, nb, &mut xp);
            let pack = |k0, kc, j0, nc, out: &mut [f32]| pack_cols(&off, &xp, np, k0, kc, j0, nc, out);
            if nb == 1 {
                gemm_packed_a(&pa, np, pack, yg, np, 1, false);
            } else {
                TMP.with(|t| {
                    let mut t = t.borrow_mut();
                    if t.len() < cout * nb * np {
                        t.resize(cout * nb * np, 0.0);
                    }
                    gemm_packed_a(&pa, nb * np, pack, &mut t, nb * np, 1, false);
                    for bi in 0..nb {
                        for co in 0..cout {
                            yg[bi * ysz + co * np..][..np].copy_from_slice(&t[co * nb * np + bi * np..][..np]);
                        }
                    }
                });
            }
            if let Some(a) = leaky {
                for v in yg.iter_mut() {
                    if *v <= 0.0 {
                        *v *= a;
                    }
                }
            }
        });
    });
}

/// `dx = conv^T(dy . mask, w)`, the input gradient (of `x + bias` as well); `mask = (m, a)` multiplies `dy` by
/// `m > 0 ? 1 : a` first.
pub fn backward_input(g: &ConvGeom, dy: &[f32], mask: Option<(&[f32], f32)>, w: &[f32], dx: &mut [f32]) {
    let (kd, np, cout) = (g.kdim(), g.p(), g.cout);
    // A = w^T: K x cout
    let pa = PackedA::new(kd, cout, w, 1, kd);
    let off = Offsets::new(g);
    let (per, ngroups) = grouping(g);
    let xsz = g.cin * g.h * g.w;
    let (hp, wp) = (g.hp(), g.wp());
    dx.par_chunks_mut(per * xsz).take(ngroups).enumerate().for_each(|(gi, dxg)| {
        let b0 = gi * per;
        let nb = per.min(g.batch - b0);
        let ncols = nb * np;
        XPAD.with(|xp| {
            TMP.with(|t| {
                let (mut xp, mut t) = (xp.borrow_mut(), t.borrow_mut());
                if xp.len() < nb * off.plane {
                    xp.resize(nb * off.plane, 0.0);
                }
                xp[..nb * off.plane].fill(0.0);
                let chunk = DX_CHUNK.min(ncols);
                if t.len() < kd * chunk {
                    t.resize(kd * chunk, 0.0);
                }
                // per column n: offset of dy[b0 + n / np][0][n % np] and of its patch in the padded planes
                let dy_off: Vec<usize> = (0..ncols).map(|n| (b0 + n / np) * cout * np + n % np).collect();
                let col_off: Vec<usize> = (0..ncols).map(|n| (n / np) * off.plane + off.p[n % np]).collect();
                for c0 in (0..ncols).step_by(chunk) {
                    let cc = chunk.min(ncols - c0);
                    // B(co, n) = dy[b0 + n / np][co][n % np]
                    let pack = |k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]| {
                        for (panel, jp) in (0..nc).step_by(NR).enumerate() {
                            let wdt = NR.min(nc - jp);
                            let cols = &dy_off[c0 + j0 + jp..c0 + j0 + jp + wdt];
                            let dst = &mut out[panel * NR * kc..(panel + 1) * NR * kc];
                            for kk in 0..kc {
                                let row = &mut dst[kk * NR..(kk + 1) * NR];
                                let co = (k0 + kk) * np;
                                match mask {
                                    None => {
                                        for (r, &o) in row.iter_mut().zip(cols) {
                                            *r = dy[o + co];
                                        }
                                    }
                                    Some((m, a)) => {
                                        for (r, &o) in row.iter_mut().zip(cols) {
                                            *r = dy[o + co] * if m[o + co] > 0.0 { 1.0 } else { a };
                                        }
                                    }
                                }
                                row[wdt..].fill(0.0);
                            }
                        }
                    };
                    gemm_packed_a(&pa, cc, pack, &mut t, cc, 1, false);
                    // col2im
                    let cols = &col_off[c0..c0 + cc];
                    for (k, &ok) in off.k.iter().enumerate() {
                        let trow = &t[k * cc..(k + 1) * cc];
                        let xk = &mut xp[ok..];
                        for (v, &o) in trow.iter().zip(cols) {
                            xk[o] += v;
                        }
                    }
                }
                // crop
                let (pt, pl) = (g.pad.top, g.pad.left);
                for bi in 0..nb {
                    for ci in 0..g.cin {
                        let src = &xp[bi * off.plane + ci * hp * wp..];
                        let dst = &mut dxg[(bi * g.cin + ci) * g.h * g.w..][..g.h * g.w];
                        for y in 0..g.h {
                            dst[y * g.w..(y + 1) * g.w].copy_from_slice(&src[(y + pt) * wp + pl..][..g.w]);
                        }
                    }
                }
            });
        });
    });
}

/// `dw = sum_b dy[b] * im2col(x[b] + bias)^T`, the weight gradient `[cout, cin, kh, kw]`.
pub fn backward_weight(g: &ConvGeom, x: &[f32], dy: &[f32], bias: Option<&[f32]>, dw: &mut [f32]) {
    let (kd, np, cout) = (g.kdim(), g.p(), g.cout);
    let off = Offsets::new(g);
    let (per, ngroups) = grouping(g);
    // Each task sums a fixed run of groups and the partial sums are added in order, so the result does not depend
    // on the thread count or on how rayon splits the work (a `fold`/`reduce` would: float addition is not
    // associative, and a resumed run must repeat its gradients bit for bit).
    let span = ngroups.div_ceil(MAX_WEIGHT_PARTIALS).max(1);
    let partials: Vec<Vec<f32>> = (0..ngroups.div_ceil(span))
        .into_par_iter()
        .map(|blk| {
            let mut acc = vec![0f32; cout * kd];
            for gi in blk * span..((blk + 1) * span).min(ngroups) {
                let b0 = gi * per;
                let nb = per.min(g.batch - b0);
                // A(co, n) = dy[b0 + n / np][co][n % np]
                let pa = if nb == 1 {
                    PackedA::new(cout, np, &dy[b0 * cout * np..(b0 + 1) * cout * np], np, 1)
                } else {
                    let mut a = vec![0f32; cout * nb * np];
                    for bi in 0..nb {
                        for co in 0..cout {
                            let src = &dy[((b0 + bi) * cout + co) * np..][..np];
                            a[co * nb * np + bi * np..][..np].copy_from_slice(src);
                        }
                    }
                    PackedA::new(cout, nb * np, &a, nb * np, 1)
                };
                XPAD.with(|xp| {
                    let mut xp = xp.borrow_mut();
                    if xp.len() < nb * off.plane {
                        xp.resize(nb * off.plane, 0.0);
                    }
                    pad_images(g, x, bias, b0, nb, &mut xp);
                    // B(n, k) = im2col(k, n)
                    let pack = |n0: usize, nn: usize, k0: usize, kc: usize, out: &mut [f32]| {
                        for (panel, kp) in (0..kc).step_by(NR).enumerate() {
                            let wdt = NR.min(kc - kp);
                            let dst = &mut out[panel * NR * nn..(panel + 1) * NR * nn];
                            let ks = &off.k[k0 + kp..k0 + kp + wdt];
                            for r in 0..nn {
                                let n = n0 + r;
                                let base = (n / np) * off.plane + off.p[n % np];
                                let row = &mut dst[r * NR..(r + 1) * NR];
                                for (o, &ok) in row.iter_mut().zip(ks) {
                                    *o = xp[base + ok];
                                }
                                row[wdt..].fill(0.0);
                            }
                        }
                    };
                    gemm_packed_a(&pa, kd, pack, &mut acc, kd, 1, true);
                });
            }
            acc
        })
        .collect();
    dw.fill(0.0);
    for p in &partials {
        dw.iter_mut().zip(p).for_each(|(x, y)| *x += y);
    }
}
