//! The run folder: config, metrics as JSON lines, figures, checkpoints.

use crate::error::{fs_err, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open run folder.
pub struct RunDir {
    pub path: PathBuf,
    metrics: std::fs::File,
}

impl RunDir {
    /// Creates `root/<name>` (or `<name>-2`, `-3`, ... if taken), or uses `explicit` when given.
    pub fn create(root: &Path, name: &str, explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let mut p = root.join(name);
                let mut k = 2;
                while p.exists() {
                    p = root.join(format!("{name}-{k}"));
                    k += 1;
                }
                p
            }
        };
        std::fs::create_dir_all(&path).map_err(fs_err(&path))?;
        Self::open(path, false)
    }

    /// Opens an existing run folder to continue it (metrics are appended).
    pub fn open(path: PathBuf, append: bool) -> Result<Self> {
        let mp = path.join("metrics.jsonl");
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&mp)
            .map_err(fs_err(&mp))?;
        Ok(Self { path, metrics })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Appends one JSON object as a line of metrics.jsonl.
    pub fn log(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.metrics, "{value}").map_err(fs_err(&self.path.join("metrics.jsonl")))?;
        Ok(())
    }

    /// Writes a text file atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        ebm_io::write_atomic(&self.file(name), text.as_bytes())?;
        Ok(())
    }
}

/// Reads metrics.jsonl back, dropping lines past iteration `upto` (used when resuming from an earlier checkpoint).
pub fn truncate_metrics(path: &Path, upto: u64) -> Result<()> {
    let mp = path.join("metrics.jsonl");
    let Ok(text) = std::fs::read_to_string(&mp) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iter").and_then(|i| i.as_u64()))
                .is_none_or(|i| i <= upto)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    // rewritten in place, not by rename: a `RunDir` opened on this folder before the call (as `train --resume`
    // does) appends through a handle to this very file, which a rename would leave pointing at a deleted one
    std::fs::write(&mp, out.as_bytes()).map_err(fs_err(&mp))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Resuming opens the folder, then truncates its metrics: later lines must land in the file on disk.
    #[test]
    fn metrics_logged_after_a_truncation_reach_the_file() {
        let d = std::env::temp_dir().join(format!("ebm-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("metrics.jsonl"), "{\"iter\":1}\n{\"iter\":2}\n{\"iter\":3}\n").unwrap();
        let mut run = super::RunDir::open(d.clone(), true).unwrap();
        super::truncate_metrics(&d, 2).unwrap();
        run.log(&serde_json::json!({"iter": 3, "again": true})).unwrap();
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        assert_eq!(text, "{\"iter\":1}\n{\"iter\":2}\n{\"again\":true,\"iter\":3}\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
