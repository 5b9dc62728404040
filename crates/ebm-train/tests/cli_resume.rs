//! `train --resume` through the command line continues bit for bit: a run killed (SIGKILL) or terminated (SIGTERM)
//! after its checkpoint at iteration 10 and resumed writes the same model, checkpoint and summary bytes as a run
//! straight through, and its metrics.jsonl holds only whole lines. A finished run resumed into a learning-rate
//! decay that starts where it stopped equals a run of the decayed schedule from the start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn ebm(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The stderr of a command that must fail.
fn ebm_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tiny digits run of `iterations`, checkpointing every 10 and logging every iteration.
fn tiny(iterations: u64) -> ebm_cd::config::RunConfig {
    let mut cfg = ebm_cd::presets::load("digits").unwrap();
    cfg.model = ebm_models::ModelConfig::DigitsNet(ebm_models::DigitsNetConfig { filters: 8, ..Default::default() });
    cfg.train.batch_size = 32;
    cfg.train.iterations = iterations;
    cfg.train.checkpoint_every = 10;
    cfg.train.figure_every = 0;
    cfg.train.log_every = 1;
    cfg.replay.capacity = 200;
    cfg.eval.per_class = 2;
    cfg.eval.steps = 2;
    cfg
}

/// The learning rate logged at each iteration of `dir`'s metrics.jsonl, in order.
fn logged_lrs(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["lr"].as_f64().filter(|_| v["iter"].is_u64()))
        .collect()
}

#[test]
fn a_finished_run_resumed_into_a_late_decay_equals_the_decayed_run_from_the_start() {
    let d = tmp("decay");
    let mut decayed = tiny(16);
    decayed.train.lr_final_fraction = 0.1;
    decayed.train.lr_decay_from = 10;
    let toml = d.join("decayed.toml");
    std::fs::write(&toml, decayed.to_toml()).unwrap();
    let (straight, resumed) = (d.join("straight"), d.join("resumed"));
    ebm(&["train", "--config", &s(&toml), "--out", &s(&straight)]);

    let first = d.join("constant.toml");
    std::fs::write(&first, tiny(10).to_toml()).unwrap();
    ebm(&["train", "--config", &s(&first), "--out", &s(&resumed)]);
    // a decay that would have changed iterations already done is refused, naming the keys
    let mut early = decayed.clone();
    early.train.lr_decay_from = 5;
    std::fs::write(resumed.join("config.toml"), early.to_toml()).unwrap();
    let err = ebm_fails(&["train", "--resume", &s(&resumed)]);
    assert!(err.contains("`train.lr_decay_from`") && err.contains("the 10 iterations done"), "{err}");
    std::fs::write(resumed.join("config.toml"), decayed.to_toml()).unwrap();
    ebm(&["train", "--resume", &s(&resumed)]);

    let lrs = logged_lrs(&resumed);
    assert_eq!(lrs.len(), 16);
    assert!(lrs[..11].iter().all(|&l| l == lrs[0]), "{lrs:?}");
    assert!(lrs[11..].windows(2).all(|w| w[1] < w[0]) && lrs[15] < 0.2 * lrs[0], "{lrs:?}");
    for f in ["model.safetensors", "checkpoint.safetensors", "summary.json"] {
        assert!(bytes(&straight.join(f)) == bytes(&resumed.join(f)), "{f} differs from the decayed run's");
    }
    let _ = std::fs::remove_dir_all(&d);
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-cli-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A path as a command-line argument.
fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The last iteration logged in `dir`'s metrics.jsonl (0 when none yet).
fn logged(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["iter"].as_u64())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_killed_and_resumed_run_equals_an_uninterrupted_one_byte_for_byte() {
    interrupted_and_resumed("KILL");
}

#[test]
fn a_terminated_and_resumed_run_equals_an_uninterrupted_one_byte_for_byte() {
    interrupted_and_resumed("TERM");
}

/// A run stopped by `signal` after iteration 12 (its last checkpoint at 10), then `train --resume`d.
fn interrupted_and_resumed(signal: &str) {
    let d = tmp(signal);
    let mut cfg = tiny(40);
    cfg.train.lr_final_fraction = 0.5; // a schedule over the whole run, which the resumed part must follow
    let toml = d.join("tiny.toml");
    std::fs::write(&toml, cfg.to_toml()).unwrap();
    let (straight, resumed) = (d.join("straight"), d.join("resumed"));
    ebm(&["train", "--config", &s(&toml), "--out", &s(&straight)]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_ebm-train"))
        .args(["train", "--config", &s(&toml), "--out", &s(&resumed)])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while logged(&resumed) < 12 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the run did not reach iteration 12");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    child.wait().unwrap();
    let at = logged(&resumed);
    assert!(at < 40 && !resumed.join("model.safetensors").exists(), "killed too late (iteration {at})");

    ebm(&["train", "--resume", &s(&resumed)]);
    let metrics = std::fs::read_to_string(resumed.join("metrics.jsonl")).unwrap();
    for l in metrics.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("a torn line {l:?}: {e}"));
    }
    for f in ["model.safetensors", "checkpoint.safetensors", "summary.json"] {
        assert!(bytes(&straight.join(f)) == bytes(&resumed.join(f)), "{f} differs after a kill at {at} and a resume");
    }
    let _ = std::fs::remove_dir_all(&d);
}
