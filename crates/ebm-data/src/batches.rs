//! [`Batches`]: the order in which a trainer visits a data set, reshuffled every epoch from a seed, with a small
//! [`BatchState`] that a checkpoint stores so that a resumed run sees exactly the batches it would have seen.
//!
//! The order of epoch `e` is a Fisher-Yates shuffle of `0..n` drawn from `Rng::with_stream(seed, e)`, so it depends
//! only on `(seed, e)`: no generator state beyond the three numbers of [`BatchState`] needs saving. Give the data order
//! a seed of its own (for example `Rng::new(run_seed).fork(k).next_u64()`) rather than the run seed itself, so that it
//! shares no stream with other consumers of that seed.

use crate::error::{DataError, Result};
use ebm_kernels::Rng;
use serde::{Deserialize, Serialize};

/// Where a [`Batches`] stands: the seed of its orders, the current epoch and the position of the next batch within
/// that epoch's order. Restoring it with [`Batches::from_state`] continues the sequence exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchState {
    pub seed: u64,
    pub epoch: u64,
    pub position: usize,
}

/// An endless sequence of index batches over `0..n`: each epoch visits every index once in a fresh random order,
/// `batch_size` at a time. The last batch of an epoch is smaller when `batch_size` does not divide `n`, unless
/// `drop_last` is set, in which case those left-over indices are skipped for that epoch.
#[derive(Debug, Clone)]
pub struct Batches {
    n: usize,
    batch_size: usize,
    drop_last: bool,
    seed: u64,
    epoch: u64,
    position: usize,
    order: Vec<usize>,
}

impl Batches {
    /// Batches of `batch_size` over `0..n`, starting at epoch 0, with orders drawn from `seed`.
    pub fn new(n: usize, batch_size: usize, drop_last: bool, seed: u64) -> Result<Self> {
        Self::from_state(n, batch_size, drop_last, BatchState { seed, epoch: 0, position: 0 })
    }

    /// Resumes from a saved [`state`](Self::state); `n`, `batch_size` and `drop_last` must be those of the saved run.
    pub fn from_state(n: usize, batch_size: usize, drop_last: bool, state: BatchState) -> Result<Self> {
        let name = "batch order";
        if n == 0 || batch_size == 0 {
            return Err(DataError::invalid(name, format!("cannot make batches of {batch_size} from {n} items")));
        }
        if drop_last && batch_size > n {
            return Err(DataError::invalid(
                name,
                format!("batches of {batch_size} with drop_last would never draw from {n} items"),
            ));
        }
        if state.position > n || (state.position % batch_size != 0 && state.position != n) {
            return Err(DataError::invalid(
                name,
                format!("position {} cannot occur with {n} items in batches of {batch_size}", state.position),
            ));
        }
        let mut b = Batches {
            n,
            batch_size,
            drop_last,
            seed: state.seed,
            epoch: state.epoch,
            position: state.position,
            order: Self::epoch_order(state.seed, state.epoch, n),
        };
        b.roll_over();
        Ok(b)
    }

    /// The order in which epoch `epoch` of a run with seed `seed` visits `0..n`.
    pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::with_stream(seed, epoch).shuffle(&mut order);
        order
    }

    /// The state to store in a checkpoint: the next batch is the first one a resumed iterator yields.
    pub fn state(&self) -> BatchState {
        BatchState { seed: self.seed, epoch: self.epoch, position: self.position }
    }

    /// The epoch the next batch belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of batches in each epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.n / self.batch_size
        } else {
            self.n.div_ceil(self.batch_size)
        }
    }

    /// The next batch of indices (never empty).
    pub fn next_batch(&mut self) -> Vec<usize> {
        let end = (self.position + self.batch_size).min(self.n);
        let batch = self.order[self.position..end].to_vec();
        self.position = end;
        self.roll_over();
        batch
    }

    /// Starts the next epoch when the current one has no batch left to give.
    fn roll_over(&mut self) {
        let left = self.n - self.position;
        if left == 0 || (self.drop_last && left < self.batch_size) {
            self.epoch += 1;
            self.position = 0;
            self.order = Self::epoch_order(self.seed, self.epoch, self.n);
        }
    }
}

