//! The fused update against the same formula written with plain candle ops, and its thread-count independence.

use candle_core::{Device, Tensor};
use ebm_kernels::langevin::noise_tensor;
use ebm_kernels::{add_noise_, langevin_update, Clip, LangevinUpdate, NoiseOrder, Rng};

const SHAPE: [usize; 4] = [5, 3, 7, 9]; // odd sizes: chunks and Philox blocks straddle samples

fn rand_tensor(rng: &mut Rng, lo: f32, hi: f32) -> Tensor {
    let n = SHAPE.iter().product();
    Tensor::from_vec(rng.uniform_vec(n, lo, hi), &SHAPE[..], &Device::Cpu).unwrap()
}

/// The update as a user would write it with tensor ops, with the same noise.
fn reference(x: &Tensor, g: &Tensor, mask: Option<&Tensor>, p: &LangevinUpdate) -> Tensor {
    let n = noise_tensor(x.dims(), p.seed, p.step, x.device()).unwrap();
    let g = match p.clip {
        Clip::None => g.clone(),
        Clip::Elementwise(c) => g.clamp(-c, c).unwrap(),
        Clip::SampleL2(c) => {
            let norms = g.sqr().unwrap().flatten_from(1).unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
            let scale = norms.affine(1.0 / c as f64, 0.0).unwrap().maximum(1.0).unwrap().recip().unwrap();
            g.broadcast_mul(&scale.reshape((SHAPE[0], 1, 1, 1)).unwrap()).unwrap()
        }
    };
    let stepped = (x - (g * p.step_size as f64).unwrap()).unwrap();
    let noise = (n * p.noise_std as f64).unwrap();
    let (lo, hi) = p.clamp.unwrap();
    let y = match p.order {
        NoiseOrder::Textbook => (stepped + noise).unwrap().clamp(lo, hi).unwrap(),
        NoiseOrder::NoiseFirst => (stepped.clamp(lo, hi).unwrap() + noise).unwrap(),
    };
    match mask {
        Some(m) => m.where_cond(&y, x).unwrap(),
        None => y,
    }
}

fn params(order: NoiseOrder, clip: Clip) -> LangevinUpdate {
    LangevinUpdate { step_size: 3.0, noise_std: 0.05, clip, clamp: Some((0.0, 1.0)), order, seed: 1234, step: 17 }
}

#[test]
fn fused_equals_plain_ops_with_and_without_mask() {
    let mut rng = Rng::new(9);
    for order in [NoiseOrder::Textbook, NoiseOrder::NoiseFirst] {
        for clip in [Clip::None, Clip::Elementwise(0.02), Clip::SampleL2(0.5)] {
            let x = rand_tensor(&mut rng, -0.1, 1.1);
            let g = rand_tensor(&mut rng, -0.05, 0.05);
            let m = rand_tensor(&mut rng, 0.0, 1.0).ge(0.5).unwrap();
            let p = params(order, clip);
            for mask in [None, Some(&m)] {
                let fused = langevin_update(
                    &x,
                    Some(&g),
                    mask.map(|m| m.to_dtype(candle_core::DType::F32).unwrap()).as_ref(),
                    &p,
                )
                .unwrap();
                let want = reference(&x, &g, mask, &p);
                let diff = (&fused - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-6, "{order:?} {clip:?} mask={} max diff {diff}", mask.is_some());
                if let Some(m) = mask {
                    let m = m.flatten_all().unwrap().to_vec1::<u8>().unwrap();
                    let (a, b) = (
                        x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                        fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    );
                    let mut moved = 0;
                    for i in 0..m.len() {
                        if m[i] == 0 {
                            assert_eq!(a[i].to_bits(), b[i].to_bits(), "element {i} outside the mask changed");
                        } else if a[i] != b[i] {
                            moved += 1;
                        }
                    }
                    assert!(moved > m.len() / 3, "too few masked entries moved: {moved}");
                }
            }
        }
    }
}

#[test]
fn add_noise_matches_the_noise_tensor() {
    let x = Tensor::zeros(&SHAPE[..], candle_core::DType::F32, &Device::Cpu).unwrap();
    add_noise_(&x, None, 0.5, 77, 3).unwrap();
    let want = (noise_tensor(&SHAPE, 77, 3, &Device::Cpu).unwrap() * 0.5).unwrap();
    let diff = (&x - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn same_seed_same_result_on_one_and_two_threads() {
    let big = [64usize, 3, 32, 32]; // several rayon chunks
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut rng = Rng::new(5);
            let n = big.iter().product();
            let x = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), &big[..], &Device::Cpu).unwrap();
            let g = Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), &big[..], &Device::Cpu).unwrap();
            let p = params(NoiseOrder::NoiseFirst, Clip::SampleL2(3.0));
            langevin_update(&x, Some(&g), None, &p).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
    };
    let (a, b) = (run(1), run(2));
    assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()));
}

#[test]
fn different_steps_draw_different_noise() {
    let a = noise_tensor(&[1000], 1, 0, &Device::Cpu).unwrap();
    let b = noise_tensor(&[1000], 1, 1, &Device::Cpu).unwrap();
    let same =
        a.eq(&b).unwrap().to_dtype(candle_core::DType::F32).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(same, 0.0);
}

#[test]
fn bad_operands_are_rejected_with_a_message() {
    let x = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let g = Tensor::zeros((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = langevin_update(&x, Some(&g), None, &LangevinUpdate::default()).unwrap_err().to_string();
    assert!(err.contains("grad has shape"), "{err}");
    let x64 = Tensor::zeros((2, 3), candle_core::DType::F64, &Device::Cpu).unwrap();
    let err = langevin_update(&x64, None, None, &LangevinUpdate::default()).unwrap_err().to_string();
    assert!(err.contains("must be f32"), "{err}");
}
