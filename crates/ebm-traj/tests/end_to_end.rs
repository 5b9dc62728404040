//! A tiny run of the whole experiment through the library: every figure the issue names is written and finite,
//! the deterministic predictor's futures coincide, the simulator's do not, a second run into the same folder
//! is refused, and the saved models measured again reproduce the run's figures.

use ebm_cd::run_dir::Existing;
use ebm_traj::experiment::{preset, preset_names, reevaluate, run, EvalConfig, Output, TrajConfig};

fn tiny() -> TrajConfig {
    let mut cfg = preset("traj-push-cpu").unwrap().unwrap();
    cfg.name = "tiny".into();
    cfg.data.trajectories = 40;
    cfg.data.length = 30;
    cfg.data.test_fraction = 0.25;
    cfg.model.hidden = 16;
    cfg.model.depth = 1;
    cfg.ebm.iterations = 20;
    cfg.ebm.batch = 32;
    cfg.ebm.langevin_steps = 4;
    cfg.ebm.replay_capacity = 64;
    cfg.baselines.iterations = 20;
    cfg.baselines.batch = 32;
    cfg.eval.starts = 3;
    cfg.eval.futures = 3;
    cfg.eval.horizon = 80;
    cfg
}

#[test]
fn presets_load() {
    for n in preset_names() {
        let cfg = preset(n).unwrap().unwrap();
        assert_eq!(cfg.name, n);
        assert_eq!(cfg.eval.horizon, 80);
        assert!(cfg.eval.feasibility_weight > 0.0, "{n} runs the constrained rollouts");
    }
    assert_eq!(preset("traj-push").unwrap().unwrap().data.trajectories, 200_000);
    assert!(preset("digits").is_none());
    // a [data.scene] table marks a trajectory config; an image run's config and text that is not TOML are not one
    let is_traj = ebm_traj::experiment::is_trajectory_config;
    assert!(is_traj(ebm_traj::experiment::preset_text("traj-push-cpu").unwrap()));
    assert!(!is_traj("name = \"d\"\n[data]\nkind = \"images\"\nsource = \"digits\"\n"));
    assert!(!is_traj("[data.scene\n"));
    let text = ebm_traj::experiment::preset_text("traj-push-cpu").unwrap().replace("horizon", "horizn");
    let e = TrajConfig::from_toml(&text, "my.toml").unwrap_err().to_string();
    assert!(e.contains("my.toml") && e.contains("horizn"), "{e}");
    let text = ebm_traj::experiment::preset_text("traj-push-cpu").unwrap();
    let text = text.replace("feasibility_weight = 4.0", "feasibility_weight = -1.0");
    let e = TrajConfig::from_toml(&text, "neg.toml").unwrap_err().to_string();
    assert!(e.contains("neg.toml") && e.contains("feasibility_weight"), "{e}");
}

