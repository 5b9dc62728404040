//! Held-out combinations of factors: a grid of scales x positions from which a seeded, Latin-square-like set of
//! cells is withheld from a generated sprite set, so that a model trained on it has seen every scale and every
//! position, but never these (scale, position) pairs.
//!
//! The factors are continuous, so a held-out cell is a region: the box of half-width [`HeldOut::radius`] around
//! the cell's scale and around each coordinate of its position. No sprite of a set generated with the mask lies in
//! any box (the generator redraws it), so with `radius` equal to the probe's tolerance (0.1) nothing within the
//! tolerance of a held-out pair occurs in training.
//!
//! The assignment: the positions are shuffled with [`HeldOut::seed`], and the `i`-th position of that order is held
//! out at scale `scales[order_s[i mod n_scales]]`, with the scales shuffled by the same seed. Every position is held
//! out at exactly one scale and every scale at `ceil` or `floor` of `n_positions / n_scales` positions, so (with at
//! least two scales and at least as many positions as scales) every scale and every position keeps cells in
//! training. The shuffles draw from forks 1 and 2 of `Rng::new(seed)`, the streams a [`crate::shapes::ShapesConfig`]
//! of the same seed draws its train and test sprites from; the outcomes depend on different things, but a mask
//! with a seed of its own keeps the two apart (kept as is: the trained models' masks depend on it).

use crate::error::{DataError, Result};
use crate::shapes::Sprite;
use ebm_kernels::Rng;
use serde::{Deserialize, Serialize};

/// A grid of (scale, position) cells and the seeded subset withheld (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOut {
    /// The grid's scales.
    pub scales: Vec<f32>,
    /// The grid's positions `[x, y]`.
    pub positions: Vec<[f32; 2]>,
    /// Seed of the assignment of a held-out scale to each position.
    pub seed: u64,
    /// Half-width of a held-out region in scale and in each position coordinate.
    pub radius: f32,
}

/// One (scale, position) cell of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cell {
    pub scale: f32,
    pub position: [f32; 2],
}

impl HeldOut {
    /// The grid of the all-factors composition experiment: 5 scales over dSprites' 0.5..1 and a 3x3 grid of
    /// positions 0.3 apart, 9 cells held out (one per position), regions of half-width 0.1.
    pub fn composition_grid(seed: u64) -> HeldOut {
        let p = [0.2f32, 0.5, 0.8];
        HeldOut {
            scales: vec![0.5, 0.625, 0.75, 0.875, 1.0],
            positions: p.iter().flat_map(|&y| p.iter().map(move |&x| [x, y])).collect(),
            seed,
            radius: 0.1,
        }
    }

    /// The held-out cells, in the order of the grid's positions (none for an empty grid).
    pub fn cells(&self) -> Vec<Cell> {
        if self.scales.is_empty() || self.positions.is_empty() {
            return Vec::new();
        }
        let rng = Rng::new(self.seed);
        let mut pos_order: Vec<usize> = (0..self.positions.len()).collect();
        rng.fork(1).shuffle(&mut pos_order);
        let mut scale_order: Vec<usize> = (0..self.scales.len()).collect();
        rng.fork(2).shuffle(&mut scale_order);
        let mut held = vec![0usize; self.positions.len()];
        for (i, &p) in pos_order.iter().enumerate() {
            held[p] = scale_order[i % self.scales.len().max(1)];
        }
        held.iter().enumerate().map(|(p, &s)| Cell { scale: self.scales[s], position: self.positions[p] }).collect()
    }

    /// The grid's cells that are not held out, scales major.
    pub fn seen_cells(&self) -> Vec<Cell> {
        let held = self.cells();
        self.scales
            .iter()
            .flat_map(|&scale| self.positions.iter().map(move |&position| Cell { scale, position }))
            .filter(|c| !held.contains(c))
            .collect()
    }

    /// Whether a sprite of `scale` at `(x, y)` lies in a held-out region.
    pub fn excludes(&self, scale: f32, x: f32, y: f32) -> bool {
        self.regions().excludes(scale, x, y)
    }

