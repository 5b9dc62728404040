//! The manifest's claims about Debian's Fashion-MNIST (`apt-get install dataset-fashion-mnist`), checked on the real
//! files: their decompressed content has the recorded `content_sha256`; their deflate streams, behind upstream's
//! gzip header (file name, time stamp 2017-08-31, XFL 0, OS 3), are upstream's files, i.e. the `sha256` that
//! tensorflow-datasets publishes; and `fetch-data fashion-mnist --from` installs them (what .ci/run does).
//! Skipped with a message without the package, except under CI (CI=true), where it must be there.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

const DEBIAN: &str = "/usr/share/datasets/fashion-mnist";

/// (file, upstream gzip mtime found by data/provenance/fashion_mnist_debian.py)
const FILES: [(&str, u32); 4] = [
    ("train-images-idx3-ubyte.gz", 1504176606),
    ("train-labels-idx1-ubyte.gz", 1504176606),
    ("t10k-images-idx3-ubyte.gz", 1504176627),
    ("t10k-labels-idx1-ubyte.gz", 1504176627),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn debian_present() -> bool {
    if Path::new(DEBIAN).join(FILES[0].0).is_file() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but {DEBIAN} is missing: .ci/run installs it with `apt-get install -y dataset-fashion-mnist`");
    }
    eprintln!("SKIPPED: {DEBIAN} is missing (apt-get install -y dataset-fashion-mnist)");
    false
}

/// `key = "value"` of the manifest's `[[dataset.file]]` entry named `file` under dataset `fashion-mnist`.
fn manifest_value(file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/manifest.toml")).unwrap();
    let m: toml::Value = toml::from_str(&text).unwrap();
    let ds = m["dataset"].as_array().unwrap().iter().find(|d| d["name"].as_str() == Some("fashion-mnist")).unwrap();
    let f = ds["file"].as_array().unwrap().iter().find(|f| f["name"].as_str() == Some(file)).unwrap();
    f[key].as_str().unwrap().to_string()
}

#[test]
fn debian_files_are_upstreams_bytes_under_another_gzip_header() {
    if !debian_present() {
        return;
    }
    for (file, mtime) in FILES {
        let deb = std::fs::read(Path::new(DEBIAN).join(file)).unwrap();
        assert_eq!(&deb[..4], &[0x1f, 0x8b, 8, 0], "{file}: a gzip member without a file name");
        let mut rebuilt = vec![0x1f, 0x8b, 8, 0x08];
        rebuilt.extend_from_slice(&mtime.to_le_bytes());
        rebuilt.extend_from_slice(&[0, 3]);
        rebuilt.extend_from_slice(file.trim_end_matches(".gz").as_bytes());
        rebuilt.push(0);
        rebuilt.extend_from_slice(&deb[10..]);
        assert_eq!(hex(&Sha256::digest(&rebuilt)), manifest_value(file, "sha256"), "{file}: upstream .gz");
        let mut content = Vec::new();
        flate2::read::GzDecoder::new(&deb[..]).read_to_end(&mut content).unwrap();
        assert_eq!(hex(&Sha256::digest(&content)), manifest_value(file, "content_sha256"), "{file}: content");
    }
}

#[test]
fn fetch_data_installs_debians_files_with_from() {
    if !debian_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ebm-fetch-debian-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-data", "fashion-mnist", "--from", DEBIAN, "--dir"])
        .arg(&dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("verified by its decompressed content").count(), 4, "{out}");
    for (file, _) in FILES {
        assert!(dir.join("fashion-mnist").join(file).is_file(), "{file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
