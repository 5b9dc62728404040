//! Philox 4x32-10, the counter-based generator of Salmon et al. (SC'11, "Parallel random numbers: as easy as
//! 1, 2, 3"), and the conversions from its 32-bit words to uniform and normal variates.
//!
//! A counter-based generator is a pure function of (key, counter): the `i`-th noise value of a Langevin step can
//! be computed by whichever thread (or GPU lane) owns element `i`, so results never depend on how work is split.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox 4x32 with 10 rounds: four pseudo-random words from a 128-bit counter and a 64-bit key.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    c = round(c, k);
    for _ in 1..10 {
        k[0] = k[0].wrapping_add(W0);
        k[1] = k[1].wrapping_add(W1);
        c = round(c, k);
    }
    c
}

/// The key for a 64-bit seed.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The counter of block `block` (four consecutive elements) of stream `stream` (for instance a Langevin step).
#[inline]
pub fn counter_of(stream: u64, block: u64) -> [u32; 4] {
    [block as u32, (block >> 32) as u32, stream as u32, (stream >> 32) as u32]
}

/// A uniform in the open interval (0, 1) from 23 random bits: `((w >> 9) + 1/2) * 2^-23`, exact in f32.
#[inline(always)]
pub fn uniform_f32(w: u32) -> f32 {
    ((w >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// A uniform in the open interval (0, 1) from 52 random bits of two words, exact in f64.
#[inline(always)]
pub fn uniform_f64(hi: u32, lo: u32) -> f64 {
    let bits = (((hi as u64) << 32) | lo as u64) >> 12;
    (bits as f64 + 0.5) * (1.0 / 4_503_599_627_370_496.0)
}

/// Natural logarithm for positive normal `x`, from the exponent bits and a series in `s = (m - 1) / (m + 1)` for
/// the mantissa `m` reduced to [0.707, 1.414): relative error below 3e-7 (absolute below 1e-7 near 1). Plain f32
/// arithmetic in a fixed order (no fused multiply-add), so any device that follows the same steps gets the same bits.
#[inline(always)]
pub fn ln_unit(x: f32) -> f32 {
    let bits = x.to_bits();
    // the mantissa of x * sqrt(2) decides whether m goes to [0.707, 1) with the next exponent
    let big = (bits & 0x007f_ffff) > 0x0035_04f3;
    let e = ((bits >> 23) & 0xff) as i32 - 127 + big as i32;
    let m = f32::from_bits((bits & 0x007f_ffff) | if big { 0x3f00_0000 } else { 0x3f80_0000 });
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let poly = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
    e as f32 * std::f32::consts::LN_2 + 2.0 * s * poly
}

/// `(cos 2 pi u, sin 2 pi u)` for `u` in [0, 1): reduction to the nearest quarter turn, then Taylor polynomials on
/// [-pi/4, pi/4] (error below 4e-7). Same arithmetic contract as [`ln_unit`].
#[inline(always)]
pub fn cos_sin_turn(u: f32) -> (f32, f32) {
    // nearest quarter turn (truncation is floor here: the argument is positive); branch-free so loops vectorise
    let q = (4.0 * u + 0.5) as i32;
    let a = std::f32::consts::TAU * (u - 0.25 * q as f32);
    let a2 = a * a;
    let s = a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0))));
    let c = 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0 * (1.0 - a2 / 56.0 * (1.0 - a2 / 90.0))));
    // rotate (c, s) by q quarter turns: q = 1 -> (-s, c), 2 -> (-c, -s), 3 -> (s, -c)
    let odd = q & 1 == 1;
    let (x, y) = if odd { (s, c) } else { (c, s) };
    let neg_x = (q & 3) == 1 || (q & 3) == 2;
    let neg_y = (q & 2) == 2;
    (if neg_x { -x } else { x }, if neg_y { -y } else { y })
}

/// Two independent standard normals from two words (Box-Muller, single precision).
#[inline(always)]
pub fn normal_pair_f32(w0: u32, w1: u32) -> (f32, f32) {
    let r = (-2.0 * ln_unit(uniform_f32(w0))).sqrt();
    let (c, s) = cos_sin_turn(uniform_f32(w1));
    (r * c, r * s)
}

/// Four standard normals for element block `block` of stream `stream` under `key`.
///
/// Element `i` of a tensor takes lane `i % 4` of block `i / 4`: this is the contract a GPU kernel must follow to
/// draw the same numbers.
#[inline(always)]
pub fn normal4(key: [u32; 2], stream: u64, block: u64) -> [f32; 4] {
    let w = philox4x32_10(counter_of(stream, block), key);
    let (a, b) = normal_pair_f32(w[0], w[1]);
    let (c, d) = normal_pair_f32(w[2], w[3]);
    [a, b, c, d]
}

