//! The run folder: config, metrics as JSON lines, figures, checkpoints; held by one process at a time.
//!
//! Opening a folder takes an advisory lock on its `.lock` file (`flock`, released by the operating system when
//! the process ends, however it ends), so a second writer is refused at once with the holder's pid; removes the
//! temporary files an interrupted atomic write left behind; and opens `metrics.jsonl` without following a symbolic
//! link.

use crate::error::{fs_err, CdError, Result};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The files whose presence means a folder holds a run (finished or not).
const RUN_FILES: [&str; 4] = ["checkpoint.safetensors", "model.safetensors", "config.toml", "metrics.jsonl"];

/// An open run folder, locked for this process.
pub struct RunDir {
    pub path: PathBuf,
    metrics: std::fs::File,
    _lock: std::fs::File,
}

/// What to do when a new run's folder already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse, and say how to continue the run or start over.
    Refuse,
    /// Move the old run aside (to `<folder>.replaced-<unix seconds>`) and start over.
    MoveAside,
}

/// Whether `dir` holds a run, and how far it got (`Some(true)` finished, `Some(false)` unfinished).
pub fn holds_run(dir: &Path) -> Option<bool> {
    let any = RUN_FILES.iter().any(|f| dir.join(f).symlink_metadata().is_ok());
    any.then(|| dir.join("model.safetensors").exists() && dir.join("summary.json").exists())
}

impl RunDir {
    /// A folder for a new run: `explicit` when given, else `root/<name>` (or `<name>-2`, `-3`, ... if taken). An
    /// explicit folder that holds a run is refused or moved aside, as `existing` says.
    pub fn create(root: &Path, name: &str, explicit: Option<&Path>, existing: Existing) -> Result<Self> {
        let path = match explicit {
            Some(p) => {
                // a folder another process is writing is refused as such, before anything else is said about it
                let held = if p.is_dir() { Some(lock(p)?) } else { None };
                if let Some(finished) = holds_run(p) {
                    let what = if finished { "a finished run" } else { "an unfinished run" };
                    match existing {
                        Existing::Refuse => {
                            return Err(CdError::run_folder(
                                p,
                                format!(
                                    "holds {what}; continue it with `ebm-train train --resume {}`, or start over \
                                     with --force (the old run is moved aside to {}.replaced-<time>, not deleted)",
                                    p.display(),
                                    p.display()
                                ),
                            ))
                        }
                        Existing::MoveAside => {
                            let secs = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs());
                            let aside = PathBuf::from(format!("{}.replaced-{secs}", p.display()));
                            std::fs::rename(p, &aside).map_err(fs_err(p))?;
                            tracing::warn!("moved the old run in {} aside to {}", p.display(), aside.display());
                        }
                    }
                }
                drop(held);
                std::fs::create_dir_all(p).map_err(fs_err(p))?;
                p.to_path_buf()
            }
            None => {
                std::fs::create_dir_all(root).map_err(fs_err(root))?;
                let mut k = 1;
                loop {
                    let p = if k == 1 { root.join(name) } else { root.join(format!("{name}-{k}")) };
                    // create_dir, not create_dir_all: of two processes picking the same name, one gets the next
                    match std::fs::create_dir(&p) {
                        Ok(()) => break p,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
                        Err(e) => return Err(fs_err(&p)(e)),
                    }
                }
            }
        };
        Self::open(path, false)
    }

    /// Opens a run folder (created if missing) for this process: locks it, removes leftover temporary files, and
    /// opens metrics.jsonl to append to (`append`) or to start afresh.
    pub fn open(path: PathBuf, append: bool) -> Result<Self> {
        std::fs::create_dir_all(&path).map_err(fs_err(&path))?;
        let lock = lock(&path)?;
        remove_temporaries(&path)?;
        let mp = path.join("metrics.jsonl");
        refuse_symlink(&mp)?;
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(append).write(true).truncate(!append);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
        let metrics = o.open(&mp).map_err(fs_err(&mp))?;
        Ok(Self { path, metrics, _lock: lock })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Appends one JSON object as a line of metrics.jsonl (one write call, so a line is never interleaved).
    pub fn log(&mut self, value: &serde_json::Value) -> Result<()> {
        let line = format!("{value}\n");
        self.metrics.write_all(line.as_bytes()).map_err(fs_err(&self.path.join("metrics.jsonl")))?;
        Ok(())
    }

    /// Writes a text file atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        ebm_io::write_atomic(&self.file(name), text.as_bytes())?;
        Ok(())
    }
}

