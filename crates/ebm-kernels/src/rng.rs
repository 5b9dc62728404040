//! A seeded random stream for everything the project draws on the host (weight initialisation, shuffles, replay
//! indices, initial chain noise), built on Philox so that its whole state is three integers that a checkpoint can
//! store and restore exactly.
//!
//! candle's own CPU generator cannot be seeded, so nothing on a reproducible path may call `Tensor::rand`/`randn`.

use crate::philox::{key_of, normal_pair_f32, philox4x32_10, uniform_f32, uniform_f64};
use rayon::prelude::*;

/// Streams with this bit set belong to [`Rng`]; Langevin noise uses step numbers below it, so the two never meet.
const HOST_STREAM_BIT: u64 = 1 << 63;

/// The complete state of an [`Rng`]: enough to resume the stream exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RngState {
    pub seed: u64,
    pub stream: u64,
    /// Number of 32-bit words already drawn.
    pub words: u64,
}

/// A reproducible stream of random numbers (Philox 4x32-10 in counter mode).
#[derive(Debug, Clone)]
pub struct Rng {
    seed: u64,
    stream: u64,
    key: [u32; 2],
    block: u64,
    buf: [u32; 4],
    pos: usize,
}

impl Rng {
    /// Stream 0 of `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_stream(seed, 0)
    }

    /// An independent stream of `seed`, for example one per consumer (data order, replay, initial noise).
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        Self::from_state(RngState { seed, stream, words: 0 })
    }

    /// Stream `base ^ stream_id(name)` of `seed`: one stream per named item of a family (for example one per
    /// out-of-distribution set, keyed by its name), each independent of the others.
    pub fn with_named_stream(seed: u64, base: u64, name: &str) -> Self {
        Self::with_stream(seed, base ^ stream_id(name))
    }

    /// A child stream derived from this one's seed: independent of it and of other labels.
    pub fn fork(&self, label: u64) -> Self {
        Self::with_stream(self.seed, self.stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ label.wrapping_add(1))
    }

    pub fn state(&self) -> RngState {
        RngState { seed: self.seed, stream: self.stream, words: self.block * 4 - (4 - self.pos) as u64 }
    }

    pub fn from_state(s: RngState) -> Self {
        let mut r =
            Rng { seed: s.seed, stream: s.stream, key: key_of(s.seed), block: s.words / 4, buf: [0; 4], pos: 4 };
        let within = (s.words % 4) as usize;
        if within != 0 {
            r.refill();
            r.pos = within;
        }
        r
    }

    fn counter(&self, block: u64) -> [u32; 4] {
        let stream = self.stream | HOST_STREAM_BIT;
        [block as u32, (block >> 32) as u32, stream as u32, (stream >> 32) as u32]
    }

    fn refill(&mut self) {
        self.buf = philox4x32_10(self.counter(self.block), self.key);
        self.block += 1;
        self.pos = 0;
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            self.refill();
        }
        let w = self.buf[self.pos];
        self.pos += 1;
        w
    }

    pub fn next_u64(&mut self) -> u64 {
        ((self.next_u32() as u64) << 32) | self.next_u32() as u64
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f32 {
        uniform_f32(self.next_u32())
    }

    /// Uniform in (0, 1) with 53 bits.
    pub fn uniform_f64(&mut self) -> f64 {
        let hi = self.next_u32();
        uniform_f64(hi, self.next_u32())
    }

    /// Standard normal (Box-Muller; each call uses two words).
    pub fn normal(&mut self) -> f32 {
        let a = self.next_u32();
        normal_pair_f32(a, self.next_u32()).0
    }

    /// Standard normal in double precision (each call uses four words).
    pub fn normal_f64(&mut self) -> f64 {
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        if n <= u32::MAX as u64 {
            let n32 = n as u32;
            let threshold = n32.wrapping_neg() % n32;
            loop {
                let m = self.next_u32() as u64 * n;
                if (m as u32) >= threshold {
                    return m >> 32;
                }
            }
        }
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let v = self.next_u64();
            if v <= zone {
                return v % n;
            }
        }
    }

    /// A uniformly random permutation in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }

    /// Reserves `n` words of the stream and returns the block they start at (whole blocks, for parallel fills).
    fn take_blocks(&mut self, n_words: usize) -> u64 {
        // Any partly used block is discarded so that bulk fills start on a block boundary.
        let start = self.block;
        self.pos = 4;
        self.block = start + n_words.div_ceil(4) as u64;
        start
    }

    /// Fills `out` with uniforms in (lo, hi), in parallel; the result does not depend on the thread count.
    pub fn fill_uniform(&mut self, out: &mut [f32], lo: f32, hi: f32) {
        let start = self.take_blocks(out.len());
        let (key, width) = (self.key, hi - lo);
        let this = &*self;
        out.par_chunks_mut(4 * 1024).enumerate().for_each(|(ci, chunk)| {
            for (bi, quad) in chunk.chunks_mut(4).enumerate() {
                let w = philox4x32_10(this.counter(start + (ci * 1024 + bi) as u64), key);
                for (o, wi) in quad.iter_mut().zip(w) {
                    *o = lo + width * uniform_f32(wi);
                }
            }
        });
    }

    /// Fills `out` with normals of mean `mean` and standard deviation `std`, in parallel.
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        let start = self.take_blocks(out.len());
        let key = self.key;
        let this = &*self;
        out.par_chunks_mut(4 * 1024).enumerate().for_each(|(ci, chunk)| {
            for (bi, quad) in chunk.chunks_mut(4).enumerate() {
                let w = philox4x32_10(this.counter(start + (ci * 1024 + bi) as u64), key);
                let (a, b) = normal_pair_f32(w[0], w[1]);
                let (c, d) = normal_pair_f32(w[2], w[3]);
                for (o, z) in quad.iter_mut().zip([a, b, c, d]) {
                    *o = mean + std * z;
                }
            }
        });
    }

    /// `n` uniforms in (lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut v = vec![0f32; n];
        self.fill_uniform(&mut v, lo, hi);
        v
    }

    /// `n` normals with the given mean and standard deviation.
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut v = vec![0f32; n];
        self.fill_normal(&mut v, mean, std);
        v
    }
}

/// A stable 64-bit id of a name (FNV-1a): the same on every platform and in every release, so streams keyed by
/// a name ([`Rng::with_named_stream`]) draw the same numbers everywhere.
pub fn stream_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_mid_block() {
        let mut a = Rng::new(42);
        for _ in 0..7 {
            a.next_u32();
        }
        let mut b = Rng::from_state(a.state());
        let xs: Vec<u32> = (0..9).map(|_| a.next_u32()).collect();
        let ys: Vec<u32> = (0..9).map(|_| b.next_u32()).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn bulk_fill_is_thread_count_independent() {
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| Rng::new(3).normal_vec(50_001, 0.0, 1.0))
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn below_is_unbiased_enough() {
        let mut r = Rng::new(1);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.below(3) as usize] += 1;
        }
        // each count ~ Binomial(30000, 1/3): sd ~ 82; allow 5 sd
        for c in counts {
            assert!((c as i64 - 10_000).abs() < 410, "{counts:?}");
        }
    }

    #[test]
    fn streams_differ() {
        assert_ne!(Rng::with_stream(1, 0).next_u64(), Rng::with_stream(1, 1).next_u64());
        assert_ne!(Rng::new(1).fork(0).next_u64(), Rng::new(1).fork(1).next_u64());
    }
}
