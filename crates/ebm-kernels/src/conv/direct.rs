//! Direct stride-1 convolution for the few-channel ends of a network: the stem's forward pass (1-3 input
//! channels: an im2col product only `cin * kh * kw` deep is memory-bound) and its input gradient (1-3 output
//! channels: Winograd would pad them to a 16-wide panel).
//!
//! Each image is copied into a zero-padded scratch (with the optional input bias), then for every output row and
//! every 8 output pixels, up to 8 output channels accumulate in registers over all input channels and taps: one
//! vector load of input per tap, one FMA per output channel.

use super::gemm::simd_available;
use super::geom::ConvGeom;
use rayon::prelude::*;
use std::cell::RefCell;

/// Largest `cin * kh * kw` for which the forward pass runs directly.
pub const MAX_FORWARD_DEPTH: usize = 32;
/// Largest number of input channels for which the input gradient runs directly.
pub const MAX_GRAD_CHANNELS: usize = 4;

thread_local! {
    static PAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`forward`] handles this convolution.
pub fn forward_ok(g: &ConvGeom) -> bool {
    g.stride == 1 && g.kdim() <= MAX_FORWARD_DEPTH
}

/// Whether [`backward_input`] handles this convolution (its input gradient is a stride-1 convolution with
/// padding `k - 1 - p`, so the padding must be below the kernel size).
pub fn backward_input_ok(g: &ConvGeom) -> bool {
    let p = g.pad;
    g.stride == 1 && g.cin <= MAX_GRAD_CHANNELS && p.top.max(p.bottom) < g.kh && p.left.max(p.right) < g.kw
}

/// A stride-1 "valid" convolution of padded planes `[cin][hp][wpp]` into `[cout][ho][wo]`, with the kernel
/// arranged as `wt[group][ci][i][j][8]` (8 output channels per group, zeros past `cout`).
struct Direct {
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    /// Output columns computed (`wo` rounded up to 8).
    wo8: usize,
    hp: usize,
    /// Scratch row length (`wo8 + kw - 1`).
    wpp: usize,
    /// Leaky ReLU slope applied to the output.
    leaky: Option<f32>,
}

impl Direct {
    fn new(cin: usize, cout: usize, kh: usize, kw: usize, ho: usize, wo: usize) -> Self {
        let wo8 = wo.div_ceil(8) * 8;
        Self { cin, cout, kh, kw, ho, wo, wo8, hp: ho + kh - 1, wpp: wo8 + kw - 1, leaky: None }
    }

    fn groups(&self) -> usize {
        self.cout.div_ceil(8)
    }

    /// `k(co, ci, i, j)` arranged by groups of 8 output channels.
    fn arrange(&self, k: impl Fn(usize, usize, usize, usize) -> f32) -> Vec<f32> {
        let mut wt = vec![0f32; self.groups() * self.cin * self.kh * self.kw * 8];
        for co in 0..self.cout {
            for ci in 0..self.cin {
                for i in 0..self.kh {
                    for j in 0..self.kw {
                        let tap = (((co / 8) * self.cin + ci) * self.kh + i) * self.kw + j;
                        wt[tap * 8 + co % 8] = k(co, ci, i, j);
                    }
                }
            }
        }
        wt
    }

