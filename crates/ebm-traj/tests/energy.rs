//! The networks: the transition energy's input gradient (what Langevin follows) against central finite
//! differences, and the predictors' losses.

use candle_core::{Device, Tensor};
use ebm_sampler::Energy;
use ebm_traj::nets::{ContactInput, NetConfig, Normaliser};
use ebm_traj::train::{build, NoiseOn, TrainSet};
use ebm_traj::STATE_DIM;

/// A normaliser that leaves states as they are and scales every coordinate's change by `delta_std`.
fn unscaled_states(delta_std: f32) -> Normaliser {
    let d = STATE_DIM;
    Normaliser {
        state_mean: vec![0.0; d],
        state_std: vec![1.0; d],
        delta_mean: vec![0.0; d],
        delta_std: vec![delta_std; d],
    }
}

fn rows(n: usize, seed: u32) -> Vec<f32> {
    (0..n * STATE_DIM).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// The largest relative difference between the autograd gradient `g` of `energy` in `z` (given `c`) and central
/// differences of step 1e-2, over every row and coordinate.
fn worst_gradient_error(energy: &impl Energy, z: &Tensor, c: &Tensor, g: &Tensor) -> f32 {
    let g = g.to_vec2::<f32>().unwrap();
    let zv = z.to_vec2::<f32>().unwrap();
    let h = 1e-2f32;
    let mut worst = 0f32;
    for (i, gi) in g.iter().enumerate() {
        for (k, gik) in gi.iter().enumerate() {
            let at = |d: f32| {
                let mut m = zv.clone();
                m[i][k] += d;
                let t = Tensor::new(m, &Device::Cpu).unwrap();
                energy.energy(&t, Some(c)).unwrap().to_vec1::<f32>().unwrap()[i] as f64
            };
            let fd = ((at(h) - at(-h)) / (2.0 * h as f64)) as f32;
            worst = worst.max((fd - gik).abs() / (gik.abs() + 1e-2));
        }
    }
    worst
}

#[test]
fn transition_energy_gradient_matches_finite_differences() {
    let (energy, _, _) = build(NetConfig { hidden: 32, depth: 2 }, None, 5).unwrap();
    let n = 4;
    let z = Tensor::from_vec(rows(n, 1), (n, STATE_DIM), &Device::Cpu).unwrap();
    let c = Tensor::from_vec(rows(n, 2), (n, STATE_DIM), &Device::Cpu).unwrap();
    let (e, g) = energy.energy_and_grad(&z, Some(&c)).unwrap();
    assert_eq!(e.dims(), [n]);
    let worst = worst_gradient_error(&energy, &z, &c, &g);
    assert!(worst < 2e-2, "largest relative difference {worst}");
    // the state is a condition, not a variable: changing it changes the energy
    let c2 = Tensor::from_vec(rows(n, 9), (n, STATE_DIM), &Device::Cpu).unwrap();
    let e2 = energy.energy(&z, Some(&c2)).unwrap();
    assert!((e - e2).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
}

#[test]
fn normaliser_round_trips_changes_and_the_fc_predictor_is_deterministic() {
    let s = rows(50, 3);
    let s1: Vec<f32> = s.iter().enumerate().map(|(i, v)| v + 0.1 * ((i % 7) as f32 - 3.0)).collect();
    let norm = Normaliser::fit(&s, &s1);
    let st = Tensor::from_vec(s.clone(), (50, STATE_DIM), &Device::Cpu).unwrap();
    let st1 = Tensor::from_vec(s1.clone(), (50, STATE_DIM), &Device::Cpu).unwrap();
    let z = norm.deltas(&(&st1 - &st).unwrap()).unwrap();
    let back = norm.next(&st, &z).unwrap();
    let err = (back - &st1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(err < 1e-5, "{err}");
    assert_eq!(norm.validate(), Ok(()));
    let mut flat = norm.clone();
    flat.delta_std[3] = 0.0;
    assert!(flat.validate().unwrap_err().contains("spread"));
    flat.delta_std.pop();
    assert!(flat.validate().unwrap_err().contains("values per statistic"));
    let (_, fc, gauss) = build(NetConfig { hidden: 16, depth: 1 }, None, 1).unwrap();
    let c = norm.states(&st).unwrap();
    let eps1 = Tensor::randn(0f32, 1.0, (50, STATE_DIM), &Device::Cpu).unwrap();
    let eps2 = Tensor::randn(0f32, 1.0, (50, STATE_DIM), &Device::Cpu).unwrap();
    let d = |a: Tensor, b: Tensor| (a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d(fc.sample(&c, &eps1).unwrap(), fc.sample(&c, &eps2).unwrap()), 0.0);
    assert!(d(gauss.sample(&c, &eps1).unwrap(), gauss.sample(&c, &eps2).unwrap()) > 1e-2);
}

/// `ebm.condition_noise`: the moved states lead to the same real next states, and move by the stated multiple
/// of each dimension's one-step-change spread.
#[test]
fn moved_states_keep_their_real_next_states() {
    let s = rows(4000, 5);
    let s1: Vec<f32> = s
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.05 * (1 + i % STATE_DIM) as f32 * ((i * 7919 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let norm = Normaliser::fit(&s, &s1);
    let set = TrainSet::new(&norm, &s, &s1).unwrap();
    let mut rng = ebm_kernels::Rng::new(3);
    let (c, z) = (set.c.clone(), set.z.clone());
    let (c0, z0) = set.move_states(c.clone(), z.clone(), 0.0, NoiseOn::All, &mut rng).unwrap();
    assert_eq!(c0.to_vec2::<f32>().unwrap(), c.to_vec2::<f32>().unwrap());
    assert_eq!(z0.to_vec2::<f32>().unwrap(), z.to_vec2::<f32>().unwrap());
    let (cm, zm) = set.move_states(c.clone(), z.clone(), 2.0, NoiseOn::All, &mut rng).unwrap();
    let next = norm.next_of_normalised(&c, &z).unwrap();
    let moved_next = norm.next_of_normalised(&cm, &zm).unwrap();
    let err = (moved_next - &next).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(err < 1e-4, "next states moved by {err}");
    // the raw states moved by N(0, (2 d)^2) per dimension: their spread over 4000 rows within 5%
    let moved = (norm.unstates(&cm).unwrap() - norm.unstates(&c).unwrap()).unwrap().to_vec2::<f32>().unwrap();
    for k in 0..STATE_DIM {
        let sd = (moved.iter().map(|r| r[k] * r[k]).sum::<f32>() / moved.len() as f32).sqrt();
        let want = 2.0 * norm.delta_std[k];
        assert!((sd / want - 1.0).abs() < 0.05, "dimension {k}: spread {sd}, want {want}");
    }
}

/// What the first preset got wrong (chains of step 0.01 that never left their N(0, 1) start) would pass every
/// other test: a short training run with the preset's sampler must bring the chains much closer to the real
/// changes than their start, and the same run with the first preset's sampler (textbook ULA, step 0.01) does not.
#[test]
fn short_run_training_moves_the_chains_to_the_real_changes() {
    use ebm_cd::config::Order;
    use ebm_traj::experiment::preset;
    use ebm_traj::generate::{generate, GenConfig};
    use ebm_traj::train::{train_energy, EbmConfig, TrainSet};
    let d = generate(&GenConfig { trajectories: 60, length: 40, seed: 2, ..Default::default() }).unwrap();
    let (s, s1) = d.transitions(d.split().0);
    let norm = Normaliser::fit(&s, &s1);
    let data = TrainSet::new(&norm, &s, &s1).unwrap();
    let n = 256;
    let (c, z) = (data.c.narrow(0, 0, n).unwrap(), data.z.narrow(0, 0, n).unwrap());
    let z0 = Tensor::randn(0f32, 1.0, (n, STATE_DIM), &Device::Cpu).unwrap();
    let msd = |a: &Tensor| (a - &z).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    let start = msd(&z0);
    let after = |cfg: &EbmConfig| {
        let (energy, _, _) = build(NetConfig { hidden: 32, depth: 2 }, None, 3).unwrap();
        train_energy(&energy, &data, cfg, 4, &mut |_| {}).unwrap();
        msd(&cfg.sampler().run(&energy, &z0, Some(&c), None, 11).unwrap().x)
    };
    let mut cfg = preset("traj-push-cpu").unwrap().unwrap().ebm;
    (cfg.iterations, cfg.batch, cfg.lr) = (800, 64, 1e-3);
    let first = EbmConfig { step_size: 0.01, noise_std: 0.1414, order: Order::Textbook, ..cfg };
    let (trained, old) = (after(&cfg), after(&first));
    eprintln!("mean squared distance to the real changes: start {start}, preset {trained}, first preset {old}");
    assert!(trained < 0.85 * start, "preset {trained}, start {start}");
    assert!(old > 0.95 * start, "first preset {old}, start {start}");
}

#[test]
fn the_contact_input_reads_the_gap_and_keeps_the_gradient_right() {
    let d = STATE_DIM;
    // identity state scaling; the pusher's one-step spread 0.01 m, so the input is tanh(gap / 0.02 m)
    let norm = unscaled_states(0.01);
    let scene = ebm_traj::scene::SceneConfig::default();
    let contact = ContactInput { norm: norm.clone(), scene };
    // the box at the origin, unturned (cos 4a = 1); the pusher inside it, touching it, and 10 cm clear
    let state = |px: f32| {
        let mut s = vec![0f32; d];
        s[0] = px;
        s[6] = 1.0;
        s
    };
    let r_plus_h = scene.pusher_radius + scene.box_half;
    let c =
        Tensor::from_vec([state(0.0), state(r_plus_h), state(r_plus_h + 0.1)].concat(), (3, d), &Device::Cpu).unwrap();
    let zero = Tensor::zeros((3, d), candle_core::DType::F32, &Device::Cpu).unwrap();
    let f = contact.feature(&c, &zero).unwrap().to_vec2::<f32>().unwrap();
    // the gaps are -(r + h), 0 and 0.1 m; the inputs are tanh(gap / 0.02) and tanh(gap / (r + h))
    let want = |gap: f32| [(gap / 0.02).tanh(), (gap / r_plus_h).tanh()];
    for (row, gap) in f.iter().zip([-r_plus_h, 0.0, 0.1]) {
        for (got, want) in row.iter().zip(want(gap)) {
            assert!((got - want).abs() < 1e-3, "gap {gap}: inputs {row:?}, want {:?}", want);
        }
    }

    // the energy with the input: its gradient in z against central differences, near contact where the input moves
    let (energy, _, _) = build(NetConfig { hidden: 32, depth: 2 }, Some(contact), 7).unwrap();
    assert_eq!(energy.net.params()[0].1.dims(), [32, 2 * d + ContactInput::WIDTH]);
    let n = 3;
    let z = Tensor::from_vec(rows(n, 4), (n, d), &Device::Cpu).unwrap();
    let (_, g) = energy.energy_and_grad(&z, Some(&c)).unwrap();
    let worst = worst_gradient_error(&energy, &z, &c, &g);
    assert!(worst < 2e-2, "largest relative difference {worst}");
    // without the input the first layer reads [c, z] only
    let without = build(NetConfig { hidden: 32, depth: 2 }, None, 7).unwrap().0;
    assert_eq!(without.net.params()[0].1.dims(), [32, 2 * d]);
}

/// `E(z) = |z|^2`: with chains that barely move, each candidate is its own N(0, 1) start.
struct Bowl;

impl Energy for Bowl {
    fn energy(&self, z: &Tensor, _c: Option<&Tensor>) -> candle_core::Result<Tensor> {
        z.sqr()?.sum(1)
    }
}

/// Best of K in the EBM's futures keeps the candidate the energy scores lowest: on `|z|^2` with 1-step chains of
/// a negligible step, one chain leaves `|z|^2` at its chi-square mean (11, the state's dimension) and the lowest of
/// eight is far below it (5.37, the mean of the lowest of eight chi-square draws with 11 degrees of freedom).
#[test]
fn best_of_k_futures_keep_the_lowest_energy_candidate() {
    use ebm_traj::futures::energy_futures;
    use ebm_traj::State;
    let norm = unscaled_states(1.0);
    let sampler = ebm_sampler::Langevin { noise_std: 0.0, ..ebm_sampler::Langevin::ula(1e-6, 1) };
    let starts = vec![State::from_slice(&[0.0; STATE_DIM]); 50];
    let mean_sq = |k: usize| {
        let f = energy_futures(&Bowl, &norm, &sampler, 1.0, None, &starts, 8, 1, k, 5).unwrap();
        // with the identity normaliser the change of state is z itself
        let mut total = 0f32;
        for (i, j) in (0..starts.len()).flat_map(|i| (0..8).map(move |j| (i, j))) {
            total += f.state(i, j, 1).iter().zip(f.state(i, j, 0)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
        }
        total / (starts.len() * 8) as f32
    };
    let (one, eight) = (mean_sq(1), mean_sq(8));
    eprintln!("mean |z|^2: {one} with one chain, {eight} with the best of eight");
    assert!((one - 11.0).abs() < 1.0, "{one}");
    assert!((eight - 5.37).abs() < 0.6, "{eight}");
}

/// Clipping to the data's range: the range is each coordinate's smallest and largest recorded value, and futures
/// clipped into it stay inside it while the unclipped ones (N(0, 1) changes of a state at the origin) leave it.
#[test]
fn clipped_futures_stay_in_the_recorded_range() {
    use ebm_traj::futures::{energy_futures, DataRange};
    use ebm_traj::State;
    let recorded: Vec<f32> =
        (0..3 * STATE_DIM).map(|i| [-0.5f32, 0.25, 0.0][i / STATE_DIM] + i as f32 * 1e-3).collect();
    let range = DataRange::of(&recorded);
    assert_eq!(range.lo[0], -0.5);
    assert_eq!(range.hi[STATE_DIM - 1], 0.25 + (2 * STATE_DIM - 1) as f32 * 1e-3);
    let norm = unscaled_states(1.0);
    let sampler = ebm_sampler::Langevin { noise_std: 0.0, ..ebm_sampler::Langevin::ula(1e-6, 1) };
    let starts = vec![State::from_slice(&[0.0; STATE_DIM]); 20];
    let outside = |f: &ebm_traj::futures::Futures| {
        f.generated()
            .chunks(STATE_DIM)
            .filter(|v| v.iter().enumerate().any(|(k, x)| *x < range.lo[k] || *x > range.hi[k]))
            .count()
    };
    let free = energy_futures(&Bowl, &norm, &sampler, 1.0, None, &starts, 4, 3, 1, 9).unwrap();
    let clipped = energy_futures(&Bowl, &norm, &sampler, 1.0, Some(&range), &starts, 4, 3, 1, 9).unwrap();
    assert!(outside(&free) > 200, "{} of 240 unclipped states outside", outside(&free));
    assert_eq!(outside(&clipped), 0);
    // a state inside the range is left as it is
    let inside =
        candle_core::Tensor::from_slice(&recorded[STATE_DIM..2 * STATE_DIM], (1, STATE_DIM), &candle_core::Device::Cpu)
            .unwrap();
    let kept = range.clip(&inside).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(&kept[..], &recorded[STATE_DIM..2 * STATE_DIM]);
}
