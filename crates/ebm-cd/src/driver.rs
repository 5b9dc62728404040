//! The one loop every training run goes through, whatever it trains (one image model, a 2D model, a pair of
//! models fine-tuned together): iterate, watch for divergence and roll back, log metrics, refresh figures, write
//! checkpoints, and leave a complete last-good checkpoint behind.

use crate::cd::IterStats;
use crate::config::TrainLoop;
use crate::error::{CdError, Result};
use crate::progress::Progress;
use crate::run_dir::RunDir;
use std::path::Path;

/// What the loop drives: a training state that steps, saves and restores itself.
pub trait Trainer {
    /// The label of the progress display.
    fn label(&self) -> String;
    /// Iterations completed.
    fn done(&self) -> u64;
    /// The loop's settings (total iterations, logging, checkpoints, divergence bound, rollbacks).
    fn schedule(&self) -> &TrainLoop;
    /// One iteration.
    fn step(&mut self) -> Result<IterStats>;
    /// The learning rate the last step used (for the metrics).
    fn lr(&self) -> f64;
    /// The learning rate the schedule starts from after the rollbacks so far.
    fn base_lr(&self) -> f64;
    /// Times training has rolled back.
    fn rollbacks(&self) -> u32;
    /// Writes a checkpoint to `path` atomically.
    fn save(&self, path: &Path) -> Result<()>;
    /// Goes back to the checkpoint at `path` (keeping the schedule's total), with `rollbacks` rollbacks so far.
    fn restore(&mut self, path: &Path, rollbacks: u32) -> Result<()>;
    /// Draws the run's figures into its folder.
    fn figures(&mut self, run: &RunDir) -> Result<()>;
    /// Writes the trained model files into the run folder (after the final checkpoint).
    fn save_models(&mut self, run: &RunDir) -> Result<()>;
    /// The first parameter holding a NaN or an infinity, if any (checked after every step, before any checkpoint).
    fn non_finite(&self) -> Result<Option<String>>;
}

/// Test-only fault injection: called after each iteration with the trainer.
pub type Hook<'a, T> = &'a mut dyn FnMut(&mut T);

/// Why an iteration counts as diverged, if it does.
pub fn divergence(s: &IterStats, bound: f32) -> Option<String> {
    // a non-finite gradient norm means the step just taken wrote non-finite parameters
    if !(s.loss.is_finite() && s.e_pos.is_finite() && s.e_neg.is_finite() && s.grad_norm.is_finite()) {
        return Some(format!(
            "non-finite values (loss {}, E+ {}, E- {}, gradient norm {})",
            s.loss, s.e_pos, s.e_neg, s.grad_norm
        ));
    }
    if s.e_pos.abs() > bound || s.e_neg.abs() > bound {
        return Some(format!("energies beyond the bound {bound} (E+ {}, E- {})", s.e_pos, s.e_neg));
    }
    None
}

/// Runs `t` until its schedule's iterations, checkpointing into `run`. On divergence the trainer goes back to
/// the last checkpoint with the learning rate halved (at most `max_rollbacks` times); figures are drawn every
/// `figure_every` iterations and at the end.
pub fn run<T: Trainer>(t: &mut T, run: &mut RunDir, mut hook: Option<Hook<T>>) -> Result<()> {
    let ckpt = run.file("checkpoint.safetensors");
    if !ckpt.exists() {
        t.save(&ckpt)?; // the first "last good" state
    }
    let total = t.schedule().iterations;
    let mut progress = Progress::new(total, t.done(), &t.label());
    let started = std::time::Instant::now();
    while t.done() < total {
        let t0 = std::time::Instant::now();
        let s = t.step()?;
        if let Some(h) = hook.as_mut() {
            h(t);
        }
        let why = match divergence(&s, t.schedule().divergence_bound) {
            Some(w) => Some(w),
            None => t.non_finite()?.map(|p| format!("parameter `{p}` became non-finite")),
        };
        if let Some(why) = why {
            let at = t.done();
            let rollbacks = t.rollbacks() + 1;
            let max = t.schedule().max_rollbacks;
            if rollbacks > max {
                return Err(CdError::Diverged {
                    iteration: at,
                    reason: why,
                    advice: format!(
                        "stopped after {max} rollbacks; the last good checkpoint is {}; lower train.adam.lr or \
                         sampler.step_size, or raise train.l2_coeff",
                        ckpt.display()
                    ),
                });
            }
            t.restore(&ckpt, rollbacks)?;
            let lr = t.base_lr();
            tracing::warn!("iteration {at}: {why}; rolled back to iteration {} with learning rate {lr:e}", t.done());
            run.log(&serde_json::json!({"event": "rollback", "at": at, "reason": why, "to": t.done(), "lr": lr}))?;
            continue;
        }
        let secs = t0.elapsed().as_secs_f64();
        let done = t.done();
        progress.tick(done, &format!("E+ {:.3} E- {:.3} loss {:.4}", s.e_pos, s.e_neg, s.loss));
        let tl = t.schedule().clone();
        if done % tl.log_every.max(1) == 0 || done == total {
            run.log(&serde_json::json!({
                "iter": done, "e_pos": s.e_pos, "e_neg": s.e_neg, "gap": s.e_pos - s.e_neg,
                "loss": s.loss, "grad_norm": s.grad_norm, "sec_per_iter": secs, "lr": t.lr(),
            }))?;
        }
        if tl.checkpoint_every > 0 && done % tl.checkpoint_every == 0 && done < total {
            t.save(&ckpt)?;
        }
        if tl.figure_every > 0 && done % tl.figure_every == 0 && done < total {
            t.figures(run)?;
        }
    }
    progress.finish(started.elapsed().as_secs_f64());
    t.save(&ckpt)?;
    t.save_models(run)?;
    t.figures(run)
}
