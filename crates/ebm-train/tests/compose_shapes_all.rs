//! `ebm-train compose-shapes --design all-factors` end to end through the binary on tiny runs: the models of the
//! three presets trained with the mask, the pairs part's JSON and figure, the shape part's, and the refusals
//! (a slice model, models whose images differ, a slice-design flag).

use ebm_cd::config::DataConfig;
use ebm_models::ModelConfig;
use std::path::Path;
use std::process::Command;

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-cli-shapes-all-{}-{tag}", std::process::id()));
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

/// The preset's config with 2 filters, 64 images, 2 iterations (32x32 kept: the probe reads the generator's
/// smallest sprites there).
fn tiny_config(preset: &str, path: &Path, data_seed: Option<u64>) {
    let mut cfg = ebm_cd::presets::load(preset).unwrap();
    if let ModelConfig::DspritesNet(m) = &mut cfg.model {
        m.filters = 2;
    }
    if let DataConfig::Images { shapes: Some(s), .. } = &mut cfg.data {
        s.train = 64;
        s.test = 8;
        if let Some(seed) = data_seed {
            s.seed = seed;
        }
    }
    cfg.train.batch_size = 8;
    cfg.train.iterations = 2;
    cfg.sampler.steps = 2;
    cfg.replay.capacity = 20;
    cfg.eval.samples = 4;
    cfg.eval.steps = 2;
    std::fs::write(path, cfg.to_toml()).unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn all_factors_design_measures_held_out_and_seen_cells_and_refuses_mismatched_models() {
    let d = tmpdir("run");
    let p = |q: &Path| q.to_str().unwrap().to_string();
    for name in ["size", "position", "shape"] {
        let toml = d.join(format!("{name}.toml"));
        tiny_config(&format!("shapes-{name}-all-cpu"), &toml, None);
        cli(&["train", "--config", &p(&toml), "--out", &p(&d.join(name))]).unwrap();
    }
    let (size, position, shape, out) = (p(&d.join("size")), p(&d.join("position")), p(&d.join("shape")), d.join("exp"));
    let base = ["compose-shapes", "--design", "all-factors", "--size-model", &size, "--position-model", &position];
    let small = ["--samples-per-pair", "3", "--seen-samples", "1", "--steps", "2"];
    let outs = p(&out);
    let args: Vec<&str> = base.iter().chain(&small).copied().chain(["--out", outs.as_str()]).collect();
    cli(&args).unwrap();

    let r = json(&out.join("compose_shapes.json"));
    assert_eq!(r["design"], "all-factors");
    // the mask as the preset states it, and the cells it holds out
    let preset = ebm_cd::presets::load("shapes-size-all-cpu").unwrap();
    let DataConfig::Images { shapes: Some(s), .. } = &preset.data else { panic!("a shapes preset") };
    let mask = s.held_out.clone().unwrap();
    let recorded: ebm_data::cells::HeldOut = serde_json::from_value(r["mask"].clone()).unwrap();
    assert_eq!(recorded, mask);
    let cells_json = r["held_out_cells"].as_array().unwrap();
    assert_eq!(cells_json.len(), 9);
    for (c, want) in cells_json.iter().zip(mask.cells()) {
        let got = [&c["scale"], &c["position"][0], &c["position"][1]].map(|v| v.as_f64().unwrap() as f32);
        assert_eq!(got, [want.scale, want.position[0], want.position[1]]);
    }
    let cells = r["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 45);
    let held: Vec<_> = cells.iter().filter(|c| c["held_out"].as_bool().unwrap()).collect();
    assert_eq!(held.len(), 9);
    assert!(held.iter().all(|c| c["samples"] == 3 && c["composed_from_truth"].is_object()));
    assert!(cells.iter().filter(|c| !c["held_out"].as_bool().unwrap()).all(|c| c["samples"] == 1));
    for key in
        ["held_out_composed", "held_out_size_only", "held_out_position_only", "seen_composed", "held_out_energy_rank"]
    {
        let v = r[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    for part in ["held_out_ranks", "seen_ranks"] {
        for key in ["composed", "size", "position"] {
            let v = r[part][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{part}.{key} = {v}");
        }
    }
    assert_eq!(r["held_out_ranks"]["composed"], r["held_out_energy_rank"]);
    // the probe reads the generator's own images of the held-out cells (all three shapes)
    assert!(r["held_out_truth"].as_f64().unwrap() >= 0.9, "probe on true images: {}", r["held_out_truth"]);
    // the figure: a row per held-out cell, 3 samples each (upscaled 3x: 96 px per row at least)
    let png = image::open(out.join("composed.png")).unwrap();
    assert!(png.height() >= 9 * 96, "composed.png is {}x{}", png.width(), png.height());
    for f in ["size_only.png", "position_only.png", "seen_composed.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // the shape part on the same models
    let shape_args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--part", "shape", "--shape-model", &shape, "--samples-per-pair", "2", "--steps", "2", "--out", &outs])
        .collect();
    cli(&shape_args).unwrap();
    let s = json(&out.join("compose_shapes_shape.json"));
    assert_eq!(s["triples"].as_array().unwrap().len(), 27);
    assert_eq!(s["not"].as_array().unwrap().len(), 9);
    assert_eq!(s["or"].as_array().unwrap().len(), 4, "two pairs, plain and sharpened");
    assert!(s["held_out_truth"].as_f64().unwrap() >= 0.9, "probe on true triples: {}", s["held_out_truth"]);
    for f in ["triples.png", "not_square.png", "or.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // a position model trained on other images (another generator seed) is refused, naming the folder
    let other = d.join("position-other.toml");
    tiny_config("shapes-position-all-cpu", &other, Some(99));
    cli(&["train", "--config", &p(&other), "--out", &p(&d.join("position-other"))]).unwrap();
    let po = p(&d.join("position-other"));
    let bad = ["compose-shapes", "--design", "all-factors", "--size-model", &size, "--position-model", &po];
    let e = cli(&bad.iter().copied().chain(small).chain(["--out", outs.as_str()]).collect::<Vec<_>>()).unwrap_err();
    assert!(e.contains("position-other") && e.contains("same images"), "{e}");
    // a slice-design model is refused; so is a slice-design flag
    let slice = d.join("slice.toml");
    tiny_config("shapes-size-cpu", &slice, None);
    cli(&["train", "--config", &p(&slice), "--out", &p(&d.join("slice"))]).unwrap();
    let sl = p(&d.join("slice"));
    let bad = ["compose-shapes", "--design", "all-factors", "--size-model", &sl, "--position-model", &position];
    let e = cli(&bad.iter().copied().chain(["--out", outs.as_str()]).collect::<Vec<_>>()).unwrap_err();
    assert!(e.contains("all-factors design") && e.contains("held_out"), "{e}");
    let e =
        cli(&base.iter().copied().chain(["--composition", "bayes", "--out", &outs]).collect::<Vec<_>>()).unwrap_err();
    assert!(e.contains("--composition belongs to --design slice"), "{e}");
    let e = cli(&["compose-shapes", "--seen-samples", "4", "--out", &outs]).unwrap_err();
    assert!(e.contains("belong to --design all-factors"), "{e}");
    let e =
        cli(&base.iter().copied().chain(["--shape-model", &shape, "--out", &outs]).collect::<Vec<_>>()).unwrap_err();
    assert!(e.contains("--part shape only"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
