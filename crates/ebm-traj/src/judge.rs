//! The simulator as a judge of feasibility: a state (real or generated) is placed in the scene's geometry and
//! checked for what rapier would not produce: bodies overlapping beyond rapier's allowed linear error, the pusher
//! outside its joint limits, or a velocity outside its bounds.

use crate::scene::{SceneConfig, State};
use rapier2d::parry::query;
use rapier2d::parry::shape::{Ball, Cuboid};
use rapier2d::prelude::{IntegrationParameters, Pose, Vector};
use serde::Serialize;

/// What is wrong with one state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Two bodies (pusher, box, walls) overlap by more than the allowed linear error.
    pub penetration: bool,
    /// The pusher is outside its joint's limits by more than the allowed error.
    pub joint: bool,
    /// A speed is outside its bound (the pusher's per-axis command bound, the box's speed and spin bounds), or a
    /// value is not finite.
    pub velocity: bool,
}

impl Violation {
    pub fn any(&self) -> bool {
        self.penetration || self.joint || self.velocity
    }
}

/// Fractions of states with each kind of violation, and with any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ViolationRates {
    pub any: f64,
    pub penetration: f64,
    pub joint: f64,
    pub velocity: f64,
    /// Share of states whose pusher and box overlap beyond the tolerance (the rest of `penetration` is a body in a
    /// wall).
    pub pusher_box: f64,
    /// Mean overlap depth (metres) of the penetrating states.
    pub mean_depth: f64,
    /// Shares of states over each speed bound: the pusher's per-axis command bound, the box's speed, its spin.
    pub pusher_speed: f64,
    pub box_speed: f64,
    pub box_spin: f64,
    pub states: usize,
}

/// The scene's shapes and tolerances.
pub struct Judge {
    cfg: SceneConfig,
    /// Rapier's allowed linear error at the default length unit (metres).
    pub tolerance: f32,
    ball: Ball,
    square: Cuboid,
    walls: Vec<(Pose, Cuboid)>,
}

impl Judge {
    pub fn new(cfg: SceneConfig) -> Self {
        let walls = cfg
            .walls()
            .iter()
            .map(|(c, h)| (Pose::translation(c[0], c[1]), Cuboid::new(Vector::new(h[0], h[1]))))
            .collect();
        Self {
            cfg,
            tolerance: IntegrationParameters::default().allowed_linear_error(),
            ball: Ball::new(cfg.pusher_radius),
            square: Cuboid::new(Vector::new(cfg.box_half, cfg.box_half)),
            walls,
        }
    }

    /// Depth of the deepest overlap between any two bodies of state `s` (0 when none touch).
    pub fn penetration_depth(&self, s: &State) -> f32 {
        self.depths(s).iter().copied().fold(0.0, f32::max)
    }

    /// Overlap depths of the pusher with the box, and the deepest of any body with a wall.
    fn depths(&self, s: &State) -> [f32; 2] {
        let p = Pose::translation(s.pusher[0], s.pusher[1]);
        let b = Pose::new(Vector::new(s.box_pos[0], s.box_pos[1]), s.box_angle);
        let depth =
            |p1: &Pose, g1: &dyn rapier2d::parry::shape::Shape, p2: &Pose, g2: &dyn rapier2d::parry::shape::Shape| {
                match query::contact(p1, g1, p2, g2, 0.0) {
                    Ok(Some(c)) => (-c.dist).max(0.0),
                    _ => 0.0,
                }
            };
        let mut wall = 0f32;
        for (wp, w) in &self.walls {
            wall = wall.max(depth(&p, &self.ball, wp, w)).max(depth(&b, &self.square, wp, w));
        }
        [depth(&p, &self.ball, &b, &self.square), wall]
    }

    /// The violations of one state vector.
    pub fn check(&self, v: &[f32]) -> Violation {
        if v.iter().any(|x| !x.is_finite()) {
            return Violation { penetration: false, joint: false, velocity: true };
        }
        let s = State::from_slice(v);
        let tol = self.tolerance;
        let lim = self.cfg.joint_limit + tol;
        Violation {
            penetration: self.penetration_depth(&s) > tol,
            joint: s.pusher[0].abs() > lim || s.pusher[1].abs() > lim,
            velocity: self.speeds(&s).iter().any(|&b| b),
        }
    }

    /// Which speed bounds state `s` exceeds: the pusher's (per axis, the command bound plus 5%), the box's speed,
    /// its spin.
    fn speeds(&self, s: &State) -> [bool; 3] {
        let vmax = self.cfg.max_action * 1.05 + 1e-3;
        let speed = (s.box_vel[0].powi(2) + s.box_vel[1].powi(2)).sqrt();
        [
            s.pusher_vel[0].abs() > vmax || s.pusher_vel[1].abs() > vmax,
            speed > self.cfg.max_box_speed,
            s.box_spin.abs() > self.cfg.max_box_spin,
        ]
    }

    /// The violation rates over a set of state vectors (`states.len()` a multiple of the state size).
    pub fn rates(&self, states: &[f32]) -> ViolationRates {
        let d = crate::scene::STATE_DIM;
        let n = states.len() / d;
        let mut r = ViolationRates { states: n, ..Default::default() };
        let mut depth_sum = 0.0;
        for v in states.chunks_exact(d) {
            let c = self.check(v);
            if c.penetration {
                let depths = self.depths(&State::from_slice(v));
                r.pusher_box += (depths[0] > self.tolerance) as u8 as f64;
                depth_sum += depths.iter().copied().fold(0.0, f32::max) as f64;
            }
            if c.velocity && v.iter().all(|x| x.is_finite()) {
                let [p, b, w] = self.speeds(&State::from_slice(v));
                r.pusher_speed += p as u8 as f64;
                r.box_speed += b as u8 as f64;
                r.box_spin += w as u8 as f64;
            }
            r.any += c.any() as u8 as f64;
            r.penetration += c.penetration as u8 as f64;
            r.joint += c.joint as u8 as f64;
            r.velocity += c.velocity as u8 as f64;
        }
        if r.penetration > 0.0 {
            r.mean_depth = depth_sum / r.penetration;
        }
        if n > 0 {
            for x in [
                &mut r.any,
                &mut r.penetration,
                &mut r.joint,
                &mut r.velocity,
                &mut r.pusher_box,
                &mut r.pusher_speed,
                &mut r.box_speed,
                &mut r.box_spin,
            ] {
                *x /= n as f64;
            }
        }
        r
    }
}