    /// Copies plane data `src` `[cin][h][w]` (+ `bias[ci]`, or times `m > 0 ? 1 : a` for `mask = (m, a)`) into
    /// the scratch at offset `(pt, pl)`, zeros elsewhere (data beyond the scratch is not needed by any output).
    #[allow(clippy::too_many_arguments)]
    fn pad(
        &self,
        src: &[f32],
        (h, w, pt, pl): (usize, usize, usize, usize),
        bias: Option<&[f32]>,
        mask: Option<(&[f32], f32)>,
        out: &mut [f32],
    ) {
        out.fill(0.0);
        for ci in 0..self.cin {
            let add = bias.map_or(0.0, |b| b[ci]);
            for y in 0..h.min(self.hp.saturating_sub(pt)) {
                let s = &src[(ci * h + y) * w..(ci * h + y + 1) * w];
                let d = &mut out[(ci * self.hp + y + pt) * self.wpp..(ci * self.hp + y + pt + 1) * self.wpp];
                let n = w.min(self.wpp.saturating_sub(pl));
                match mask {
                    None => {
                        for (o, v) in d[pl..pl + n].iter_mut().zip(&s[..n]) {
                            *o = v + add;
                        }
                    }
                    Some((m, a)) => {
                        let mrow = &m[(ci * h + y) * w..(ci * h + y + 1) * w];
                        for ((o, v), mv) in d[pl..pl + n].iter_mut().zip(&s[..n]).zip(mrow) {
                            *o = v * if *mv > 0.0 { 1.0 } else { a } + add;
                        }
                    }
                }
            }
        }
    }
}

/// One image: `xp` the padded planes, `y` the image's `[cout][ho][wo]` output.
#[inline(always)]
unsafe fn image_scalar(d: &Direct, xp: &[f32], wt: &[f32], y: &mut [f32]) {
    for grp in 0..d.groups() {
        for oy in 0..d.ho {
            for x0 in (0..d.wo8).step_by(8) {
                let mut acc = [[0f32; 8]; 8]; // [co lane][x lane]
                for ci in 0..d.cin {
                    for i in 0..d.kh {
                        let row = &xp[(ci * d.hp + oy + i) * d.wpp + x0..];
                        for j in 0..d.kw {
                            let tap = &wt[((((grp * d.cin + ci) * d.kh + i) * d.kw) + j) * 8..][..8];
                            for (a, wv) in acc.iter_mut().zip(tap) {
                                for (xl, av) in a.iter_mut().enumerate() {
                                    *av += wv * row[j + xl];
                                }
                            }
                        }
                    }
                }
                store(d, grp, oy, x0, &acc, y);
            }
        }
    }
}

#[inline(always)]
fn store(d: &Direct, grp: usize, oy: usize, x0: usize, acc: &[[f32; 8]; 8], y: &mut [f32]) {
    let n = 8.min(d.wo - x0.min(d.wo));
    for (l, a) in acc.iter().enumerate() {
        let co = grp * 8 + l;
        if co < d.cout && n > 0 {
            let dst = &mut y[(co * d.ho + oy) * d.wo + x0..][..n];
            match d.leaky {
                None => dst.copy_from_slice(&a[..n]),
                Some(s) => {
                    for (o, v) in dst.iter_mut().zip(a) {
                        *o = if *v > 0.0 { *v } else { v * s };
                    }
                }
            }
        }
    }
}

/// `G` output channels accumulate per group (`G = cout` below 5, else 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn image_avx<const G: usize>(d: &Direct, xp: &[f32], wt: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    for grp in 0..d.groups() {
        let wg = wt.as_ptr().add(grp * d.cin * d.kh * d.kw * 8);
        for oy in 0..d.ho {
            let mut x0 = 0;
            while x0 < d.wo8 {
                let mut acc = [_mm256_setzero_ps(); G];
                let mut tap = wg;
                for ci in 0..d.cin {
                    for i in 0..d.kh {
                        let row = xp.as_ptr().add((ci * d.hp + oy + i) * d.wpp + x0);
                        for j in 0..d.kw {
                            let v = _mm256_loadu_ps(row.add(j));
                            for (l, a) in acc.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(_mm256_broadcast_ss(&*tap.add(l)), v, *a);
                            }
                            tap = tap.add(8);
                        }
                    }
                }
                let mut out = [[0f32; 8]; 8];
                for (o, a) in out.iter_mut().zip(&acc) {
                    _mm256_storeu_ps(o.as_mut_ptr(), *a);
                }
                store(d, grp, oy, x0, &out, y);
                x0 += 8;
            }
        }
    }
}

