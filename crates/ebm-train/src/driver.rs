//! The loop every training run shares, whatever its data: iterate, watch for divergence and roll back, log
//! metrics, refresh figures, write checkpoints, and leave a complete last-good checkpoint behind.

use crate::cd::IterStats;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::state::{base_lr, TrainState};
use candle_core::Device;
use ebm_replay::Stored;

/// Test-only fault injection: called after each iteration with the state.
pub type Hook<'a, E> = &'a mut dyn FnMut(&mut TrainState<E>);

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

/// Runs `step` until the configured number of iterations. On divergence the state goes back to the last
/// checkpoint with the learning rate halved (at most `max_rollbacks` times); `figures` is called every
/// `figure_every` iterations and at the end.
pub fn run<E: Stored>(
    st: &mut TrainState<E>,
    run: &mut RunDir,
    device: &Device,
    mut step: impl FnMut(&mut TrainState<E>) -> anyhow::Result<IterStats>,
    mut figures: impl FnMut(&TrainState<E>, &RunDir) -> anyhow::Result<()>,
    mut hook: Option<Hook<E>>,
) -> anyhow::Result<()> {
    let ckpt = run.file("checkpoint.safetensors");
    if !ckpt.exists() {
        st.save(&ckpt)?; // the first "last good" state
    }
    let total = st.cfg.train.iterations;
    let mut progress = Progress::new(total, st.iter, &st.cfg.name);
    let started = std::time::Instant::now();
    while st.iter < total {
        let t0 = std::time::Instant::now();
        let s = step(st)?;
        if let Some(h) = hook.as_mut() {
            h(st);
        }
        if let Some(why) = divergence(&s, st.cfg.train.divergence_bound) {
            let at = st.iter;
            let rollbacks = st.rollbacks + 1;
            anyhow::ensure!(
                rollbacks <= st.cfg.train.max_rollbacks,
                "training diverged at iteration {at} ({why}) after {} rollbacks; lower train.adam.lr or \
                 sampler.step_size, or raise train.l2_coeff",
                st.cfg.train.max_rollbacks
            );
            let iterations = st.cfg.train.iterations;
            *st = TrainState::load(&ckpt, device)?;
            st.cfg.train.iterations = iterations;
            st.rollbacks = rollbacks; // halves the learning rate from here on (`base_lr`)
            let lr = base_lr(st);
            tracing::warn!("iteration {at}: {why}; rolled back to iteration {} with learning rate {lr:e}", st.iter);
            run.log(&serde_json::json!({"event": "rollback", "at": at, "reason": why, "to": st.iter, "lr": lr}))?;
            continue;
        }
        let secs = t0.elapsed().as_secs_f64();
        progress.tick(st.iter, &format!("E+ {:.3} E- {:.3} loss {:.4}", s.e_pos, s.e_neg, s.loss));
        let tl = &st.cfg.train;
        if st.iter % tl.log_every.max(1) == 0 || st.iter == total {
            run.log(&serde_json::json!({
                "iter": st.iter, "e_pos": s.e_pos, "e_neg": s.e_neg, "gap": s.e_pos - s.e_neg,
                "loss": s.loss, "grad_norm": s.grad_norm, "sec_per_iter": secs, "lr": st.opt.cfg.lr,
            }))?;
        }
        if tl.checkpoint_every > 0 && st.iter % tl.checkpoint_every == 0 && st.iter < total {
            st.save(&ckpt)?;
        }
        if tl.figure_every > 0 && st.iter % tl.figure_every == 0 && st.iter < total {
            figures(st, run)?;
        }
    }
    progress.finish(started.elapsed().as_secs_f64());
    st.save(&ckpt)?;
    st.model.save(&run.file("model.safetensors"))?;
    figures(st, run)
}
