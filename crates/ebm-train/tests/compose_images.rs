//! `ebm-train compose` on image models, end to end through the binary: two tiny class-conditional checkpoints trained
//! here (AND, OR, NOT, reproducibility), a continuous-condition DspritesNet, and the mistakes a user can make in a
//! `--model` spec, each refused with one clear line.

use candle_core::{DType, Device};
use ebm_cd::image;
use ebm_compose::spec::{parse_model_spec, CondSpec};
use ebm_models::{Activation, DigitsNetConfig, DspritesNetConfig, EnergyNet, MlpConfig, ModelConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

fn ebm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "a panic reached the user: {stderr}");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-compose-img-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A run folder (model.safetensors and config.toml) of a 4-filter DigitsNet trained for 3 iterations.
fn tiny_run(dir: &Path, seed: u64) -> String {
    let mut cfg = ebm_cd::presets::load("digits").unwrap();
    cfg.seed = seed;
    cfg.model = ModelConfig::DigitsNet(DigitsNetConfig { filters: 4, ..Default::default() });
    cfg.train.batch_size = 16;
    cfg.train.iterations = 3;
    cfg.sampler.steps = 3;
    cfg.eval.steps = 5;
    let data = image::load_data(&cfg).unwrap();
    let dev = Device::Cpu;
    let mut st = image::init_state(&cfg, &data, &dev).unwrap();
    for _ in 0..3 {
        image::iteration(&mut st, &data, &dev).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    st.model.save(&dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.toml"), cfg.to_toml()).unwrap();
    dir.to_str().unwrap().to_string()
}

fn bare_model(path: &Path, cfg: ModelConfig) -> String {
    EnergyNet::new(cfg, &mut ebm_kernels::Rng::new(1), &Device::Cpu).unwrap().save(path).unwrap();
    path.to_str().unwrap().to_string()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("compose.json")).unwrap()).unwrap()
}

