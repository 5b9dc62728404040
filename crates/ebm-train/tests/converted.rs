//! Models converted from TensorFlow checkpoints (ebm-models' fixture, written by real TensorFlow from the authors'
//! code) through the command line: `score` reproduces the official energies, `sample` and `eval classify` run, and
//! `--model hf://...` resolves from a pre-filled hub cache without the network and fails clearly without one.

use candle_core::Device;
use ebm_io::tf_bundle::TfBundle;
use ebm_models::{ModelConfig, ResNet32Config};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ebm-models/tests/fixtures/tf")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-converted-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs ebm-train with a hub environment of its own (never the user's cache, never the network).
fn ebm(args: &[&str], hf_home: &Path, offline: bool) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebm-train"));
    cmd.args(args).env("HF_HOME", hf_home).env_remove("HF_HUB_CACHE").env("HF_ENDPOINT", "http://127.0.0.1:9");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    } else {
        cmd.env_remove("HF_HUB_OFFLINE");
    }
    let out = cmd.output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "a panic reached the user: {stderr}");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The fixture's conditional ResNet32, converted and saved; its inputs; the official energies `[N][class]`.
fn converted(dir: &Path) -> (PathBuf, PathBuf, Vec<Vec<f32>>) {
    let cfg = ModelConfig::ResNet32(ResNet32Config { filters: 8, classes: 10, ..Default::default() });
    let ckpt = TfBundle::open(&fixtures().join("resnet32_cond/model_7")).unwrap();
    let (net, _) = ebm_models::convert::load_tf(&ckpt, &cfg, None).unwrap();
    let model = dir.join("cifar10_cond_tiny.safetensors");
    net.save(&model).unwrap();
    let expected = ebm_io::Bundle::load(&fixtures().join("expected.safetensors"), &Device::Cpu).unwrap();
    let mut input = ebm_io::Bundle::new();
    input.insert("images", expected.tensors["resnet32_cond/x"].clone());
    let x = dir.join("x.safetensors");
    input.save(&x).unwrap();
    (model, x, expected.tensors["resnet32_cond/energy"].to_vec2::<f32>().unwrap())
}

fn energies(stdout: &str) -> Vec<Vec<f64>> {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    serde_json::from_value(v["energies"].clone()).unwrap()
}

