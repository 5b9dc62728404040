//! The feasibility energy: it agrees with the simulator's judge on which states overlap, its gradient is the
//! finite-difference one, and descending it alone makes infeasible next states feasible.

use candle_core::{Device, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::Energy;
use ebm_traj::feasible::FeasibilityEnergy;
use ebm_traj::nets::Normaliser;
use ebm_traj::{Judge, SceneConfig, State, STATE_DIM};

/// A normaliser that is not the identity, so the energy's unnormalising is exercised.
fn norm() -> Normaliser {
    Normaliser {
        state_mean: vec![0.05; STATE_DIM],
        state_std: vec![0.5; STATE_DIM],
        delta_mean: vec![0.01; STATE_DIM],
        delta_std: vec![0.1; STATE_DIM],
    }
}

fn state(pusher: [f32; 2], box_pos: [f32; 2], angle: f32) -> State {
    State { pusher, pusher_vel: [0.0; 2], box_pos, box_angle: angle, box_vel: [0.0; 2], box_spin: 0.0 }
}

fn penalties(e: &FeasibilityEnergy, states: &[State]) -> Vec<f32> {
    let v: Vec<f32> = states.iter().flat_map(|s| s.to_vec()).collect();
    let t = Tensor::from_vec(v, (states.len(), STATE_DIM), &Device::Cpu).unwrap();
    e.penalty(&t).unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn the_penalty_agrees_with_the_judge_on_overlaps_at_any_box_angle() {
    let cfg = SceneConfig::default();
    let judge = Judge::new(cfg);
    let e = FeasibilityEnergy::new(norm(), cfg, 1.0);
    let mut rng = Rng::new(11);
    let mut states = Vec::new();
    while states.len() < 2000 {
        let b = [0.3 * rng.uniform() - 0.15, 0.3 * rng.uniform() - 0.15];
        let a = (rng.uniform() - 0.5) * std::f32::consts::FRAC_PI_2;
        let p = [b[0] + 0.36 * rng.uniform() - 0.18, b[1] + 0.36 * rng.uniform() - 0.18];
        let s = state(p, b, a);
        let d = judge.penetration_depth(&s);
        // between half the tolerance and the tolerance the two are allowed to differ (the energy's slack)
        if d > 0.5 * judge.tolerance && d <= judge.tolerance {
            continue;
        }
        states.push(s);
    }
    let pen = penalties(&e, &states);
    let (mut overlapping, mut clear) = (0, 0);
    for (s, p) in states.iter().zip(&pen) {
        let flagged = judge.check(&s.to_vec()).penetration;
        assert_eq!(flagged, *p > 0.0, "{s:?}: judge {flagged}, penalty {p}");
        if flagged {
            overlapping += 1;
        } else {
            clear += 1;
        }
    }
    assert!(overlapping > 200 && clear > 200, "{overlapping} overlapping, {clear} clear: the sample misses a side");
}

#[test]
fn its_gradient_matches_finite_differences() {
    let cfg = SceneConfig::default();
    let n = norm();
    let e = FeasibilityEnergy::new(n.clone(), cfg, 0.01);
    // states whose next state violates several bounds smoothly (away from the penalty's kinks)
    let s = [state([0.10, 0.02], [0.12, 0.0], 0.3), state([0.43, -0.2], [-0.3, 0.35], -0.5)];
    let sv: Vec<f32> = s.iter().flat_map(|s| s.to_vec()).collect();
    let st = Tensor::from_vec(sv, (2, STATE_DIM), &Device::Cpu).unwrap();
    let c = n.states(&st).unwrap();
    let mut rng = Rng::new(5);
    let zv: Vec<f32> = (0..2 * STATE_DIM).map(|_| 0.3 * rng.normal()).collect();
    let mut zv = zv;
    zv[2] = 6.0; // pusher x speed well beyond its bound
    zv[STATE_DIM] = 1.5; // pusher x beyond the joint limit
    let z = Tensor::from_vec(zv.clone(), (2, STATE_DIM), &Device::Cpu).unwrap();
    let (e0, g) = e.energy_and_grad(&z, Some(&c)).unwrap();
    let g = g.to_vec2::<f32>().unwrap();
    assert!(e0.to_vec1::<f32>().unwrap().iter().all(|v| *v > 0.0));
    let h = 1e-3f32;
    for i in 0..2 {
        for k in 0..STATE_DIM {
            let at = |d: f32| {
                let mut v = zv.clone();
                v[i * STATE_DIM + k] += d;
                let z = Tensor::from_vec(v, (2, STATE_DIM), &Device::Cpu).unwrap();
                e.energy(&z, Some(&c)).unwrap().to_vec1::<f32>().unwrap()[i] as f64
            };
            let fd = (at(h) - at(-h)) / (2.0 * h as f64);
            let tol = 1e-2 * fd.abs().max(1.0);
            assert!((fd - g[i][k] as f64).abs() < tol, "state {i}, dim {k}: fd {fd}, autograd {}", g[i][k]);
        }
    }
}

#[test]
fn descending_it_alone_makes_infeasible_next_states_feasible() {
    let cfg = SceneConfig::default();
    let judge = Judge::new(cfg);
    let n = norm();
    let e = FeasibilityEnergy::new(n.clone(), cfg, 1.0);
    let starts = [
        state([0.10, 0.02], [0.12, 0.0], 0.3),  // next state: pusher deep in a turned box
        state([0.0, 0.0], [0.0, 0.05], -0.7),   // pusher at the box centre
        state([0.30, -0.2], [0.44, 0.30], 0.5), // box through the wall
        state([0.43, -0.43], [-0.2, 0.2], 0.0), // pusher beyond a joint limit below
    ];
    let mut next: Vec<State> = starts.to_vec();
    next[3].pusher = [0.47, -0.46];
    next[3].pusher_vel = [0.45, 0.0];
    next[2].box_spin = 12.2;
    next[2].box_vel = [1.1, 0.0];
    assert!(next.iter().all(|s| judge.check(&s.to_vec()).any()), "the next states must start infeasible");
    let flat = |v: &[State]| -> Tensor {
        let d: Vec<f32> = v.iter().flat_map(|s| s.to_vec()).collect();
        Tensor::from_vec(d, (v.len(), STATE_DIM), &Device::Cpu).unwrap()
    };
    let s = flat(&starts);
    let c = n.states(&s).unwrap();
    let mut z = n.deltas(&(flat(&next) - &s).unwrap()).unwrap();
    // normalised gradient steps, shrinking: the penalty's curvature differs by orders of magnitude between
    // lengths and speeds, so a fixed step would either crawl on one or overshoot on the other
    let mut step = 0.05;
    for _ in 0..600 {
        let (_, g) = e.energy_and_grad(&z, Some(&c)).unwrap();
        let len = g.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap().maximum(1e-12).unwrap();
        z = (z - (g.broadcast_div(&len).unwrap() * step).unwrap()).unwrap();
        step *= 0.99;
    }
    let s1 = n.next(&s, &z).unwrap().to_vec2::<f32>().unwrap();
    for (i, v) in s1.iter().enumerate() {
        let verdict = judge.check(v);
        assert!(!verdict.any(), "state {i} after descent: {verdict:?} ({:?})", State::from_slice(v));
    }
}