/// Normals of blocks `first_block..first_block + N` of `stream`, lane-interleaved like [`normal4`]: written as
/// separate loops over arrays so that the compiler vectorises the Philox rounds and the Box-Muller transform.
// index loops over the lanes on purpose: they are what the vectoriser turns into SIMD rounds
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub fn normal_blocks<const N: usize>(key: [u32; 2], stream: u64, first_block: u64, out: &mut [f32]) {
    let mut c = [[0u32; N]; 4];
    for i in 0..N {
        let ctr = counter_of(stream, first_block + i as u64);
        for j in 0..4 {
            c[j][i] = ctr[j];
        }
    }
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        for i in 0..N {
            let (hi0, lo0) = mulhilo(M0, c[0][i]);
            let (hi1, lo1) = mulhilo(M1, c[2][i]);
            let (c1, c3) = (c[1][i], c[3][i]);
            c[0][i] = hi1 ^ c1 ^ k[0];
            c[1][i] = lo1;
            c[2][i] = hi0 ^ c3 ^ k[1];
            c[3][i] = lo0;
        }
    }
    let mut z = [[0f32; N]; 4];
    for pair in 0..2 {
        for i in 0..N {
            let (a, b) = normal_pair_f32(c[2 * pair][i], c[2 * pair + 1][i]);
            z[2 * pair][i] = a;
            z[2 * pair + 1][i] = b;
        }
    }
    for (i, quad) in out.chunks_mut(4).enumerate().take(N) {
        for (j, o) in quad.iter_mut().enumerate() {
            *o = z[j][i];
        }
    }
}

/// Fills `out` with the standard normals of elements `offset..offset + out.len()` of stream `stream`.
pub fn fill_normal(seed: u64, stream: u64, offset: u64, out: &mut [f32]) {
    let key = key_of(seed);
    let mut i = 0usize;
    while i < out.len() {
        let e = offset + i as u64;
        let (block, lane) = (e / 4, (e % 4) as usize);
        let z = normal4(key, stream, block);
        let take = (4 - lane).min(out.len() - i);
        out[i..i + take].copy_from_slice(&z[lane..lane + take]);
        i += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123 (kat_vectors, "philox4x32 10" lines).
    #[test]
    fn random123_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            ([0; 4], [0; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
            ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (ctr, key, want) in cases {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:08x?} key {key:08x?}");
        }
    }

    #[test]
    fn fill_normal_is_independent_of_offset_split() {
        let mut whole = vec![0f32; 37];
        fill_normal(7, 3, 5, &mut whole);
        let mut parts = vec![0f32; 37];
        let (a, b) = parts.split_at_mut(10);
        fill_normal(7, 3, 5, a);
        fill_normal(7, 3, 15, b);
        assert_eq!(whole, parts);
    }

    #[test]
    fn vectorised_blocks_equal_single_blocks() {
        let key = key_of(99);
        let mut a = [0f32; 64];
        normal_blocks::<16>(key, 5, 1000, &mut a);
        for q in 0..16 {
            assert_eq!(&a[4 * q..4 * q + 4], &normal4(key, 5, 1000 + q as u64)[..]);
        }
    }

    #[test]
    fn fast_math_matches_libm() {
        let mut worst_ln = 0f64;
        let mut worst_trig = 0f64;
        for i in 0..200_000u32 {
            let u = uniform_f32(i.wrapping_mul(2_654_435_761));
            let l = ln_unit(u) as f64;
            let want = (u as f64).ln();
            worst_ln = worst_ln.max((l - want).abs() / want.abs().max(0.3));
            let (c, s) = cos_sin_turn(u);
            let t = std::f64::consts::TAU * u as f64;
            worst_trig = worst_trig.max((c as f64 - t.cos()).abs()).max((s as f64 - t.sin()).abs());
        }
        assert!(worst_ln < 5e-7, "ln error {worst_ln} (relative, absolute below |ln| = 0.3)");
        assert!(worst_trig < 1e-6, "sin/cos error {worst_trig}");
    }

    #[test]
    fn uniforms_stay_inside_the_open_interval() {
        assert!(uniform_f32(0) > 0.0 && uniform_f32(u32::MAX) < 1.0);
        assert!(uniform_f64(0, 0) > 0.0 && uniform_f64(u32::MAX, u32::MAX) < 1.0);
    }
}
