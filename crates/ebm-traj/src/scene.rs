//! The planar pushing scene in rapier2d: a walled table seen from above, a round pusher driven by velocity motors
//! on a two-axis joint with limits, and a square box it pushes. The state vector is the bodies' positions and
//! velocities; [`State`] names its layout.

use rapier2d::prelude::*;
use serde::{Deserialize, Serialize};

/// Number of floats in a state vector.
pub const STATE_DIM: usize = 11;
/// Number of floats in an action (the pusher's target velocity).
pub const ACTION_DIM: usize = 2;

/// Geometry and physics of the scene, in metres, kilograms and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    /// Half the side of the square table (walls stand just outside it).
    pub table_half: f32,
    /// Radius of the round pusher.
    pub pusher_radius: f32,
    /// Half the side of the square box.
    pub box_half: f32,
    /// The pusher joint's limits: `|x|, |y| <= joint_limit`.
    pub joint_limit: f32,
    /// Largest commanded pusher speed per axis (actions are clipped to it).
    pub max_action: f32,
    /// Control period: one action, one recorded state.
    pub dt: f32,
    /// Rapier steps per control period.
    pub substeps: usize,
    /// The box's linear and angular damping (sliding friction with the table, seen from above).
    pub box_damping: f32,
    /// Bounds of the feasibility judge: the box's speed and angular speed.
    pub max_box_speed: f32,
    pub max_box_spin: f32,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            table_half: 0.5,
            pusher_radius: 0.04,
            box_half: 0.06,
            joint_limit: 0.44,
            max_action: 0.4,
            dt: 0.05,
            substeps: 2,
            box_damping: 4.0,
            max_box_speed: 1.0,
            max_box_spin: 12.0,
        }
    }
}

impl SceneConfig {
    /// Errors on values that make no physical scene.
    pub fn validate(&self) -> Result<(), String> {
        let pos = [
            ("table_half", self.table_half),
            ("pusher_radius", self.pusher_radius),
            ("box_half", self.box_half),
            ("joint_limit", self.joint_limit),
            ("max_action", self.max_action),
            ("dt", self.dt),
            ("max_box_speed", self.max_box_speed),
            ("max_box_spin", self.max_box_spin),
        ];
        for (name, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("scene.{name} must be a positive number, got {v}"));
            }
        }
        if !(self.box_damping.is_finite() && self.box_damping >= 0.0) {
            return Err(format!("scene.box_damping must be >= 0, got {}", self.box_damping));
        }
        if self.substeps == 0 || self.substeps > 64 {
            return Err(format!("scene.substeps must be in 1..=64, got {}", self.substeps));
        }
        if self.joint_limit + self.pusher_radius > self.table_half {
            return Err(format!(
                "scene.joint_limit + pusher_radius ({}) would let the pusher into the walls (table_half {})",
                self.joint_limit + self.pusher_radius,
                self.table_half
            ));
        }
        if 4.0 * self.box_half + 2.0 * self.pusher_radius > 2.0 * self.table_half {
            return Err("scene.box_half is too large for the table".into());
        }
        Ok(())
    }

    /// Thickness of each wall: thick enough that a box anywhere outside the table overlaps one.
    pub fn wall_thickness(&self) -> f32 {
        self.table_half
    }

    /// Centres and half extents of the four walls.
    pub fn walls(&self) -> [([f32; 2], [f32; 2]); 4] {
        let (h, t) = (self.table_half, self.wall_thickness());
        let long = h + 2.0 * t;
        [([h + t, 0.0], [t, long]), ([-h - t, 0.0], [t, long]), ([0.0, h + t], [long, t]), ([0.0, -h - t], [long, t])]
    }
}

/// The state vector's named fields: `[px, py, pvx, pvy, bx, by, cos 4a, sin 4a, bvx, bvy, bw]`, the pusher's
/// position and velocity, the box's position, its orientation `a` modulo its quarter-turn symmetry (as a point on
/// the circle, so it has no wrap-around), its velocity and its angular velocity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub pusher: [f32; 2],
    pub pusher_vel: [f32; 2],
    pub box_pos: [f32; 2],
    /// Radians, in (-pi/4, pi/4].
    pub box_angle: f32,
    pub box_vel: [f32; 2],
    pub box_spin: f32,
}

impl State {
    pub fn to_vec(&self) -> [f32; STATE_DIM] {
        let a4 = 4.0 * self.box_angle;
        [
            self.pusher[0],
            self.pusher[1],
            self.pusher_vel[0],
            self.pusher_vel[1],
            self.box_pos[0],
            self.box_pos[1],
            a4.cos(),
            a4.sin(),
            self.box_vel[0],
            self.box_vel[1],
            self.box_spin,
        ]
    }

