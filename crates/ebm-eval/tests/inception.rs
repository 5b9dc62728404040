//! The FID Inception-v3 against pytorch-fid's own model code: the same closed-form weights (a function of each
//! tensor's name and element index, computed here and by `fixtures/inception/make_fixture.py`), the same inputs;
//! the 2048-d pool features and the 1008 logits must agree to 2e-6 relative (measured on x86-64: pool 3.0e-7,
//! logits 7.3e-7 in the max norm; the bound leaves room for other summation orders, not for a wrong layer).

use candle_core::{Device, Tensor};
use ebm_eval::inception::{formula, read_weights, InceptionV3};
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception").join(name)
}

/// max |a - b| / max |b| and |a - b|_2 / |b|_2.
fn errors(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let max_b = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let max_d = a.iter().zip(&b).fold(0f64, |m, (p, q)| m.max((p - q).abs() as f64));
    let l2 = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let d2 = l2(&mut a.iter().zip(&b).map(|(p, q)| (p - q) as f64));
    let b2 = l2(&mut b.iter().map(|q| *q as f64));
    (max_d / max_b, d2 / b2)
}

#[test]
fn features_and_logits_equal_pytorch_fid() {
    let dev = Device::Cpu;
    let fx = candle_core::safetensors::load(fixture("fid_inception_formula.safetensors"), &dev).unwrap();
    let net = InceptionV3::from_tensors(&formula::weights(&dev).unwrap(), "formula weights", &dev).unwrap();
    let (pool, logits) = net.forward(&fx["input"]).unwrap();
    assert_eq!(pool.dims(), &[2, 2048]);
    assert_eq!(logits.dims(), &[2, 1008]);
    let (pm, p2) = errors(&pool, &fx["pool"]);
    let (lm, l2) = errors(&logits, &fx["logits"]);
    eprintln!("pool: max {pm:.2e} l2 {p2:.2e}; logits: max {lm:.2e} l2 {l2:.2e}");
    assert!(pm < 2e-6 && p2 < 2e-6, "pool features differ from pytorch-fid's: max {pm:e}, l2 {p2:e}");
    assert!(lm < 2e-6 && l2 < 2e-6, "logits differ from pytorch-fid's: max {lm:e}, l2 {l2:e}");
}

#[test]
fn weight_files_are_read_and_checked() {
    let dev = Device::Cpu;
    // a PyTorch state dict written by torch.save (zip format), with a BatchNorm counter
    let w = read_weights(&fixture("tiny_state.pth"), &dev).unwrap();
    let t = w["Conv2d_1a_3x3.conv.weight"].to_vec2::<f32>().unwrap();
    assert_eq!(t, vec![vec![0.0, 0.25, 0.5], vec![0.75, 1.0, 1.25]]);
    assert!(w.contains_key("Conv2d_1a_3x3.bn.num_batches_tracked"));
    // that file is no Inception: the error names the file and the first missing tensor
    let err = InceptionV3::load(&fixture("tiny_state.pth"), &dev).err().unwrap().to_string();
    assert!(err.contains("tiny_state.pth") && err.contains("Conv2d_1a_3x3.conv.weight"), "{err}");
    let err = InceptionV3::load(Path::new("nowhere/pt_inception.pth"), &dev).err().unwrap().to_string();
    assert!(err.contains("nowhere/pt_inception.pth") && err.contains("pytorch-fid"), "{err}");
}