/// Runs `d` on every image: `src(b)` gives the image's planes `[cin][h][w]`, `bias(b)` its input bias, `mask(b)`
/// its leaky-ReLU gradient mask.
#[allow(clippy::too_many_arguments)]
fn run<'a>(
    d: &Direct,
    batch: usize,
    src: impl Fn(usize) -> &'a [f32] + Sync,
    dims: (usize, usize, usize, usize),
    bias: impl Fn(usize) -> Option<&'a [f32]> + Sync,
    mask: impl Fn(usize) -> Option<(&'a [f32], f32)> + Sync,
    wt: &[f32],
    out: &mut [f32],
) {
    let img = d.cout * d.ho * d.wo;
    let simd = simd_available();
    out.par_chunks_mut(img).take(batch).enumerate().for_each(|(b, yb)| {
        PAD.with(|p| {
            let mut p = p.borrow_mut();
            let len = d.cin * d.hp * d.wpp;
            if p.len() < len {
                p.resize(len, 0.0);
            }
            d.pad(src(b), dims, bias(b), mask(b), &mut p[..len]);
            // SAFETY: the scratch holds cin x hp x wpp values, enough for every tap of every computed output;
            // SIMD only after the CPU check.
            unsafe {
                #[cfg(target_arch = "x86_64")]
                if simd {
                    let xp = &p[..len];
                    return match d.cout {
                        1 => image_avx::<1>(d, xp, wt, yb),
                        2 => image_avx::<2>(d, xp, wt, yb),
                        3 => image_avx::<3>(d, xp, wt, yb),
                        4 => image_avx::<4>(d, xp, wt, yb),
                        _ => image_avx::<8>(d, xp, wt, yb),
                    };
                }
                let _ = simd;
                image_scalar(d, &p[..len], wt, yb)
            }
        })
    });
}

/// `y = act(conv(x + bias, w))` for a shape of [`forward_ok`], `act` a leaky ReLU of slope `leaky` (or none).
pub fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, leaky: Option<f32>, y: &mut [f32]) {
    let (cin, kh, kw) = (g.cin, g.kh, g.kw);
    let d = Direct { leaky, ..Direct::new(cin, g.cout, kh, kw, g.ho(), g.wo()) };
    let wt = d.arrange(|co, ci, i, j| w[((co * cin + ci) * kh + i) * kw + j]);
    let img = cin * g.h * g.w;
    let bias_of = |b: usize| bias.map(|v| if v.len() == cin { v } else { &v[b * cin..(b + 1) * cin] });
    let dims = (g.h, g.w, g.pad.top, g.pad.left);
    run(&d, g.batch, |b| &x[b * img..(b + 1) * img], dims, bias_of, |_| None, &wt, y);
}

/// `dx = conv^T(dy . mask, w)` for a shape of [`backward_input_ok`]: the convolution of `dy` (times
/// `m > 0 ? 1 : a` for `mask = (m, a)`) with the flipped, transposed kernel and padding `k - 1 - p`.
pub fn backward_input(g: &ConvGeom, dy: &[f32], mask: Option<(&[f32], f32)>, w: &[f32], dx: &mut [f32]) {
    let (cin, cout, kh, kw) = (g.cin, g.cout, g.kh, g.kw);
    let (ho, wo) = (g.ho(), g.wo());
    let d = Direct::new(cout, cin, kh, kw, g.h, g.w);
    // k(co = original ci, ci = original co, i, j) = w[ci][co][kh - 1 - i][kw - 1 - j]
    let wt = d.arrange(|co, ci, i, j| w[((ci * cin + co) * kh + kh - 1 - i) * kw + kw - 1 - j]);
    let img = cout * ho * wo;
    let (pt, pl) = (kh - 1 - g.pad.top, kw - 1 - g.pad.left);
    let mask_of = |b: usize| mask.map(|(m, a)| (&m[b * img..(b + 1) * img], a));
    run(&d, g.batch, |b| &dy[b * img..(b + 1) * img], (ho, wo, pt, pl), |_| None, mask_of, &wt, dx);
}
