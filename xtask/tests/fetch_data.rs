//! `cargo xtask fetch-data` against a loopback HTTP server started by each test (no outside network): a good
//! download lands and verifies, an interrupted one resumes with a Range request, a corrupted one fails naming the
//! file and both hashes and leaves nothing behind, a server error names the URL, and a second run does nothing.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------------------------
// A small HTTP/1.1 server on 127.0.0.1:0

#[derive(Clone)]
enum Route {
    /// The bytes, honouring `Range: bytes=N-`.
    Serve(Vec<u8>),
    /// Like `Serve`, but the first `times` responses announce the full length and close the connection after
    /// `after` bytes of the body.
    Cut { body: Vec<u8>, after: usize, times: usize },
    /// An error status.
    Status(u16),
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    range: Option<String>,
}

struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (r, l) = (routes.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &r, &l);
                });
            }
        });
        Server { base, routes, log }
    }

    fn route(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn handle(
    mut stream: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push(Request { path: path.clone(), range: range.clone() });
    let route = {
        let mut map = routes.lock().unwrap();
        let route = map.get(&path).cloned();
        // A cut route counts its remaining cuts down.
        if let Some(Route::Cut { body, after, times }) = &route {
            let next = if *times > 1 {
                Route::Cut { body: body.clone(), after: *after, times: times - 1 }
            } else {
                Route::Serve(body.clone())
            };
            map.insert(path.clone(), next);
        }
        route
    };
    let (body, cut) = match route {
        None => return respond_status(&mut stream, 404),
        Some(Route::Status(code)) => return respond_status(&mut stream, code),
        Some(Route::Serve(b)) => (b, None),
        Some(Route::Cut { body, after, .. }) => (body, Some(after)),
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let head = match start {
        Some(s) if s >= body.len() => return respond_status(&mut stream, 416),
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len() - s,
            body.len() - 1,
            body.len()
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()),
    };
    let payload = &body[start.unwrap_or(0)..];
    stream.write_all(head.as_bytes())?;
    match cut {
        Some(after) => {
            stream.write_all(&payload[..after.min(payload.len())])?;
            stream.flush()?;
            stream.shutdown(std::net::Shutdown::Both)?; // mid-transfer: the client sees the connection end early
        }
        None => stream.write_all(payload)?,
    }
    Ok(())
}

fn respond_status(stream: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let body = format!("status {code}\n");
    write!(stream, "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ebm-fetch-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes a manifest and returns its path.
    fn manifest(&self, toml: &str) -> PathBuf {
        let p = self.path("manifest.toml");
        std::fs::write(&p, toml).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic bytes that do not compress to nothing.
fn payload(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn gzip(b: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A `.tar.gz` holding `inner/hello.txt` with `text`.
fn tar_gz(text: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "inner/hello.txt", text).unwrap();
    gzip(&b.into_inner().unwrap(), 6)
}

/// One `[[dataset.file]]` entry.
fn file_entry(name: &str, url: &str, body: &[u8], extra: &str) -> String {
    format!(
        "[[dataset.file]]\nname = \"{name}\"\nurl = \"{url}\"\nsize = {}\nsha256 = \"{}\"\nchecksum_source = \"test\"\n{extra}\n",
        body.len(),
        sha256(body)
    )
}

fn dataset(name: &str, extra: &str) -> String {
    format!("[[dataset]]\nname = \"{name}\"\ntitle = \"test data\"\n{extra}\n")
}

/// Runs `xtask fetch-data <args> --dir <scratch>/cache --manifest <manifest>` with no proxy and no mirror.
fn fetch(s: &Scratch, manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("fetch-data").args(args).arg("--dir").arg(s.path("cache")).arg("--manifest").arg(manifest);
    for v in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "EBM_DATA_MIRROR"] {
        c.env_remove(v);
    }
    c.env("NO_PROXY", "127.0.0.1").env("RUST_BACKTRACE", "0").env("EBM_DATA_RETRIES", "3");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[test]
fn a_good_download_lands_verifies_and_unpacks_and_a_second_run_does_nothing() {
    let s = Scratch::new("good");
    let srv = Server::start();
    let data = payload(300_000, 1);
    let archive = tar_gz(b"hello from the archive\n");
    let m = s.manifest(
        &(dataset("toy", "")
            + &file_entry("data.bin", &srv.route("/files/data.bin", Route::Serve(data.clone())), &data, "")
            + &file_entry(
                "bundle.tar.gz",
                &srv.route("/files/bundle.tar.gz", Route::Serve(archive.clone())),
                &archive,
                "unpack = \"tar.gz\"",
            )),
    );
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("toy/data.bin: verified (test)"), "{}", text(&o));
    let dir = s.path("cache/toy");
    assert_eq!(std::fs::read(dir.join("data.bin")).unwrap(), data);
    assert_eq!(std::fs::read(dir.join("bundle.tar.gz")).unwrap(), archive);
    assert_eq!(std::fs::read_to_string(dir.join("inner/hello.txt")).unwrap(), "hello from the archive\n");
    assert!(!dir.join("data.bin.part").exists() && !dir.join("bundle.tar.gz.part").exists());
    let before = srv.requests().len();
    assert_eq!(before, 2);

    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("toy: already installed"), "{}", text(&o));
    assert!(text(&o).contains("toy/data.bin: present and verified"), "{}", text(&o));
    assert_eq!(srv.requests().len(), before, "a second run makes no request");
}

#[test]
fn a_transfer_cut_mid_way_resumes_with_a_range_request() {
    let s = Scratch::new("resume");
    let srv = Server::start();
    let data = payload(500_000, 2);
    let url = srv.route("/big.bin", Route::Cut { body: data.clone(), after: 123_456, times: 1 });
    let m = s.manifest(&(dataset("toy", "") + &file_entry("big.bin", &url, &data, "")));
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("transfer interrupted at byte 123456"), "{}", text(&o));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=123456-"));
    assert_eq!(std::fs::read(s.path("cache/toy/big.bin")).unwrap(), data);
}

#[test]
fn an_interrupted_download_is_kept_and_the_next_run_resumes_it() {
    let s = Scratch::new("next-run");
    let srv = Server::start();
    let data = payload(200_000, 3);
    let url = srv.route("/big.bin", Route::Cut { body: data.clone(), after: 70_000, times: 1 });
    let m = s.manifest(&(dataset("toy", "") + &file_entry("big.bin", &url, &data, "")));
    let o = fetch(&s, &m, &["toy"], &[("EBM_DATA_RETRIES", "0")]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains(&url) && out.contains("run the same command again to resume"), "{out}");
    let part = s.path("cache/toy/big.bin.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 70_000);
    assert!(!s.path("cache/toy/big.bin").exists(), "nothing at the final path before verification");
    let o = fetch(&s, &m, &["toy"], &[("EBM_DATA_RETRIES", "0")]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.requests().last().unwrap().range.as_deref(), Some("bytes=70000-"));
    assert_eq!(std::fs::read(s.path("cache/toy/big.bin")).unwrap(), data);
    assert!(!part.exists());
}

#[test]
fn a_corrupted_file_fails_with_both_hashes_and_leaves_nothing() {
    let s = Scratch::new("corrupt");
    let srv = Server::start();
    let good = payload(100_000, 4);
    let mut bad = good.clone();
    bad[5000] ^= 0xff;
    let url = srv.route("/data.bin", Route::Serve(bad.clone()));
    let m = s.manifest(&(dataset("toy", "") + &file_entry("data.bin", &url, &good, "")));
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(!o.status.success());
    let out = text(&o);
    let want = format!("toy/data.bin: SHA-256 mismatch: expected {}, got {}", sha256(&good), sha256(&bad));
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("nothing was installed at"), "{out}");
    assert!(!s.path("cache/toy/data.bin").exists());
    assert!(!s.path("cache/toy/data.bin.part").exists());
    // A short file is a mismatch too, with its size.
    let srv2 = Server::start();
    let url = srv2.route("/data.bin", Route::Serve(good[..1000].to_vec()));
    let m = s.manifest(&(dataset("toy", "") + &file_entry("data.bin", &url, &good, "")));
    let out = text(&fetch(&s, &m, &["toy"], &[]));
    assert!(out.contains(&format!("got {}; size 1000 bytes, expected 100000", sha256(&good[..1000]))), "{out}");
}

#[test]
fn a_server_error_is_reported_with_the_url() {
    let s = Scratch::new("status");
    let srv = Server::start();
    let url = srv.route("/broken.bin", Route::Status(500));
    let m = s.manifest(&(dataset("toy", "") + &file_entry("broken.bin", &url, b"x", "")));
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains(&format!("{url}: the server answered HTTP 500")), "{}", text(&o));
    let missing = format!("{}/missing.bin", srv.base);
    let m = s.manifest(&(dataset("toy", "") + &file_entry("missing.bin", &missing, b"x", "")));
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(text(&o).contains(&format!("{missing}: the server answered HTTP 404")), "{}", text(&o));
    assert!(!s.path("cache/toy/missing.bin").exists());
}

#[test]
fn from_takes_local_files_and_accepts_a_recompressed_gz_by_its_content() {
    let s = Scratch::new("from");
    let content = payload(50_000, 5);
    let upstream = gzip(&content, 9);
    let repacked = gzip(&content, 1);
    assert_ne!(sha256(&upstream), sha256(&repacked));
    let extra = format!(
        "content_size = {}\ncontent_sha256 = \"{}\"\ncontent_checksum_source = \"test\"",
        content.len(),
        sha256(&content)
    );
    let m = s
        .manifest(&(dataset("toy", "") + &file_entry("x-idx3-ubyte.gz", "http://127.0.0.1:9/none", &upstream, &extra)));
    let local = s.path("debian");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("x-idx3-ubyte.gz"), &repacked).unwrap();
    let o = fetch(&s, &m, &["toy", "--from", local.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified by its decompressed content"), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("cache/toy/x-idx3-ubyte.gz")).unwrap(), repacked);
    // Idempotent through the content check as well.
    let o = fetch(&s, &m, &["toy", "--from", local.to_str().unwrap()], &[]);
    assert!(text(&o).contains("already installed"), "{}", text(&o));
    // Different content is refused, naming both content hashes; nothing is installed.
    let other = gzip(&payload(50_000, 6), 1);
    std::fs::write(local.join("x-idx3-ubyte.gz"), &other).unwrap();
    std::fs::remove_file(s.path("cache/toy/x-idx3-ubyte.gz")).unwrap();
    let o = fetch(&s, &m, &["toy", "--from", local.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains(&format!("expected {}, got {}", sha256(&upstream), sha256(&other))), "{out}");
    assert!(out.contains(&format!("its decompressed content has SHA-256 {}", sha256(&payload(50_000, 6)))), "{out}");
    assert!(!s.path("cache/toy/x-idx3-ubyte.gz").exists());
    // A folder without the file says which one is missing.
    std::fs::remove_file(local.join("x-idx3-ubyte.gz")).unwrap();
    let out = text(&fetch(&s, &m, &["toy", "--from", local.to_str().unwrap()], &[]));
    assert!(out.contains("not found in --from") && out.contains("x-idx3-ubyte.gz"), "{out}");
}

#[test]
fn an_entry_without_a_published_checksum_prints_the_hash_it_saw() {
    let s = Scratch::new("unpinned");
    let srv = Server::start();
    let data = payload(10_000, 7);
    let url = srv.route("/free.npz", Route::Serve(data.clone()));
    let m = s.manifest(&format!(
        "{}[[dataset.file]]\nname = \"free.npz\"\nurl = \"{url}\"\nchecksum_source = \"none published: test\"\n",
        dataset("toy", "")
    ));
    let o = fetch(&s, &m, &["toy"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "no published checksum (none published: test); SHA-256 of what was installed: {}",
            sha256(&data)
        )),
        "{}",
        text(&o)
    );
}

#[test]
fn a_login_dataset_says_how_to_get_it_and_takes_a_local_archive() {
    let s = Scratch::new("login");
    let zip_bytes = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("val/val_data.npz", zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(b"not really an npz").unwrap();
        w.finish().unwrap().into_inner()
    };
    let m = s.manifest(
        &(dataset("locked", "login = \"Register at example.org, then use --from.\"")
            + &file_entry("Locked_val.zip", "http://127.0.0.1:9/none", &zip_bytes, "unpack = \"zip\"")),
    );
    let o = fetch(&s, &m, &["locked"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("the files need a login") && text(&o).contains("Register at example.org"),
        "{}",
        text(&o)
    );
    let local = s.path("Downloads-Locked_val.zip");
    std::fs::write(&local, &zip_bytes).unwrap();
    let o = fetch(&s, &m, &["locked", "--from", local.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("cache/locked/val/val_data.npz")).unwrap(), b"not really an npz");
}

#[test]
fn the_mirror_variable_redirects_downloads() {
    let s = Scratch::new("mirror");
    let srv = Server::start();
    let data = payload(4_000, 8);
    srv.route("/mirror/toy/data.bin", Route::Serve(data.clone()));
    let m =
        s.manifest(&(dataset("toy", "") + &file_entry("data.bin", "https://canonical.invalid/data.bin", &data, "")));
    let mirror = format!("{}/mirror/", srv.base);
    let o = fetch(&s, &m, &["toy"], &[("EBM_DATA_MIRROR", &mirror)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.requests()[0].path, "/mirror/toy/data.bin");
}

#[test]
fn unknown_names_are_refused_with_the_list() {
    let s = Scratch::new("unknown");
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/manifest.toml");
    let o = fetch(&s, &real, &["cifar11"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown dataset `cifar11`; the datasets are: cifar10, cifar100"), "{}", text(&o));
    let o = fetch(&s, &real, &["--list"], &[]);
    assert!(o.status.success() && text(&o).contains("imagenet32") && text(&o).contains("login needed"), "{}", text(&o));
}
