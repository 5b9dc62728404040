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

/// Watches the contrastive-divergence gap `E+ - E-` for the failure where the chains fall behind the model: the
/// network separates its samples from the data and the gap drifts to the optimum of the loss for a perfect
/// separation, `-ml_coeff / l2_coeff` (E+ = -ml / 2 l2, E- = +ml / 2 l2), where the samples no longer look like
/// data. Training goes on (the model may still classify, and a user may want the checkpoint); the run says so once.
/// With `train.wrong_label_negatives` the E- it reads also averages relabelled data, whose energies the loss
/// raises on purpose, so there it warns early.
#[derive(Debug, Clone)]
pub struct ChainWatch {
    /// The moving average of the gap, None before the first iteration (or when there is nothing to watch).
    average: Option<f64>,
    /// The gap of a perfect separation, `-ml / l2` (None: not a CD run, or no L2 term to set a scale).
    optimum: Option<f64>,
    warned: bool,
}

impl ChainWatch {
    /// Weight of the newest iteration in the moving average (about the last 50 iterations).
    const DECAY: f64 = 0.02;
    /// The fraction of the way to the perfect-separation gap at which the run warns.
    const FRACTION: f64 = 0.3;

    pub fn new(tl: &TrainLoop) -> Self {
        let cd = tl.objective == crate::config::Objective::Cd && tl.ml_coeff > 0.0 && tl.l2_coeff > 0.0;
        ChainWatch { average: None, optimum: cd.then(|| -tl.ml_coeff / tl.l2_coeff), warned: false }
    }

    /// Takes one iteration's statistics; returns the warning the first time the average crosses the threshold.
    pub fn observe(&mut self, s: &IterStats, iteration: u64) -> Option<String> {
        let optimum = self.optimum?;
        let gap = (s.e_pos - s.e_neg) as f64;
        let avg = match self.average {
            None => gap,
            Some(a) => a + Self::DECAY * (gap - a),
        };
        self.average = Some(avg);
        if self.warned || avg >= Self::FRACTION * optimum {
            return None;
        }
        self.warned = true;
        Some(format!(
            "iteration {iteration}: the chains have fallen behind the model (E+ - E- averages {avg:.3}, the \
             perfect-separation optimum is {optimum:.3}); samples from now on are unlikely to look like data. Remedies: \
             more sampler.steps, a lower train.adam.lr, spectral norm, or the last checkpoint before the drift"
        ))
    }
}

/// Runs `t` until its schedule's iterations, checkpointing into `run`. On divergence the trainer goes back to
/// the last checkpoint with the learning rate halved (at most `max_rollbacks` times); figures are drawn every
/// `figure_every` iterations and at the end.
pub fn run<T: Trainer>(t: &mut T, run: &mut RunDir, mut hook: Option<Hook<T>>) -> Result<()> {
    let ckpt = run.file("checkpoint.safetensors");
    if !ckpt.exists() {
        t.save(&ckpt)?; // the first "last good" state
    }
    // the iteration the checkpoint holds (a resumed trainer starts from it)
    let mut ckpt_iter = t.done();
    let total = t.schedule().iterations;
    let mut progress = Progress::new(total, t.done(), &t.label());
    let started = std::time::Instant::now();
    let mut watch = ChainWatch::new(t.schedule());
    while t.done() < total {
        let t0 = std::time::Instant::now();
        let s = t.step()?;
        if let Some(h) = hook.as_mut() {
            h(t);
        }
        let measured = divergence(&s, t.schedule().divergence_bound);
        // an iteration's statistics are measured before its update, on the weights it started from: right after
        // the checkpoint those are the checkpoint's own, and a rollback's restored random state replays the same
        // batch and chains, so no lower rate can change them
        let replayed_exactly = measured.is_some() && ckpt_iter + 1 == t.done();
        let why = match measured {
            Some(w) => Some(w),
            None => t.non_finite()?.map(|p| format!("parameter `{p}` became non-finite")),
        };
        if let Some(why) = why {
            let at = t.done();
            if replayed_exactly {
                let advice = match ckpt_iter {
                    0 => format!(
                        "the freshly initialised model already measures so, and rolling back would repeat it \
                         exactly; raise train.divergence_bound (now {}) above the energies of a fresh model",
                        t.schedule().divergence_bound
                    ),
                    n => format!(
                        "these are the energies of the checkpoint at iteration {n} itself ({}), which rolling back \
                         would repeat exactly; raise train.divergence_bound or resume from an earlier copy",
                        ckpt.display()
                    ),
                };
                return Err(CdError::Diverged { iteration: at, reason: why, advice });
            }
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
        if let Some(w) = watch.observe(&s, done) {
            tracing::warn!("{w}");
            run.log(&serde_json::json!({"event": "chains_behind", "at": done, "message": w}))?;
        }
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
            ckpt_iter = done;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(e_pos: f32, e_neg: f32) -> IterStats {
        IterStats { e_pos, e_neg, loss: 0.0, grad_norm: 1.0 }
    }

    #[test]
    fn the_watch_warns_once_when_the_gap_drifts_to_separation_and_never_for_classifiers() {
        let mut tl = crate::presets::load("digits").unwrap().train;
        // a healthy run: the gap wanders around zero
        let mut w = ChainWatch::new(&tl);
        for i in 0..500 {
            let g = if i % 2 == 0 { 0.05 } else { -0.05 };
            assert_eq!(w.observe(&stats(g, 0.0), i), None, "iteration {i}");
        }
        // a run whose samples separate from the data: E+ -0.5, E- +0.5 (l2 = ml = 1: the optimum, gap -1)
        let mut warnings = Vec::new();
        for i in 500..800 {
            warnings.extend(w.observe(&stats(-0.5, 0.5), i));
        }
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("fallen behind"), "{}", warnings[0]);
        // the average needs a few dozen iterations of drift: a single bad batch does not warn
        let mut w = ChainWatch::new(&tl);
        w.observe(&stats(0.0, 0.0), 0);
        assert_eq!(w.observe(&stats(-0.5, 0.5), 1), None);
        // a classifier's E+ / E- are the true and other classes' energies: their gap is negative by design
        tl.objective = crate::config::Objective::Softmax;
        let mut w = ChainWatch::new(&tl);
        assert!((0..300).all(|i| w.observe(&stats(-3.0, 3.0), i).is_none()));
    }
}
