//! Progress for long work: a bar on a terminal, periodic log lines otherwise (CI logs, files).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A progress display over `total` iterations.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    last_line: std::time::Instant,
    label: String,
}

impl Progress {
    pub fn new(total: u64, done: u64, label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.set_position(done);
            b
        });
        Self { bar, total, last_line: std::time::Instant::now(), label: label.to_string() }
    }

    /// Reports that `done` iterations are complete, with a short status message.
    pub fn tick(&mut self, done: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(msg.to_string());
            }
            None => {
                if self.last_line.elapsed().as_secs_f64() > 10.0 || done == self.total {
                    tracing::info!("{} {done}/{} {msg}", self.label, self.total);
                    self.last_line = std::time::Instant::now();
                }
            }
        }
    }

    pub fn finish(&mut self, secs: f64) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        tracing::info!("{}: {} iterations in {secs:.1} s", self.label, self.total);
    }
}
