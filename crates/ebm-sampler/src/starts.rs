//! Where chains start and how batches of fresh chains are run: uniform noise in a box, a pool of earlier chain
//! states mixed with noise (the IGEBM replay buffer), chains under every class label, and long runs of chains in
//! chunks that fit in memory.
//!
//! Every draw comes from the [`Rng`] passed in, in a documented order, so that callers that keep a stream per
//! purpose get the same numbers run after run.

use crate::{Energy, Langevin};
use candle_core::{DType, Device, Result, Tensor};
use ebm_kernels::Rng;

/// `n` samples of `shape` drawn uniformly in `range` (the starts of fresh chains), `[n, ...shape]`: `n * prod(shape)`
/// uniform draws from `rng`, row-major.
pub fn uniform(n: usize, shape: &[usize], range: [f32; 2], rng: &mut Rng, device: &Device) -> Result<Tensor> {
    let per: usize = shape.iter().product();
    let dims: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    Tensor::from_vec(rng.uniform_vec(n * per, range[0], range[1]), dims, device)
}

/// One-hot rows `[B, n]` (f32) for integer labels `[B]`; labels outside `0..n` are an error.
pub fn one_hot(labels: &Tensor, n: usize) -> Result<Tensor> {
    let l = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let mut v = vec![0f32; l.len() * n];
    for (i, &c) in l.iter().enumerate() {
        if c < 0 || c as usize >= n {
            candle_core::bail!("label {c} at position {i} is outside 0..{n}");
        }
        v[i * n + c as usize] = 1.0;
    }
    Tensor::from_vec(v, (l.len(), n), labels.device())
}

/// A store of earlier chain states that new chains may restart from (a replay buffer).
pub trait ChainPool {
    /// States held.
    fn len(&self) -> usize;

    /// Whether the pool holds no state.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` states drawn with replacement, `[n, ...]`, and their stored conditions `[n, D]` (`None` when the pool
    /// keeps none).
    fn draw(&self, n: usize, rng: &mut Rng, device: &Device) -> Result<(Tensor, Option<Tensor>)>;
}

/// The starts of `b` chains and their conditions: states from `pool` under their stored conditions, except a
/// fraction `reinit_prob` (drawn per chain) that start from uniform noise in `range` under the batch's conditions
/// `cond`; all from noise while the pool holds fewer than `b` states.
///
/// Draws, in order: the noise ([`uniform`]), then (once the pool is full enough) the pool's draw and one uniform
/// per chain deciding whether it restarts.
#[allow(clippy::too_many_arguments)] // the pool, its mixing rate and the batch it serves, each named at the call
pub fn replay_mixed<P: ChainPool + ?Sized>(
    pool: &P,
    rng: &mut Rng,
    b: usize,
    shape: &[usize],
    range: [f32; 2],
    cond: Option<&Tensor>,
    reinit_prob: f64,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let noise = uniform(b, shape, range, rng, device)?;
    if pool.len() < b {
        return Ok((noise, cond.cloned()));
    }
    let (xr, cr) = pool.draw(b, rng, device)?;
    let keep: Vec<u8> = (0..b).map(|_| (rng.uniform_f64() >= reinit_prob) as u8).collect();
    let keep = Tensor::from_vec(keep, b, device)?;
    let mut kshape = vec![b];
    kshape.extend(std::iter::repeat_n(1, shape.len()));
    let x0 = keep.reshape(kshape.as_slice())?.broadcast_as(noise.shape())?.where_cond(&xr, &noise)?;
    let c = match (cr, cond) {
        (Some(cr), Some(cp)) => Some(keep.reshape((b, 1))?.broadcast_as(cp.shape())?.where_cond(&cr, cp)?),
        _ => None,
    };
    Ok((x0, c))
}

/// Chains of `sampler` on `energy` from uniform noise in `range`: `per_class` under each of `classes` one-hot
/// labels (or `per_class` unconditioned when `classes` is 0), with their labels. Each class's starts and chain
/// seed come from `rng` in turn. A network should be frozen (input gradients only) while this runs.
#[allow(clippy::too_many_arguments)]
pub fn per_class<E: Energy + ?Sized>(
    energy: &E,
    sampler: &Langevin,
    shape: &[usize],
    range: [f32; 2],
    classes: usize,
    per_class: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes.max(1) {
        let x0 = uniform(per_class, shape, range, rng, device)?;
        let y = vec![c as u32; per_class];
        let cond =
            if classes > 0 { Some(one_hot(&Tensor::from_slice(&y, per_class, device)?, classes)?) } else { None };
        xs.push(sampler.run(energy, &x0, cond.as_ref(), None, rng.next_u64())?.x);
        labels.extend(y);
    }
    Ok((Tensor::cat(&xs, 0)?, labels))
}

/// One stage of [`chunked`]: an energy, the condition its chunk of chains runs under (if the energy does not
/// carry its own), and a number of steps.
pub type Stage<'a> = (Box<dyn Energy + 'a>, Option<Tensor>, usize);

/// Chains per chunk of [`chunked`].
pub const CHUNK: usize = 100;

/// Runs `n` chains of samples of `shape` from `starts` (`[n, ...]`) or, when `None`, from uniform noise in [0, 1],
/// in chunks of [`CHUNK`]: on each chunk, the stages that `stages(start, k)` returns, each from the previous one's
/// end, with `sampler`'s settings and that stage's steps. `rng` draws each chunk's noise starts, then one chain
/// seed per stage.
pub fn chunked<'a>(
    n: usize,
    shape: &[usize],
    starts: Option<&Tensor>,
    sampler: &Langevin,
    rng: &mut Rng,
    device: &Device,
    mut stages: impl FnMut(usize, usize) -> Result<Vec<Stage<'a>>>,
) -> Result<Tensor> {
    let mut out = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let k = (n - start).min(CHUNK);
        let mut x = match starts {
            Some(s) => s.narrow(0, start, k)?.to_device(device)?,
            None => uniform(k, shape, [0.0, 1.0], rng, device)?,
        };
        for (e, cond, steps) in stages(start, k)? {
            let stage = Langevin { steps, ..sampler.clone() };
            x = stage.run(&*e, &x, cond.as_ref(), None, rng.next_u64())?.x;
        }
        out.push(x);
    }
    Tensor::cat(&out, 0)
}

/// A borrowed energy as an owned one, so that a model lent for a while can go into a `Box<dyn Energy>` (keeping
/// its own input-gradient path).
pub struct Borrowed<'a, E: ?Sized>(pub &'a E);

impl<E: Energy + ?Sized> Energy for Borrowed<'_, E> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.0.energy(x, cond)
    }
    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        self.0.energy_and_grad(x, cond)
    }
    fn class_energies_at_once(&self, x: &Tensor, classes: usize) -> Option<Result<Tensor>> {
        self.0.class_energies_at_once(x, classes)
    }
}