impl Iterator for Batches {
    type Item = Vec<usize>;

    /// Always `Some`: the sequence is endless; use `take` or count epochs with [`Batches::epoch`].
    fn next(&mut self) -> Option<Vec<usize>> {
        Some(self.next_batch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_per_epoch() {
        let mut b = Batches::new(103, 10, false, 7).unwrap();
        assert_eq!(b.batches_per_epoch(), 11);
        for epoch in 0..3 {
            assert_eq!(b.epoch(), epoch);
            let batches: Vec<Vec<usize>> = (0..11).map(|_| b.next_batch()).collect();
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            assert_eq!(sizes, [vec![10; 10], vec![3]].concat());
            let mut all: Vec<usize> = batches.concat();
            assert_eq!(all, Batches::epoch_order(7, epoch, 103));
            all.sort_unstable();
            assert_eq!(all, (0..103).collect::<Vec<_>>());
        }
    }

    #[test]
    fn drop_last_skips_the_remainder() {
        let mut b = Batches::new(103, 10, true, 7).unwrap();
        assert_eq!(b.batches_per_epoch(), 10);
        for epoch in 0..3 {
            assert_eq!(b.epoch(), epoch);
            let mut all: Vec<usize> = (0..10).flat_map(|_| b.next_batch()).collect();
            assert_eq!(all[..], Batches::epoch_order(7, epoch, 103)[..100]);
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), 100);
        }
    }

    #[test]
    fn orders_are_determined_by_the_seed_and_differ_between_epochs() {
        let a: Vec<Vec<usize>> = Batches::new(50, 8, false, 1).unwrap().take(30).collect();
        let b: Vec<Vec<usize>> = Batches::new(50, 8, false, 1).unwrap().take(30).collect();
        let c: Vec<Vec<usize>> = Batches::new(50, 8, false, 2).unwrap().take(30).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let orders: Vec<Vec<usize>> = (0..4).map(|e| Batches::epoch_order(1, e, 50)).collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(orders[i], orders[j], "epochs {i} and {j}");
            }
        }
        // A shuffle, not the identity.
        assert_ne!(orders[0], (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn resumed_iterator_continues_exactly() {
        for (drop_last, stop) in [(false, 0), (false, 6), (false, 7), (true, 6), (true, 13)] {
            let mut a = Batches::new(45, 7, drop_last, 99).unwrap();
            for _ in 0..stop {
                a.next_batch();
            }
            let saved = serde_json::to_string(&a.state()).unwrap();
            let state: BatchState = serde_json::from_str(&saved).unwrap();
            assert_eq!(state, a.state());
            let mut b = Batches::from_state(45, 7, drop_last, state).unwrap();
            assert_eq!(b.epoch(), a.epoch());
            for k in 0..40 {
                assert_eq!(a.next_batch(), b.next_batch(), "drop_last {drop_last}, stop {stop}, batch {k}");
            }
            assert_eq!(a.state(), b.state());
        }
    }

    #[test]
    fn state_moves_to_the_next_epoch_after_its_last_batch() {
        let mut b = Batches::new(20, 10, false, 3).unwrap();
        b.next_batch();
        assert_eq!(b.state(), BatchState { seed: 3, epoch: 0, position: 10 });
        b.next_batch();
        assert_eq!(b.state(), BatchState { seed: 3, epoch: 1, position: 0 });
        // A state saved at the very end of an epoch resumes at the start of the next.
        let end = BatchState { seed: 3, epoch: 0, position: 20 };
        assert_eq!(Batches::from_state(20, 10, false, end).unwrap().state().epoch, 1);
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(Batches::new(0, 4, false, 0).is_err());
        assert!(Batches::new(4, 0, false, 0).is_err());
        let e = Batches::new(3, 4, true, 0).unwrap_err();
        assert_eq!(e.to_string(), "batch order: batches of 4 with drop_last would never draw from 3 items");
        assert!(Batches::new(3, 4, false, 0).is_ok());
        let bad = BatchState { seed: 0, epoch: 0, position: 5 };
        assert!(Batches::from_state(20, 10, false, bad).is_err());
    }
}
