//! `cargo xtask convert-checkpoint` end to end: a good conversion writes a loadable model; a corrupted bundle or a
//! wrong model gives an error naming the file and leaves no output behind.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/ebm-models/tests/fixtures")
}

fn xtask(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("convert-checkpoint").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn converts_and_refuses_without_leaving_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = fixtures().join("tf/resnet32_cond/model_7");
    let args = |out: &Path| {
        vec![
            "--arch".to_string(),
            "resnet32".into(),
            "--filters".into(),
            "8".into(),
            "--classes".into(),
            "10".into(),
            "--out".into(),
            s(out).into(),
        ]
    };

    // a good conversion: a model file the zoo loads, with its source recorded
    let good = dir.path().join("models/good.safetensors");
    let mut a = vec!["--from".to_string(), s(&prefix).into()];
    a.extend(args(&good));
    let (ok, err) = xtask(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let b = ebm_io::Bundle::load(&good, &candle_core::Device::Cpu).unwrap();
    assert!(b.meta(&good, "ebm.source").unwrap().contains("model_7"));
    assert_eq!(b.tensors.len(), 54);

    // a corrupted copy: one flipped byte in the data shard
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(prefix.with_extension("index"), bad.join("model_7.index")).unwrap();
    let mut data = std::fs::read(fixtures().join("tf/resnet32_cond/model_7.data-00000-of-00001")).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x40;
    std::fs::write(bad.join("model_7.data-00000-of-00001"), data).unwrap();
    let out = dir.path().join("out/bad.safetensors");
    let mut a = vec!["--from".to_string(), s(&bad.join("model_7")).into()];
    a.extend(args(&out));
    let (ok, err) = xtask(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok);
    assert!(err.contains("model_7.data-00000-of-00001") && err.to_lowercase().contains("checksum"), "{err}");
    assert!(!out.exists(), "a failed conversion left {}", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).map(|d| d.count()).into_iter().collect();
    assert!(leftovers.iter().all(|&n| n == 0), "temporary files left: {leftovers:?}");

    // the wrong model: refused by variable name, nothing written (as a hub folder either)
    let hub = dir.path().join("hub-folder");
    let (ok, err) = xtask(&[
        "--from",
        s(&prefix),
        "--arch",
        "resnet32",
        "--filters",
        "16",
        "--classes",
        "10",
        "--hub",
        "--out",
        s(&hub),
    ]);
    assert!(!ok && err.contains("context_0/c1_pre/"), "{err}");
    assert!(!hub.exists());

    // a PyTorch port: converted through candle's pickle reader
    let pt = dir.path().join("pt.safetensors");
    let (ok, err) = xtask(&[
        "--from",
        s(&fixtures().join("torch/mnistnet.pt")),
        "--arch",
        "mnist_net",
        "--filters",
        "8",
        "--out",
        s(&pt),
    ]);
    assert!(ok, "{err}");
    assert!(pt.exists());

    // a truncated PyTorch file
    let short = dir.path().join("short.pt");
    let bytes = std::fs::read(fixtures().join("torch/mnistnet.pt")).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() / 3]).unwrap();
    let out = dir.path().join("short.safetensors");
    let (ok, err) = xtask(&["--from", s(&short), "--arch", "mnist_net", "--filters", "8", "--out", s(&out)]);
    assert!(!ok && err.contains("short.pt"), "{err}");
    assert!(!out.exists());
}