    /// Reads a state vector; the orientation comes from the direction of `(cos 4a, sin 4a)` (its length is not
    /// checked: a generated state need not keep it at 1).
    pub fn from_slice(v: &[f32]) -> Self {
        Self {
            pusher: [v[0], v[1]],
            pusher_vel: [v[2], v[3]],
            box_pos: [v[4], v[5]],
            box_angle: v[7].atan2(v[6]) / 4.0,
            box_vel: [v[8], v[9]],
            box_spin: v[10],
        }
    }

    /// The positions only, `[px, py, bx, by]`: what the diversity and realism measures compare.
    pub fn config(&self) -> [f32; 4] {
        [self.pusher[0], self.pusher[1], self.box_pos[0], self.box_pos[1]]
    }
}

/// A rapier world holding the scene.
pub struct Scene {
    pub cfg: SceneConfig,
    world: PhysicsWorld,
    pusher: RigidBodyHandle,
    boxb: RigidBodyHandle,
    joint: ImpulseJointHandle,
}

impl Scene {
    /// The scene at state `s` (its velocities included).
    pub fn new(cfg: SceneConfig, s: &State) -> Self {
        let mut world = PhysicsWorld::new();
        world.gravity = Vector::ZERO;
        world.integration_parameters.dt = cfg.dt / cfg.substeps as f32;
        let ground = world.bodies.insert(RigidBodyBuilder::fixed());
        for (c, half) in cfg.walls() {
            let wall = ColliderBuilder::cuboid(half[0], half[1]).translation(Vector::new(c[0], c[1])).friction(0.3);
            world.colliders.insert_with_parent(wall, ground, &mut world.bodies);
        }
        let pusher = world.bodies.insert(
            RigidBodyBuilder::dynamic()
                .translation(Vector::new(s.pusher[0], s.pusher[1]))
                .linvel(Vector::new(s.pusher_vel[0], s.pusher_vel[1]))
                .can_sleep(false),
        );
        let ball = ColliderBuilder::ball(cfg.pusher_radius).density(200.0).friction(0.4).restitution(0.0);
        world.colliders.insert_with_parent(ball, pusher, &mut world.bodies);
        let lim = cfg.joint_limit;
        let joint = GenericJointBuilder::new(JointAxesMask::ANG_X)
            .limits(JointAxis::LinX, [-lim, lim])
            .limits(JointAxis::LinY, [-lim, lim])
            .motor_velocity(JointAxis::LinX, 0.0, 1.0e3)
            .motor_velocity(JointAxis::LinY, 0.0, 1.0e3)
            .motor_max_force(JointAxis::LinX, 200.0)
            .motor_max_force(JointAxis::LinY, 200.0)
            .contacts_enabled(false)
            .build();
        let joint = world.impulse_joints.insert(ground, pusher, joint, true);
        let boxb = world.bodies.insert(
            RigidBodyBuilder::dynamic()
                .translation(Vector::new(s.box_pos[0], s.box_pos[1]))
                .rotation(s.box_angle)
                .linvel(Vector::new(s.box_vel[0], s.box_vel[1]))
                .angvel(s.box_spin)
                .linear_damping(cfg.box_damping)
                .angular_damping(cfg.box_damping)
                .can_sleep(false),
        );
        let square = ColliderBuilder::cuboid(cfg.box_half, cfg.box_half).density(40.0).friction(0.4).restitution(0.0);
        world.colliders.insert_with_parent(square, boxb, &mut world.bodies);
        Self { cfg, world, pusher, boxb, joint }
    }

    /// The current state.
    pub fn state(&self) -> State {
        let p = &self.world.bodies[self.pusher];
        let b = &self.world.bodies[self.boxb];
        let a = b.rotation().angle();
        let q = std::f32::consts::FRAC_PI_2;
        let mut a = a - q * (a / q).round();
        if a <= -q / 2.0 {
            a += q;
        }
        State {
            pusher: [p.translation().x, p.translation().y],
            pusher_vel: [p.linvel().x, p.linvel().y],
            box_pos: [b.translation().x, b.translation().y],
            box_angle: a,
            box_vel: [b.linvel().x, b.linvel().y],
            box_spin: b.angvel(),
        }
    }

    /// One control period with the pusher's target velocity `action` (clipped to the scene's bounds).
    pub fn step(&mut self, action: [f32; 2]) {
        let m = self.cfg.max_action;
        let a = [action[0].clamp(-m, m), action[1].clamp(-m, m)];
        if let Some(j) = self.world.impulse_joints.get_mut(self.joint, true) {
            j.data.set_motor_velocity(JointAxis::LinX, a[0], 1.0e3);
            j.data.set_motor_velocity(JointAxis::LinY, a[1], 1.0e3);
        }
        for _ in 0..self.cfg.substeps {
            self.world.step();
        }
    }
}