fn refuse_symlink(p: &Path) -> Result<()> {
    if p.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(CdError::run_folder(p, "is a symbolic link; a run writes its metrics only into its own folder"));
    }
    Ok(())
}

/// Takes the folder's lock, or says who holds it.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let lp = dir.join(".lock");
    refuse_symlink(&lp)?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lp)
        .map_err(fs_err(&lp))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { String::from("another process") } else { format!("process {holder}") };
            return Err(CdError::run_folder(
                dir,
                format!("in use by {who} (an ebm run writing to it); wait for it to finish or choose another folder"),
            ));
        }
    }
    f.set_len(0).map_err(fs_err(&lp))?;
    f.rewind().map_err(fs_err(&lp))?;
    write!(f, "{}", std::process::id()).map_err(fs_err(&lp))?;
    Ok(f)
}

/// Removes the temporary files of atomic writes a crash interrupted (only the lock's holder may).
fn remove_temporaries(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(fs_err(dir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(ebm_io::TEMP_SUFFIX) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
            tracing::info!("removed {}, left by an interrupted write", e.path().display());
        }
    }
    Ok(())
}

/// Cuts metrics.jsonl back to what a checkpoint at iteration `upto` had seen: complete lines (ending in a newline
/// and parsing as JSON) of iterations at most `upto`, and events at or before it. Used when resuming.
pub fn truncate_metrics(path: &Path, upto: u64) -> Result<()> {
    let mp = path.join("metrics.jsonl");
    refuse_symlink(&mp)?;
    let Ok(text) = std::fs::read_to_string(&mp) else { return Ok(()) };
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let Some(body) = line.strip_suffix('\n') else { break }; // a torn last line
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { continue };
        let at = v.get("iter").or_else(|| v.get("at")).and_then(|i| i.as_u64());
        if at.is_none_or(|i| i <= upto) {
            out.push_str(line);
        }
    }
    // rewritten in place, not by rename: a `RunDir` opened on this folder before the call (as `train --resume`
    // does) appends through a handle to this very file, which a rename would leave pointing at a deleted one
    std::fs::write(&mp, out.as_bytes()).map_err(fs_err(&mp))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-rundir-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Resuming opens the folder, then truncates its metrics: later lines must land in the file on disk; a torn
    /// last line and lines past the checkpoint are dropped.
    #[test]
    fn metrics_are_cut_back_to_the_checkpoint() {
        let d = tmp("metrics");
        std::fs::write(
            d.join("metrics.jsonl"),
            "{\"iter\":1}\n{\"iter\":2}\n{\"event\":\"rollback\",\"at\":3,\"to\":2}\n{\"iter\":3}\n{\"iter\":2,\"torn\"",
        )
        .unwrap();
        let mut run = super::RunDir::open(d.clone(), true).unwrap();
        super::truncate_metrics(&d, 2).unwrap();
        run.log(&serde_json::json!({"iter": 3, "again": true})).unwrap();
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        assert_eq!(text, "{\"iter\":1}\n{\"iter\":2}\n{\"again\":true,\"iter\":3}\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid() {
        let d = tmp("lock");
        let _held = super::RunDir::open(d.clone(), false).unwrap();
        let e = super::RunDir::open(d.clone(), true).err().unwrap().to_string();
        assert!(e.contains(&std::process::id().to_string()) && e.contains("in use"), "{e}");
        drop(_held);
        assert!(super::RunDir::open(d.clone(), true).is_ok(), "the lock goes with its holder");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn leftover_temporaries_go_and_a_symlinked_metrics_file_is_refused() {
        let d = tmp("files");
        std::fs::write(d.join(".checkpoint.safetensors.abc123.tmp"), b"half").unwrap();
        std::fs::write(d.join("keep.tmp"), b"not ours").unwrap();
        drop(super::RunDir::open(d.clone(), false).unwrap());
        assert!(!d.join(".checkpoint.safetensors.abc123.tmp").exists());
        assert!(d.join("keep.tmp").exists());
        #[cfg(unix)]
        {
            let outside = d.join("outside.txt");
            std::fs::write(&outside, b"precious").unwrap();
            let run = d.join("run");
            std::fs::create_dir_all(&run).unwrap();
            std::os::unix::fs::symlink(&outside, run.join("metrics.jsonl")).unwrap();
            let e = super::RunDir::open(run.clone(), true).err().unwrap().to_string();
            assert!(e.contains("metrics.jsonl") && e.contains("symbolic link"), "{e}");
            assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
