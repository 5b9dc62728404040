//! What a hostile-but-fair user can do to a run folder and to the files the command line reads, through the
//! binary: every case ends in a non-zero exit with one message naming the file or key at fault, no panic, and
//! nothing lost (the files it refused are unchanged).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ebm(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm-train")).args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{args:?}: a panic: {stderr}");
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// Runs `args` expecting a refusal with exit status `code` whose last line holds every one of `want`.
fn refused_with(code: i32, args: &[&str], want: &[&str]) -> String {
    let o = ebm(args);
    assert_eq!(o.code, Some(code), "{args:?}: exit status: {}", o.stderr);
    refusal(o, args, want)
}

/// Runs `args` expecting a refusal whose last line holds every one of `want`.
fn refused(args: &[&str], want: &[&str]) -> String {
    refusal(ebm(args), args, want)
}

fn refusal(o: Out, args: &[&str], want: &[&str]) -> String {
    assert!(!o.ok, "{args:?} succeeded: {}", o.stdout);
    let last = o.stderr.trim().lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{args:?}: {}", o.stderr);
    for w in want {
        assert!(last.contains(w), "{args:?}: `{w}` not in: {last}");
    }
    last
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny digits config (4 filters, `iterations` iterations) written to `dir/t.toml`.
fn tiny_config(dir: &Path, iterations: u64, edit: impl FnOnce(&mut ebm_cd::RunConfig)) -> PathBuf {
    let mut cfg = ebm_cd::presets::load("digits").unwrap();
    cfg.model = ebm_models::ModelConfig::DigitsNet(ebm_models::DigitsNetConfig { filters: 4, ..Default::default() });
    cfg.train.batch_size = 16;
    cfg.train.iterations = iterations;
    cfg.train.checkpoint_every = 2;
    cfg.train.figure_every = 0;
    cfg.train.log_every = 1;
    cfg.sampler.steps = 3;
    cfg.replay.capacity = 40;
    cfg.eval.per_class = 2;
    cfg.eval.steps = 2;
    edit(&mut cfg);
    let p = dir.join("t.toml");
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

/// A finished tiny run in `dir/run`.
fn tiny_run(dir: &Path) -> PathBuf {
    let toml = tiny_config(dir, 4, |_| {});
    let run = dir.join("run");
    let o = ebm(&["train", "--config", s(&toml), "--out", s(&run)]);
    assert!(o.ok, "{}", o.stderr);
    run
}

#[test]
fn run_folders_cannot_be_shared_overwritten_or_escaped() {
    let d = tmp("folders");
    let run = tiny_run(&d);
    let toml = d.join("t.toml");
    // a finished run is not overwritten: resume it or start over with --force, which moves it aside
    let model = std::fs::read(run.join("model.safetensors")).unwrap();
    refused(&["train", "--config", s(&toml), "--out", s(&run)], &[s(&run), "--resume", "--force", "finished"]);
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model);
    let o = ebm(&["train", "--config", s(&toml), "--out", s(&run), "--force"]);
    assert!(o.ok, "{}", o.stderr);
    let aside: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("run.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old run is kept aside");
    assert_eq!(std::fs::read(aside[0].path().join("model.safetensors")).unwrap(), model);

    // a folder being written is refused to a second writer, naming the holder
    let slow = tiny_config(&d, 400, |c| c.sampler.steps = 20);
    let busy = d.join("busy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebm-train"))
        .args(["train", "--config", s(&slow), "--out", s(&busy)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !busy.join("checkpoint.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the first writer did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    refused_with(3, &["train", "--resume", s(&busy)], &[s(&busy), "in use", &pid]);
    refused(&["train", "--config", s(&slow), "--out", s(&busy), "--force"], &[s(&busy), "in use", &pid]);
    child.kill().unwrap();
    child.wait().unwrap();

    // a run's name is a plain folder name
    let bad = tiny_config(&d, 4, |c| c.name = "../../escaped".into());
    refused(&["train", "--config", s(&bad), "--runs-dir", s(&d.join("runs"))], &["t.toml", "name", "plain"]);
    assert!(!d.join("escaped").exists() && !d.parent().unwrap().join("escaped").exists());

    // metrics.jsonl is never followed through a symbolic link
    #[cfg(unix)]
    {
        let outside = d.join("outside.txt");
        std::fs::write(&outside, b"precious").unwrap();
        let m = run.join("metrics.jsonl");
        std::fs::remove_file(&m).unwrap();
        std::os::unix::fs::symlink(&outside, &m).unwrap();
        refused(&["train", "--resume", s(&run)], &["metrics.jsonl", "symbolic link"]);
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A change to a config.
type ConfigEdit = Box<dyn Fn(&mut ebm_cd::RunConfig)>;
/// A change to a safetensors header.
type HeaderEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn configs_are_range_checked_before_training() {
    let d = tmp("configs");
    let cases: Vec<(&str, ConfigEdit)> = vec![
        ("sampler.clamp", Box::new(|c| c.sampler.clamp = Some([1.0, 0.0]))),
        ("sampler.clamp", Box::new(|c| c.sampler.clamp = Some([f32::NAN, 1.0]))),
        ("train.adam.beta1", Box::new(|c| c.train.adam.beta1 = 2.0)),
        ("train.adam.lr", Box::new(|c| c.train.adam.lr = 1e300)),
        ("sampler.step_size", Box::new(|c| c.sampler.step_size = f32::INFINITY)),
        ("eval.per_class", Box::new(|c| c.eval.per_class = 0)),
        ("replay.reinit_prob", Box::new(|c| c.replay.reinit_prob = f64::NAN)),
    ];
    for (key, edit) in cases {
        let toml = tiny_config(&d, 4, edit);
        refused_with(2, &["train", "--config", s(&toml), "--out", s(&d.join("never"))], &["t.toml", key]);
        assert!(!d.join("never").exists(), "{key}: a run folder was made for a refused config");
    }
    // a model far too large for the machine is refused before anything is allocated
    let toml = tiny_config(&d, 4, |c| {
        c.model =
            ebm_models::ModelConfig::DigitsNet(ebm_models::DigitsNetConfig { filters: 100_000, ..Default::default() })
    });
    refused(&["train", "--config", s(&toml), "--out", s(&d.join("never"))], &["GiB", "model.filters"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// `path` with the safetensors header rewritten by `edit` (the data section kept).
fn with_header(path: &Path, out: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    edit(&mut h);
    let mut text = serde_json::to_vec(&h).unwrap();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut o = (text.len() as u64).to_le_bytes().to_vec();
    o.extend(text);
    o.extend(&b[8 + n..]);
    std::fs::write(out, o).unwrap();
}

fn first_f32_tensor(h: &serde_json::Value) -> String {
    h.as_object().unwrap().iter().find(|(k, v)| *k != "__metadata__" && v["dtype"] == "F32").unwrap().0.clone()
}

#[test]
fn damaged_checkpoints_and_models_are_refused_by_name() {
    let d = tmp("files");
    let run = tiny_run(&d);
    let model = run.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mk = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> PathBuf {
        let p = bad.join(name);
        with_header(&model, &p, edit);
        p
    };
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let p = bad.join("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() - 50]).unwrap();
    cases.push((p, "not a valid safetensors"));
    let p = bad.join("flipped.safetensors");
    let mut f = bytes.clone();
    f[20] ^= 0xff;
    f[21] ^= 0x5a;
    std::fs::write(&p, &f).unwrap();
    cases.push((p, "safetensors"));
    let p = bad.join("header.safetensors");
    let mut f = bytes.clone();
    f[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&p, &f).unwrap();
    cases.push((p, "header"));
    let huge = mk("huge.safetensors", &|h| {
        let c = h["__metadata__"]["ebm.model_config"].as_str().unwrap().replace("\"filters\":4", "\"filters\":9999999");
        h["__metadata__"]["ebm.model_config"] = c.into();
        h["__metadata__"].as_object_mut().unwrap().remove("ebm.run_config");
    });
    cases.push((huge, "needs"));
    cases.push((
        mk("i32.safetensors", &|h| {
            let k = first_f32_tensor(h);
            h[k]["dtype"] = "I32".into()
        }),
        "I32",
    ));
    let nan = bad.join("nan.safetensors");
    {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let off = h[first_f32_tensor(&h)]["data_offsets"][0].as_u64().unwrap() as usize;
        let mut f = bytes.clone();
        f[8 + n + off..8 + n + off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&nan, &f).unwrap();
    }
    cases.push((nan, "non-finite"));
    for (file, want) in &cases {
        let before = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        for cmd in [
            vec!["sample", "--model", s(file), "--per-class", "1", "--steps", "1", "--out", s(&d.join("o"))],
            vec!["eval", "classify", "--model", s(file), "--data", "digits", "--limit", "5", "--out", s(&d.join("e"))],
            vec!["compose", "--model", &format!("{}:label=1", s(file)), "--model", &format!("{}:label=2", s(file))],
        ] {
            refused(&cmd, &[name, want]);
        }
        assert_eq!(std::fs::read(file).unwrap(), before, "{name} was changed");
    }
    // the same damage in a run's checkpoint stops `--resume` and leaves the checkpoint as it was
    let ck = run.join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();
    let damage: Vec<(&str, HeaderEdit)> = vec![
        ("capacity", Box::new(|h| h["__metadata__"]["replay/capacity"] = "1000000000000000".into())),
        ("not a number", Box::new(|h| h["__metadata__"]["iteration"] = "-3".into())),
        ("three integers", Box::new(|h| h["__metadata__"]["rng"] = "1 2".into())),
        (
            "another model",
            Box::new(|h| {
                let c = h["__metadata__"]["run_config"].as_str().unwrap().replace("filters = 4", "filters = 5");
                h["__metadata__"]["run_config"] = c.into();
            }),
        ),
    ];
    let good_path = d.join("checkpoint.good");
    std::fs::write(&good_path, &good).unwrap();
    for (want, edit) in damage {
        with_header(&good_path, &ck, edit);
        let damaged = std::fs::read(&ck).unwrap();
        refused_with(3, &["train", "--resume", s(&run), "--iterations", "6"], &["checkpoint.safetensors", want]);
        assert_eq!(std::fs::read(&ck).unwrap(), damaged, "{want}: the checkpoint was changed");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn inputs_are_checked_and_8_bit_pixels_are_scaled() {
    let d = tmp("inputs");
    let run = tiny_run(&d);
    let dev = candle_core::Device::Cpu;
    let px: Vec<u8> = (0..2 * 64).map(|i| (i * 7 % 256) as u8).collect();
    let write = |name: &str, t: candle_core::Tensor| {
        let mut b = ebm_io::Bundle::new();
        b.insert("images", t);
        let p = d.join(name);
        b.save(&p).unwrap();
        p
    };
    let u8s = write("u8.safetensors", candle_core::Tensor::from_vec(px.clone(), (2, 1, 8, 8), &dev).unwrap());
    let f: Vec<f32> = px.iter().map(|&p| p as f32 / 255.0).collect();
    let f32s = write("f32.safetensors", candle_core::Tensor::from_vec(f.clone(), (2, 1, 8, 8), &dev).unwrap());
    let energies = |p: &Path| -> serde_json::Value {
        let o = ebm(&["score", "--model", s(&run), "--input", s(p)]);
        assert!(o.ok, "{}", o.stderr);
        serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap()["energies"].clone()
    };
    assert_eq!(energies(&u8s), energies(&f32s), "8-bit pixels are p / 255");
    let mut g = f.clone();
    g[5] = f32::NAN;
    let nan = write("nan_in.safetensors", candle_core::Tensor::from_vec(g, (2, 1, 8, 8), &dev).unwrap());
    refused(&["score", "--model", s(&run), "--input", s(&nan)], &["nan_in.safetensors", "non-finite"]);
    refused(&["classify", "--model", s(&run), "--input", s(&nan)], &["nan_in.safetensors", "non-finite"]);
    // a label out of range names the labels file, not the images
    let labels = d.join("labels-idx1-ubyte");
    let mut l = vec![0, 0, 8, 1, 0, 0, 0, 2];
    l.extend([3u8, 12]);
    std::fs::write(&labels, &l).unwrap();
    refused(
        &["classify", "--model", s(&run), "--input", s(&f32s), "--labels", s(&labels)],
        &["labels-idx1-ubyte", "12"],
    );
    // limits of zero are refused, not reported as 0%
    refused(&["eval", "classify", "--model", s(&run), "--limit", "0"], &["--limit"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resuming_with_an_edited_config_takes_only_what_may_change() {
    let d = tmp("drift");
    let run = tiny_run(&d);
    let cfg_path = run.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("filters = 4", "filters = 6").replace("steps = 3", "steps = 4")).unwrap();
    refused(&["train", "--resume", s(&run)], &["config.toml", "model.filters", "sampler.steps"]);
    std::fs::write(&cfg_path, text.replace("iterations = 4", "iterations = 6")).unwrap();
    let o = ebm(&["train", "--resume", s(&run)]);
    assert!(o.ok && o.stderr.contains("train.iterations"), "{}", o.stderr);
    let last = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(last.lines().last().unwrap().contains("\"iter\":6"), "{last}");
    // a foreign config.toml does not change how the model is sampled: the recorded one is used, and said so
    let other = tiny_config(&d, 4, |c| c.sampler.step_size = 3.0);
    std::fs::copy(&other, &cfg_path).unwrap();
    let o = ebm(&["sample", "--model", s(&run), "--per-class", "1", "--steps", "2", "--out", s(&d.join("s"))]);
    assert!(o.ok && o.stderr.contains("recorded"), "{}", o.stderr);
    let _ = std::fs::remove_dir_all(&d);
}
