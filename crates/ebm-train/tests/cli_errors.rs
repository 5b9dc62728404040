//! User mistakes get one clear line naming the file and the problem, a failing exit status, and no panic.

use std::path::PathBuf;
use std::process::Command;

fn ebm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "a panic reached the user: {stderr}");
    (out.status.success(), stderr)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn unknown_preset() {
    let (ok, err) = ebm(&["train", "--preset", "toy-nonsense"]);
    assert!(!ok);
    assert!(err.contains("unknown preset `toy-nonsense`") && err.contains("toy-8gaussians"), "{err}");
}

#[test]
fn config_with_an_unknown_key() {
    let d = tmp("cfg");
    let p = d.join("my.toml");
    let text = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(["presets", "--show", "toy-moons"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap().replace("batch_size", "batchsize");
    std::fs::write(&p, text).unwrap();
    let (ok, err) = ebm(&["train", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("my.toml") && err.contains("batchsize"), "{err}");
}

#[test]
fn resume_without_a_checkpoint() {
    let d = tmp("resume");
    let (ok, err) = ebm(&["train", "--resume", d.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("checkpoint.safetensors") && err.contains("no checkpoint"), "{err}");
}

#[test]
fn missing_malformed_and_foreign_checkpoints() {
    let d = tmp("ckpt");
    let missing = d.join("nope.safetensors");
    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file").unwrap();
    for (path, want) in [(&missing, "nope.safetensors"), (&garbage, "not a valid safetensors")] {
        let (ok, err) = ebm(&["compose", "--model", path.to_str().unwrap(), "--model", path.to_str().unwrap()]);
        assert!(!ok);
        assert!(err.contains(want) && err.contains(path.file_name().unwrap().to_str().unwrap()), "{err}");
    }
    // a valid checkpoint of a class-conditional image model given without the label it needs
    let image = d.join("digits.safetensors");
    let cfg = ebm_models::ModelConfig::DigitsNet(ebm_models::DigitsNetConfig { filters: 2, ..Default::default() });
    let net = ebm_models::EnergyNet::new(cfg, &mut ebm_kernels::Rng::new(0), &candle_core::Device::Cpu).unwrap();
    net.save(&image).unwrap();
    let (ok, err) = ebm(&["compose", "--model", image.to_str().unwrap(), "--model", image.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("digits.safetensors") && err.contains("digits_net"), "{err}");
    // a safetensors file that is not a model checkpoint
    let other = d.join("other.safetensors");
    let mut b = ebm_io::Bundle::new();
    b.insert("w", candle_core::Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap());
    b.save(&other).unwrap();
    let (ok, err) = ebm(&["compose", "--model", other.to_str().unwrap(), "--model", other.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("other.safetensors") && err.contains("not an ebm model checkpoint"), "{err}");
}

#[test]
fn measuring_a_trajectory_run_again_needs_its_files() {
    let d = tmp("traj-eval");
    let (ok, err) = ebm(&["eval", "traj", "--run", d.to_str().unwrap(), "--out", d.join("out").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("config.toml"), "{err}");
    let text =
        Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(["presets", "--show", "traj-push-cpu"]).output().unwrap();
    std::fs::write(d.join("config.toml"), text.stdout).unwrap();
    let (ok, err) = ebm(&["eval", "traj", "--run", d.to_str().unwrap(), "--out", d.join("out").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("data.safetensors"), "{err}");
    let (ok, err) = ebm(&["eval", "traj", "--run", d.to_str().unwrap(), "--out", "o", "--rollout-steps", "0"]);
    assert!(!ok);
    assert!(err.contains("rollout_steps"), "{err}");
    assert!(!d.join("out").exists(), "nothing is written for a run that cannot be measured");
}
