//! The generator: seeded and deterministic, physically consistent (replaying the recorded actions in a fresh
//! simulator reproduces every state bit for bit, and the simulator's own states pass the feasibility judge),
//! and its data file round-trips and refuses damage.

use ebm_traj::generate::{generate, replay, GenConfig, Trajectories};
use ebm_traj::{Judge, SceneConfig, State, STATE_DIM};

fn small(seed: u64) -> GenConfig {
    GenConfig { trajectories: 60, length: 60, seed, ..Default::default() }
}

#[test]
fn same_seed_same_trajectories_other_seed_others() {
    let a = generate(&small(3)).unwrap();
    let b = generate(&small(3)).unwrap();
    let c = generate(&small(4)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.states, c.states);
    // trajectory i depends on (seed, i) only: a longer set starts with the same trajectories
    let more = generate(&GenConfig { trajectories: 80, ..small(3) }).unwrap();
    assert_eq!(&more.states[..a.states.len()], &a.states[..]);
}

#[test]
fn replaying_the_recorded_actions_reproduces_the_states() {
    let d = generate(&small(7)).unwrap();
    for i in [0, 17, 59] {
        let start = State::from_slice(d.state(i, 0));
        let states = replay(d.cfg.scene, &start, d.actions_of(i));
        let n = d.cfg.length * STATE_DIM;
        assert_eq!(&states[..], &d.states[i * n..(i + 1) * n], "trajectory {i}");
    }
    // and the actions matter: a changed action changes what follows
    let mut acts = d.actions_of(0).to_vec();
    acts[20] += 0.3;
    let changed = replay(d.cfg.scene, &State::from_slice(d.state(0, 0)), &acts);
    assert_ne!(&changed[..], &d.states[..d.cfg.length * STATE_DIM]);
}

#[test]
fn the_simulator_states_are_feasible_and_the_bodies_move() {
    let d = generate(&small(1)).unwrap();
    let judge = Judge::new(d.cfg.scene);
    let r = judge.rates(&d.states);
    // rapier keeps contacts within its allowed error; a handful of pushing states go a little past it
    assert!(r.any < 0.005 && r.joint == 0.0 && r.velocity == 0.0, "{r:?}");
    let moving = d.states.chunks_exact(STATE_DIM).filter(|v| v[8].hypot(v[9]) > 0.02).count();
    assert!(moving * 10 > d.states.len() / STATE_DIM, "the box moves in at least 10% of the states");
    // the pusher follows its commands: its speed never exceeds the action bound
    let m = d.cfg.scene.max_action * 1.05;
    assert!(d.states.chunks_exact(STATE_DIM).all(|v| v[2].abs() <= m && v[3].abs() <= m));
}

#[test]
fn the_judge_flags_what_the_simulator_would_not_produce() {
    let scene = SceneConfig::default();
    let j = Judge::new(scene);
    let ok = State {
        pusher: [0.0, 0.0],
        pusher_vel: [0.1, 0.0],
        box_pos: [0.2, 0.0],
        box_angle: 0.3,
        box_vel: [0.0; 2],
        box_spin: 0.0,
    };
    assert!(!j.check(&ok.to_vec()).any());
    // the pusher inside the box: its surface 1 cm past the box's face
    let inside = State { box_pos: [scene.pusher_radius + scene.box_half - 0.01, 0.0], box_angle: 0.0, ..ok };
    assert!(j.check(&inside.to_vec()).penetration);
    // just touching (within rapier's allowed error) is fine
    let touching = State { box_pos: [scene.pusher_radius + scene.box_half - 0.002, 0.0], box_angle: 0.0, ..ok };
    assert!(!j.check(&touching.to_vec()).any());
    let off_table = State { box_pos: [0.3, 0.48], ..ok };
    assert!(j.check(&off_table.to_vec()).penetration);
    let past_limit = State { pusher: [0.0, scene.joint_limit + 0.02], ..ok };
    assert!(j.check(&past_limit.to_vec()).joint);
    let fast = State { box_vel: [1.2, 0.0], ..ok };
    assert!(j.check(&fast.to_vec()).velocity);
    let mut nan = ok.to_vec();
    nan[5] = f32::NAN;
    assert!(j.check(&nan).any());
    // rates: the pusher-in-box state is the one pusher-box overlap of four states, 1 cm deep
    let set: Vec<f32> = [ok, inside, touching, past_limit].iter().flat_map(|s| s.to_vec()).collect();
    let r = j.rates(&set);
    assert_eq!((r.states, r.any, r.penetration, r.pusher_box, r.joint), (4, 0.5, 0.25, 0.25, 0.25));
    assert!((r.mean_depth - 0.01).abs() < 1e-4, "{}", r.mean_depth);
}

#[test]
fn the_data_file_round_trips_and_refuses_damage() {
    let dir = std::env::temp_dir().join(format!("ebm-traj-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = generate(&GenConfig { trajectories: 10, length: 12, ..Default::default() }).unwrap();
    let path = dir.join("data.safetensors");
    d.save(&path).unwrap();
    assert_eq!(Trajectories::load(&path).unwrap(), d);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = Trajectories::load(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors"), "{e}");
    let mut other = d.clone();
    other.cfg.trajectories = 11;
    let wrong = dir.join("wrong.safetensors");
    other.save(&wrong).unwrap();
    let e = Trajectories::load(&wrong).unwrap_err().to_string();
    assert!(e.contains("wrong.safetensors") && e.contains("do not match"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_generation_configs_are_refused_by_name() {
    let e = generate(&GenConfig { length: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("data.length"), "{e}");
    let scene = SceneConfig { joint_limit: 0.49, ..Default::default() };
    let e = generate(&GenConfig { scene, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("scene.joint_limit"), "{e}");
}
