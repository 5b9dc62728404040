//! `ebm-train compose-shapes` end to end through the binary on tiny runs: the joint fine-tune, every pair
//! measured, a finished fine-tune reused, another pair's fine-tune refused.

use ebm_cd::config::DataConfig;
use ebm_models::ModelConfig;
use std::path::Path;
use std::process::Command;

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-cli-shapes-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary; `Err(stderr)` when it fails (a panic fails the test).
fn cli(args: &[&str]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "a panic reached the user: {stderr}");
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// The preset's config at 16x16 with 2 filters, 2 iterations.
fn tiny_config(preset: &str, path: &Path) {
    let mut cfg = ebm_cd::presets::load(preset).unwrap();
    if let ModelConfig::DspritesNet(m) = &mut cfg.model {
        m.filters = 2;
        m.image_size = 16;
    }
    if let DataConfig::Images { shapes: Some(s), .. } = &mut cfg.data {
        s.side = 16;
        s.train = 64;
        s.test = 8;
    }
    cfg.train.batch_size = 8;
    cfg.train.iterations = 2;
    cfg.sampler.steps = 3;
    cfg.replay.capacity = 20;
    cfg.eval.samples = 6;
    cfg.eval.steps = 2;
    std::fs::write(path, cfg.to_toml()).unwrap();
}

fn last_logged_iteration(metrics: &Path) -> (usize, u64) {
    let text = std::fs::read_to_string(metrics).unwrap();
    let last = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).next_back().unwrap();
    (text.lines().count(), last["iter"].as_u64().unwrap())
}

#[test]
fn compose_shapes_fine_tunes_jointly_then_measures_every_pair() {
    let d = tmpdir("compose-shapes");
    let p = |q: &Path| q.to_str().unwrap().to_string();
    for (preset, name) in [("shapes-size-cpu", "size"), ("shapes-position-cpu", "position")] {
        let toml = d.join(format!("{name}.toml"));
        tiny_config(preset, &toml);
        cli(&["train", "--config", &p(&toml), "--out", &p(&d.join(name))]).unwrap();
    }
    let out = d.join("exp");
    let args = |size: &str| {
        let size = p(&d.join(size));
        let position = p(&d.join("position"));
        let out = p(&out);
        let a = ["compose-shapes", "--size-model", &size, "--position-model", &position, "--joint-iterations", "2"];
        let b = ["--samples-per-pair", "1", "--steps", "2", "--out", &out];
        a.iter().chain(&b).map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |size: &str| cli(&args(size).iter().map(String::as_str).collect::<Vec<_>>());
    run("size").unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compose_shapes.json")).unwrap()).unwrap();
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 25);
    assert_eq!(pairs.iter().filter(|q| q["held_out"].as_bool().unwrap()).count(), 16);
    assert_eq!(report["joint_iterations"], 2);
    assert_eq!(report["size_model"].as_str().unwrap(), p(&out.join("joint").join("size")));
    assert_eq!(report["separate_models"][0].as_str().unwrap(), p(&d.join("size")));
    // the probe reads the generator's own images of the held-out pairs right (1.0 here; at 16x16 a pixel is 0.08
    // of the position range and the smallest square 2.4 pixels wide)
    assert!(report["held_out_truth"].as_f64().unwrap() >= 0.9, "{}", report["held_out_truth"]);
    for k in ["held_out_composed", "held_out_size_only", "held_out_position_only", "held_out_composed_from_truth"] {
        assert!((0.0..=1.0).contains(&report[k].as_f64().unwrap()), "{k}: {}", report[k]);
    }
    let files =
        ["composed.png", "composed_from_truth.png", "position_only.png", "joint/curves.png", "joint/size/config.toml"];
    for f in files {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let metrics = out.join("joint").join("metrics.jsonl");
    let logged = last_logged_iteration(&metrics);
    assert_eq!(logged.1, 2, "the fine-tune logs its last iteration");
    // a second call reuses the finished fine-tune instead of training again
    run("size").unwrap();
    assert_eq!(last_logged_iteration(&metrics), logged);
    // the fine-tune of one pair is not continued with another
    std::fs::rename(d.join("size"), d.join("size-renamed")).unwrap();
    let e = run("size-renamed").unwrap_err();
    assert!(e.contains("choose another --out"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