    /// The held-out regions, computed once (for testing many sprites).
    pub fn regions(&self) -> Regions {
        Regions { cells: self.cells(), radius: self.radius }
    }

    /// Refuses a grid that cannot keep every scale and every position in training.
    pub fn check(&self) -> Result<()> {
        let bad = |d: String| Err(DataError::invalid("shapes.held_out", d));
        if self.scales.len() < 2 || self.positions.len() < 2 {
            return bad(format!(
                "needs at least 2 scales and 2 positions (got {} and {})",
                self.scales.len(),
                self.positions.len()
            ));
        }
        let finite = self.scales.iter().chain(self.positions.iter().flatten()).all(|v| v.is_finite());
        if !(finite && self.radius.is_finite() && self.radius >= 0.0) {
            return bad("scales, positions and radius must be finite (radius >= 0)".into());
        }
        let dup = |v: &[f32]| v.iter().enumerate().any(|(i, a)| v[..i].contains(a));
        if dup(&self.scales) || self.positions.iter().enumerate().any(|(i, p)| self.positions[..i].contains(p)) {
            return bad("scales and positions must not repeat".into());
        }
        if self.positions.len() < self.scales.len() {
            return bad(format!(
                "{} positions for {} scales: every scale must be held out somewhere, so give at least as many \
                 positions as scales",
                self.positions.len(),
                self.scales.len()
            ));
        }
        // a region as wide as the grid's spacing would swallow cells the experiment calls seen
        let regions = self.regions();
        if let Some(c) = self.seen_cells().iter().find(|c| regions.excludes(c.scale, c.position[0], c.position[1])) {
            return bad(format!(
                "radius {} is too wide for the grid: the seen cell scale {} at {:?} lies in a held-out region",
                self.radius, c.scale, c.position
            ));
        }
        Ok(())
    }
}

/// The held-out regions of a [`HeldOut`], its cells computed once.
#[derive(Debug, Clone)]
pub struct Regions {
    cells: Vec<Cell>,
    radius: f32,
}

impl Regions {
    /// Whether a sprite of `scale` at `(x, y)` lies in a held-out region.
    pub fn excludes(&self, scale: f32, x: f32, y: f32) -> bool {
        let r = self.radius;
        self.cells
            .iter()
            .any(|c| (scale - c.scale).abs() <= r && (x - c.position[0]).abs() <= r && (y - c.position[1]).abs() <= r)
    }

    /// Whether `sprite` lies in a held-out region.
    pub fn excludes_sprite(&self, sprite: &Sprite) -> bool {
        self.excludes(sprite.scale, sprite.pos_x, sprite.pos_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_position_once_every_scale_evenly_and_seeded() {
        let h = HeldOut::composition_grid(3);
        let cells = h.cells();
        assert_eq!(cells.len(), 9);
        for p in &h.positions {
            assert_eq!(cells.iter().filter(|c| c.position == *p).count(), 1, "{p:?}");
        }
        for s in &h.scales {
            let n = cells.iter().filter(|c| c.scale == *s).count();
            assert!((1..=2).contains(&n), "scale {s} held out {n} times");
        }
        assert_eq!(h.seen_cells().len(), 45 - 9);
        assert_eq!(HeldOut::composition_grid(3).cells(), cells);
        assert_ne!(HeldOut::composition_grid(4).cells(), cells);
        assert!(h.check().is_ok());
        let e = HeldOut { positions: vec![[0.5, 0.5]], ..h.clone() }.check().unwrap_err();
        assert!(e.to_string().contains("at least 2"), "{e}");
        let e = HeldOut { radius: f32::NAN, ..h.clone() }.check().unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
        let e = HeldOut { radius: 0.2, ..h.clone() }.check().unwrap_err();
        assert!(e.to_string().contains("too wide"), "{e}");
        let e = HeldOut { scales: vec![0.5, 0.5, 1.0], ..h }.check().unwrap_err();
        assert!(e.to_string().contains("repeat"), "{e}");
    }
}
