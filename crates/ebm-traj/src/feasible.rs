//! A hand-written feasibility energy from the scene's geometry, to be added to the learned transition energy at
//! generation time (a product of experts): it is zero on states the judge accepts and grows with the square of
//! each violation (overlap depth, joint-limit excess, speed excess), so Langevin on the change `z` is pushed out
//! of infeasible next states while the learned energy decides everything else. The feed-forward predictors have
//! no such slot: a constraint can only be added to a model that scores states.

use crate::judge::Judge;
use crate::nets::Normaliser;
use crate::scene::SceneConfig;
use candle_core::{Result, Tensor};
use ebm_sampler::Energy;

/// `E_feas(z | c) = weight * sum_k (excess_k / unit_k)^2` over the violations of the next state `s'` that the
/// change `z` (normalised) makes from the state `c` (normalised): the pusher-box overlap beyond half the judge's
/// tolerance, a body beyond the table's edge, the pusher beyond its joint limits, a speed beyond its bound.
/// Each excess is measured in units of the standard deviation of its coordinate's one-step change (the
/// normaliser's `delta_std`), so the penalty's curvature in `z` is `2 * weight` whatever the coordinate: a
/// Langevin step of size `a` stays stable on it while `a * 2 * weight < 2`. (With fixed units, 5 mm and 5% of a bound,
/// the pusher-speed terms had a curvature of about 370 in `z` on the `traj-push-cpu` data, against a step of 0.1,
/// and the chains oscillated into speed violations.)
pub struct FeasibilityEnergy {
    norm: Normaliser,
    cfg: SceneConfig,
    tolerance: f32,
    pub weight: f64,
}

impl FeasibilityEnergy {
    pub fn new(norm: Normaliser, cfg: SceneConfig, weight: f64) -> Self {
        Self { norm, cfg, tolerance: Judge::new(cfg).tolerance, weight }
    }

    /// The penalty of next states `s1` `[B, STATE_DIM]` (unnormalised), before the weight: `[B]`.
    pub fn penalty(&self, s1: &Tensor) -> Result<Tensor> {
        let col = |k: usize| s1.narrow(1, k, 1);
        let (px, py, vx, vy) = (col(0)?, col(1)?, col(2)?, col(3)?);
        let (bx, by, c4, s4) = (col(4)?, col(5)?, col(6)?, col(7)?);
        let (bvx, bvy, spin) = (col(8)?, col(9)?, col(10)?);
        let c = &self.cfg;
        let (r, h, t) = (c.pusher_radius as f64, c.box_half as f64, c.table_half as f64);
        let (ca, sa) = box_axes(&c4, &s4)?;
        // overlaps up to half the judge's tolerance are free: rapier's own contacts rest a few mm deep
        let box_overlap = pusher_box_gap(s1, c)?.affine(-1.0, -0.5 * self.tolerance as f64)?.relu()?;
        // each excess beside its unit, the std of its coordinate's one-step change
        let over = |v: &Tensor, bound: f64| -> Result<Tensor> { v.abs()?.affine(1.0, -bound)?.relu() };
        // the box's corners reach h (|cos a| + |sin a|) along each axis: how far they stick out of the table
        let reach = ((ca.abs()? + sa.abs()?)? * h)?;
        let box_out = |p: &Tensor| -> Result<Tensor> { (p.abs()? + &reach)?.affine(1.0, -t)?.relu() };
        let box_speed = ((bvx.sqr()? + bvy.sqr()?)? + 1e-12)?.sqrt()?;
        let (limit, vmax) = (c.joint_limit as f64, c.max_action as f64);
        let d = |k: usize| self.norm.delta_std[k] as f64;
        let terms = [
            (box_overlap, 0.5 * (d(0) + d(1))),
            (over(&px, t - r)?, d(0)), // the pusher out of the table
            (over(&py, t - r)?, d(1)),
            (box_out(&bx)?, d(4)),
            (box_out(&by)?, d(5)),
            (over(&px, limit)?, d(0)),
            (over(&py, limit)?, d(1)),
            (over(&vx, vmax)?, d(2)),
            (over(&vy, vmax)?, d(3)),
            (over(&box_speed, c.max_box_speed as f64)?, 0.5 * (d(8) + d(9))),
            (over(&spin, c.max_box_spin as f64)?, d(10)),
        ];
        let mut total = px.zeros_like()?;
        for (excess, unit) in &terms {
            total = (total + (excess / *unit)?.sqr()?)?;
        }
        total.squeeze(1)
    }
}

/// The box's `(cos a, sin a)` from the state's `(cos 4a, sin 4a)`, by two half-angle steps: either branch at each
/// step turns the square by a quarter or half turn, which leaves it unchanged.
fn box_axes(c4: &Tensor, s4: &Tensor) -> Result<(Tensor, Tensor)> {
    let len = ((c4.sqr()? + s4.sqr()?)? + 1e-12)?.sqrt()?;
    let (c2, s2) = half_angle(&(c4 / &len)?, &(s4 / &len)?)?;
    half_angle(&c2, &s2)
}

/// The gap between the pusher and the box in states `s` `[B, STATE_DIM]` (unnormalised): the signed distance
/// from the pusher's centre to the turned square minus the pusher's radius, in metres, `[B, 1]`; negative where
/// they overlap. Differentiable in every coordinate it reads.
pub fn pusher_box_gap(s: &Tensor, scene: &SceneConfig) -> Result<Tensor> {
    let col = |k: usize| s.narrow(1, k, 1);
    let (ca, sa) = box_axes(&col(6)?, &col(7)?)?;
    let (dx, dy) = ((col(0)? - col(4)?)?, (col(1)? - col(5)?)?);
    // the pusher centre in the box's frame, and its signed distance to the square
    let qx = ((&ca * &dx)? + (&sa * &dy)?)?;
    let qy = ((&ca * &dy)? - (&sa * &dx)?)?;
    let h = scene.box_half as f64;
    let (ax, ay) = ((qx.abs()? - h)?, (qy.abs()? - h)?);
    let outside = ((ax.relu()?.sqr()? + ay.relu()?.sqr()?)? + 1e-12)?.sqrt()?;
    let inside = ax.maximum(&ay)?.minimum(0.0)?;
    (outside + inside)? - scene.pusher_radius as f64
}

/// `(cos b/2, sin b/2)` from `(cos b, sin b)` on the branch `|b/2| <= pi/2`.
fn half_angle(c: &Tensor, s: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = (c + 1.0)?;
    let n = ((x.sqr()? + s.sqr()?)? + 1e-12)?.sqrt()?;
    Ok(((x / &n)?, (s / &n)?))
}

impl Energy for FeasibilityEnergy {
    fn energy(&self, z: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let c = cond.ok_or_else(|| candle_core::Error::Msg("the feasibility energy needs the state".into()))?;
        let s1 = self.norm.next_of_normalised(c, z)?;
        self.penalty(&s1)? * self.weight
    }
}

/// A learned energy plus the feasibility energy: the composite Langevin samples from in constrained rollouts.
pub struct WithFeasibility<'a, E: ?Sized> {
    pub learned: &'a E,
    pub feasibility: &'a FeasibilityEnergy,
}

impl<E: Energy + ?Sized> Energy for WithFeasibility<'_, E> {
    fn energy(&self, z: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.learned.energy(z, cond)? + self.feasibility.energy(z, cond)?
    }

    fn energy_and_grad(&self, z: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (e1, g1) = self.learned.energy_and_grad(z, cond)?;
        let (e2, g2) = self.feasibility.energy_and_grad(z, cond)?;
        Ok(((e1 + e2)?, (g1 + g2)?))
    }
}