fn samples(dir: &Path) -> Vec<f32> {
    let b = ebm_io::Bundle::load(&dir.join("samples.safetensors"), &Device::Cpu).unwrap();
    let x = &b.tensors["samples"];
    x.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn model_specs_parse() {
    let s = parse_model_spec("runs/digits:label=3:weight=-0.5:margin=0.2").unwrap();
    assert_eq!(s.path, PathBuf::from("runs/digits"));
    assert_eq!((s.cond, s.weight, s.margin), (Some(CondSpec::Label(3)), -0.5, Some(0.2)));
    let s = parse_model_spec("a:b/model.safetensors:cond=0.5, 0.25,1").unwrap();
    assert_eq!(s.path, PathBuf::from("a:b/model.safetensors"), "a path may contain `:`");
    assert_eq!(s.cond, Some(CondSpec::Cond(vec![0.5, 0.25, 1.0])));
    let s = parse_model_spec("runs/toy-moons:0.5").unwrap();
    assert_eq!((s.path, s.weight, s.cond), (PathBuf::from("runs/toy-moons"), 0.5, None), "legacy `PATH:W`");
    assert_eq!(parse_model_spec("runs/x").unwrap().weight, 1.0);
}

#[test]
fn image_models_compose_end_to_end() {
    let d = tmp("e2e");
    let (a, b) = (tiny_run(&d.join("a"), 1), tiny_run(&d.join("b"), 2));
    let common = ["--samples", "6", "--steps", "4", "--seed", "5"];
    // AND: two models with their own labels
    let and = d.join("and");
    let spec_a = format!("{a}:label=3");
    let spec_b = format!("{b}:label=5:weight=0.5");
    let mut args = vec!["compose", "--model", &spec_a, "--model", &spec_b, "--out", and.to_str().unwrap()];
    args.extend(common);
    let (ok, out, err) = ebm(&args);
    assert!(ok, "{err}");
    assert!(out.contains("compose.png"), "{out}");
    let r = report(&and);
    assert_eq!(r["op"], "and");
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for (m, (w, label)) in models.iter().zip([(1.0, 3), (0.5, 5)]) {
        assert_eq!((m["role"].as_str(), m["weight"].as_f64()), (Some("and"), Some(w)));
        assert_eq!(m["condition"]["label"], label);
        let e = m["energies"].as_array().unwrap();
        assert!(e.len() == 6 && e.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{m}");
    }
    let x = samples(&and);
    assert_eq!(x.len(), 6 * 64);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "samples leave the [0, 1] clamp of the run's sampler");
    assert!(and.join("compose.png").exists());
    // the same seed gives the same samples
    let again = d.join("again");
    let at = args.iter().position(|s| *s == and.to_str().unwrap()).unwrap();
    args[at] = again.to_str().unwrap();
    assert!(ebm(&args).0);
    assert_eq!(samples(&and), samples(&again), "compose is not reproducible from its seed");
    // OR of two labels, NOT a third: the NOT term reports the margin it used (its mean energy on the noise starts)
    let or = d.join("or");
    let (s1, s2, s3) = (format!("{a}:label=1"), format!("{b}:label=2"), format!("{a}:label=3:weight=-0.5"));
    let mut args = vec!["compose", "--op", "or", "--model", &s1, "--model", &s2, "--model", &s3];
    args.extend(["--out", or.to_str().unwrap()]);
    args.extend(common);
    let (ok, _, err) = ebm(&args);
    assert!(ok, "{err}");
    let r = report(&or);
    let roles: Vec<&str> = r["models"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["or", "or", "not"]);
    let not = &r["models"][2];
    let (margin, start) = (not["margin"].as_f64().unwrap(), not["energy_start_mean"].as_f64().unwrap());
    assert!((margin - start).abs() <= 1e-5 * (1.0 + start.abs()), "{not}");
    assert!(not["softness"].as_f64().is_some_and(|t| t > 0.0), "{not}");
    assert!(r["models"][0]["margin"].is_null());
}

#[test]
fn continuous_condition_models_compose() {
    let d = tmp("dsprites");
    let cfg = ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 3, ..Default::default() });
    let m = bare_model(&d.join("sprites.safetensors"), cfg);
    let out = d.join("out");
    let (s1, s2) = (format!("{m}:cond=0.5,0.2,0.8"), format!("{m}:cond=0.1,0.9,0.3:weight=2"));
    let (ok, _, err) = ebm(&[
        "compose",
        "--model",
        &s1,
        "--model",
        &s2,
        "--samples",
        "2",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["models"][1]["condition"]["cond"].as_array().unwrap().len(), 3);
    assert_eq!(samples(&out).len(), 2 * 64 * 64);
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let d = tmp("bad");
    let digits = bare_model(
        &d.join("digits.safetensors"),
        ModelConfig::DigitsNet(DigitsNetConfig { filters: 2, ..Default::default() }),
    );
    let sprites = bare_model(
        &d.join("sprites.safetensors"),
        ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 3, ..Default::default() }),
    );
    let toy = bare_model(
        &d.join("toy.safetensors"),
        ModelConfig::Mlp(MlpConfig {
            input_dim: 2,
            hidden: 8,
            depth: 1,
            activation: Activation::Swish,
            spectral_norm: true,
            weight_std: None,
        }),
    );
    let out = d.join("out");
    let ok = format!("{digits}:label=1");
    let sp = format!("{sprites}:cond=0.5,0.1,0.2");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec![ok.clone(), digits.clone()],
            vec!["digits.safetensors", "digits_net", "conditional", ":label=L", "0..10"],
        ),
        (vec![ok.clone(), format!("{digits}:label=10")], vec!["label 10 is out of range", "0..10"]),
        (vec![ok.clone(), format!("{digits}:cond=0.5")], vec!["digits_net", "not a latent vector"]),
        (vec![sp.clone(), format!("{sprites}:label=1")], vec!["dsprites_net", "3 continuous latents", "not a label"]),
        (
            vec![sp.clone(), format!("{sprites}:cond=0.5")],
            vec!["sprites.safetensors", "`cond` has 1 values", "3 continuous"],
        ),
        (vec![ok.clone(), sp.clone()], vec!["must share one input shape", "[1, 64, 64]", "[1, 8, 8]"]),
        (vec![ok.clone(), toy.clone()], vec!["must share one input shape", "mlp"]),
        (
            vec![format!("{ok}:weight=-1"), format!("{digits}:label=2:weight=-1")],
            vec!["every model has a negative weight"],
        ),
        (vec![ok.clone(), format!("{digits}:lable=2")], vec!["unknown option `lable`", "label="]),
        (vec![ok.clone(), format!("{digits}:label=2:weight=abc")], vec!["weight `abc` is not a number"]),
        (vec![ok.clone(), format!("{digits}:label=2:weight=0")], vec!["a weight of 0"]),
        (vec![ok.clone(), format!("{digits}:label=x")], vec!["label `x` is not a class index"]),
        (vec![ok.clone(), format!("{digits}:label=2:cond=1")], vec!["either `label` or `cond`"]),
        (vec![ok.clone(), format!("{digits}:label=2:margin=1")], vec!["`margin` is for NOT terms"]),
        (vec![ok.clone(), format!("{digits}:label=2:label=3")], vec!["`label` given twice"]),
        (vec![format!("{toy}:label=1"), toy.clone()], vec!["toy.safetensors", "no condition (it is unconditional)"]),
        (vec![ok.clone()], vec!["at least two models"]),
    ];
    for (models, want) in cases {
        let mut args = vec!["compose".to_string()];
        for m in &models {
            args.extend(["--model".to_string(), m.clone()]);
        }
        args.extend(["--samples", "2", "--steps", "1", "--out", out.to_str().unwrap()].map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = ebm(&refs);
        assert!(!ok, "{models:?} succeeded");
        for w in want {
            assert!(err.contains(w), "{models:?}: `{w}` not in the error: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{models:?}: not one line: {err}");
    }
    // 2D models: OR and NOT are refused there
    let (ok, _, err) =
        ebm(&["compose", "--op", "or", "--model", &toy, "--model", &toy, "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("2D models are composed with `--op and`"), "{err}");
}