#[test]
fn tiny_run_writes_every_figure() {
    let dir = std::env::temp_dir().join(format!("ebm-traj-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Output { runs_dir: dir.clone(), out: Some(dir.join("run")), existing: Existing::Refuse };
    let (path, report) = run(&tiny(), &out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("trajectories.json")).unwrap()).unwrap();
    for k in [
        "diversity_ebm_t40",
        "diversity_fc_t40",
        "diversity_ebm_t80",
        "diversity_fc_t80",
        "diversity_real_t40",
        "diversity_real_t80",
        "diversity_gauss_t40",
        "diversity_gauss_t80",
        "violations_ebm",
        "violations_fc",
        "violations_gauss",
        "violations_real",
        "nearest_real_ebm",
        "nearest_real_gauss",
        "diversity_ebm_feasible_t80",
        "violations_ebm_feasible",
        "nearest_real_ebm_feasible",
    ] {
        let v = json[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
        assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
    }
    assert_eq!(report.figures["diversity_fc_t80"], 0.0, "one deterministic future per start");
    assert!(report.figures["diversity_real_t80"] > 0.01, "the policy's futures spread");
    assert!(report.figures["diversity_ebm_t80"] > 0.0 && report.figures["diversity_gauss_t80"] > 0.0);
    for f in ["trajectories.png", "models.safetensors", "data.safetensors", "config.toml", "metrics.jsonl"] {
        assert!(path.join(f).exists(), "{f}");
    }
    let again = run(&tiny(), &out).unwrap_err().to_string();
    assert!(again.contains("run"), "{again}");

    // the models measured again from their files give the training run's figures, to the bit
    let same = reevaluate(&path, |_| {}, &dir.join("same")).unwrap();
    assert_eq!(same.figures, report.figures);
    assert!(dir.join("same/trajectories.json").exists() && dir.join("same/trajectories.png").exists());
    let e = reevaluate(&path, |_| {}, &dir.join("same")).unwrap_err().to_string();
    assert!(e.contains("same") && e.contains("trajectories.json"), "{e}");
    // other rollout chains change the EBM's futures only
    let mut longer = tiny().eval;
    longer.rollout_steps = Some(12);
    let other = reevaluate(&path, |e| *e = longer, &dir.join("longer")).unwrap();
    assert_ne!(other.figures["nearest_real_ebm"], report.figures["nearest_real_ebm"]);
    for k in ["nearest_real_gauss", "diversity_real_t80", "violations_fc"] {
        assert_eq!(other.figures[k], report.figures[k], "{k}");
    }
    // a wider start of the rollout chains is a change of the EBM's futures too, and only of them
    let mut wider = tiny().eval;
    wider.rollout_init_std = Some(2.0);
    let other = reevaluate(&path, |e| *e = wider, &dir.join("wider")).unwrap();
    assert_ne!(other.figures["diversity_ebm_t40"], report.figures["diversity_ebm_t40"]);
    assert_eq!(other.figures["diversity_gauss_t40"], report.figures["diversity_gauss_t40"]);
    // other starts (test trajectories 3..6 of the 10) give other real futures; past the held-out set is refused
    let later = EvalConfig { first_start: 3, ..tiny().eval };
    let other = reevaluate(&path, |e| *e = later, &dir.join("later")).unwrap();
    assert_ne!(other.figures["diversity_real_t80"], report.figures["diversity_real_t80"]);
    let past = EvalConfig { first_start: 8, ..tiny().eval };
    let e = reevaluate(&path, |e| *e = past, &dir.join("past")).unwrap_err().to_string();
    assert!(e.contains("first_start"), "{e}");
    // the preset clips to the data's range; without it, the EBM's futures change, and only they
    assert!(tiny().eval.clip_to_data_range);
    let unclipped = EvalConfig { clip_to_data_range: false, ..tiny().eval };
    let other = reevaluate(&path, |e| *e = unclipped, &dir.join("unclipped")).unwrap();
    assert_ne!(other.figures["nearest_real_ebm"], report.figures["nearest_real_ebm"]);
    assert_eq!(other.figures["nearest_real_gauss"], report.figures["nearest_real_gauss"]);
    let bad = TrajConfig { eval: EvalConfig { candidates: 0, ..longer }, ..tiny() }.eval;
    let e = reevaluate(&path, |e| *e = bad, &dir.join("bad")).unwrap_err().to_string();
    assert!(e.contains("candidates"), "{e}");
    let bad = EvalConfig { rollout_init_std: Some(0.0), ..longer };
    let e = reevaluate(&path, |e| *e = bad, &dir.join("bad")).unwrap_err().to_string();
    assert!(e.contains("rollout_init_std"), "{e}");
    // a damaged model file is named, not half-read
    let models = path.join("models.safetensors");
    let bytes = std::fs::read(&models).unwrap();
    std::fs::write(&models, &bytes[..bytes.len() / 2]).unwrap();
    let e = reevaluate(&path, |_| {}, &dir.join("damaged")).unwrap_err().to_string();
    assert!(e.contains("models.safetensors"), "{e}");
    assert!(!dir.join("damaged/trajectories.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