fn assert_official(got: &[Vec<f64>], want: &[Vec<f32>]) {
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - *b as f64).abs() <= 1e-4 * (*b as f64).abs().max(1.0), "ours {g:?}, TensorFlow {w:?}");
        }
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn score_sample_and_classify_run_on_a_converted_model() {
    let d = tmp("cli");
    let (model, x, want) = converted(&d);
    let (ok, out, err) = ebm(&["score", "--model", model.to_str().unwrap(), "--input", x.to_str().unwrap()], &d, true);
    assert!(ok, "{err}");
    assert_official(&energies(&out), &want);

    let samples = d.join("samples");
    let args = ["sample", "--model", model.to_str().unwrap(), "--per-class", "1", "--steps", "5"];
    let (ok, _, err) = ebm(&[&args[..], &["--out", samples.to_str().unwrap()]].concat(), &d, true);
    assert!(ok, "{err}");
    let s = ebm_io::Bundle::load(&samples.join("samples.safetensors"), &Device::Cpu).unwrap();
    let images = s.tensors.values().find(|t| t.rank() == 4).expect("a batch of images");
    assert_eq!(images.dims(), &[10, 3, 32, 32]);
    let v = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));

    // a tiny CIFAR-10 test batch: each fixture image twice, labelled with the class the official energies rank first
    // (lowest) and then with the class they rank last, so the accuracy is exactly 1/2 if our predictions are TF's
    let cifar = d.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&cifar).unwrap();
    let xs = ebm_io::Bundle::load(&x, &Device::Cpu).unwrap().tensors["images"].flatten_all().unwrap();
    let xs = xs.to_vec1::<f32>().unwrap();
    let mut records = Vec::new();
    for pick_worst in [false, true] {
        for (i, row) in want.iter().enumerate() {
            let order = |a: &usize, b: &usize| row[*a].partial_cmp(&row[*b]).unwrap();
            let label = if pick_worst { (0..10).max_by(order) } else { (0..10).min_by(order) }.unwrap();
            records.push(label as u8);
            records.extend(xs[i * 3072..(i + 1) * 3072].iter().map(|p| (p * 255.0).round() as u8));
        }
    }
    std::fs::write(cifar.join("test_batch.bin"), &records).unwrap();
    let out_dir = d.join("eval");
    let (ok, _, err) = ebm(
        &["eval", "classify", "--model", model.to_str().unwrap(), "--data", "cifar10", "--data-dir"]
            .iter()
            .copied()
            .chain([d.to_str().unwrap(), "--out", out_dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &d,
        true,
    );
    assert!(ok, "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("classify.json")).unwrap()).unwrap();
    assert_eq!(r["images"], 6);
    assert!((r["accuracy"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{r}");
}

/// Lays `file` out in `hf_home/hub` as the hub clients cache `OWNER/REPO` at `revision` (blob, snapshot, ref).
fn prefill(hf_home: &Path, repo: &str, revision: &str, name: &str, file: &Path) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let root = hf_home.join("hub").join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::create_dir_all(root.join("snapshots").join(commit)).unwrap();
    let blob = root.join("blobs/3f1e0cbd9e3a2a5b7f41a5e4a1c1a9d6b0a1b2c3");
    std::fs::copy(file, &blob).unwrap();
    std::os::unix::fs::symlink(&blob, root.join("snapshots").join(commit).join(name)).unwrap();
    std::fs::write(root.join("refs").join(revision), commit).unwrap();
}

#[test]
fn hub_specs_resolve_from_the_cache_offline_and_fail_clearly_without_it() {
    let d = tmp("hub");
    let (model, x, want) = converted(&d);
    let hf_home = d.join("hf");
    prefill(&hf_home, "ebm-test/igebm-tiny", "main", "model.safetensors", &model);
    prefill(&hf_home, "ebm-test/igebm-tiny", "v1", "cifar.safetensors", &model);
    let xs = x.to_str().unwrap();
    for spec in [
        "hf://ebm-test/igebm-tiny",
        "hf://ebm-test/igebm-tiny@v1/cifar.safetensors",
        "hf://ebm-test/igebm-tiny@0123456789abcdef0123456789abcdef01234567/model.safetensors",
    ] {
        let (ok, out, err) = ebm(&["score", "--model", spec, "--input", xs], &hf_home, true);
        assert!(ok, "{spec}: {err}");
        assert_official(&energies(&out), &want);
    }
    // not cached, offline: what to download and where it would go
    let (ok, _, err) = ebm(&["score", "--model", "hf://ebm-test/other", "--input", xs], &hf_home, true);
    assert!(!ok && err.contains("not in the hub cache") && err.contains("models--ebm-test--other"), "{err}");
    assert!(err.contains("huggingface-cli download ebm-test/other model.safetensors"), "{err}");
    // not cached, online but the hub unreachable (a closed loopback port): a download error naming the spec
    let (ok, _, err) = ebm(&["score", "--model", "hf://ebm-test/other", "--input", xs], &hf_home, false);
    assert!(!ok && err.contains("hf://ebm-test/other") && err.contains("download failed"), "{err}");
    // a malformed spec
    let (ok, _, err) = ebm(&["score", "--model", "hf://just-owner", "--input", xs], &hf_home, true);
    assert!(!ok && err.contains("hf://OWNER/REPO"), "{err}");
}

/// A loopback stand-in for the hub's file endpoint (`/OWNER/REPO/resolve/REVISION/FILE`, ranged GETs with the
/// `etag`/`x-repo-commit` headers hf-hub reads); serves `files` until the test ends. Returns its address.
fn loopback_hub(files: Vec<(String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut range_start = 0usize;
            let mut range_end = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if request.is_empty() {
                    request = line.clone();
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range_start = a.parse().unwrap();
                    range_end = b.parse::<usize>().ok();
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let reply = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let end = range_end.unwrap_or(body.len() - 1).min(body.len() - 1);
                    let part = &body[range_start..=end];
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {range_start}-{end}/{}\r\n\
                         etag: \"b10b0000000000000000000000000000000000000\"\r\n\
                         x-repo-commit: 89abcdef0123456789abcdef0123456789abcdef\r\nconnection: close\r\n\r\n",
                        part.len(),
                        body.len()
                    );
                    [head.into_bytes(), part.to_vec()].concat()
                }
                None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    addr
}

#[test]
fn a_hub_model_downloads_once_into_the_cache_then_works_offline() {
    let d = tmp("download");
    let (model, x, want) = converted(&d);
    let hf_home = d.join("hf");
    let endpoint = loopback_hub(vec![(
        "/ebm-test/igebm-remote/resolve/main/model.safetensors".into(),
        std::fs::read(&model).unwrap(),
    )]);
    let xs = x.to_str().unwrap();
    let run = |spec: &str, offline: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebm-train"));
        cmd.args(["score", "--model", spec, "--input", xs]).env("HF_HOME", &hf_home).env_remove("HF_HUB_CACHE");
        cmd.env("HF_ENDPOINT", &endpoint);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        } else {
            cmd.env_remove("HF_HUB_OFFLINE");
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run("hf://ebm-test/igebm-remote", false);
    assert!(ok, "{err}");
    assert_official(&energies(&out), &want);
    let cached = hf_home.join("hub/models--ebm-test--igebm-remote/snapshots/89abcdef0123456789abcdef0123456789abcdef");
    assert_eq!(std::fs::read(cached.join("model.safetensors")).unwrap(), std::fs::read(&model).unwrap());
    let (ok, out, err) = run("hf://ebm-test/igebm-remote", true);
    assert!(ok, "offline, from the cache: {err}");
    assert_official(&energies(&out), &want);
    // a file the hub does not have
    let (ok, _, err) = run("hf://ebm-test/igebm-remote/nope.safetensors", false);
    assert!(!ok && err.contains("download failed") && err.contains("404"), "{err}");
}
