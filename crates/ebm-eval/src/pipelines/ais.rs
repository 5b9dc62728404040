//! Annealed importance sampling estimates of `log Z` (forward: a lower estimate, reverse: an upper one) and the
//! test log-likelihood they bound.

use super::{labels_cond, secs, subset, Setup, Subject};
use crate::ais::Ais;
use crate::error::{ensure, Result};
use candle_core::{DType, Device, Tensor};
use ebm_data::Split;
use ebm_plot::{palette, HistogramChart};
use serde::Serialize;
use std::time::Instant;

/// Mixed into the subject's seed for the forward and the reverse chains.
pub const FORWARD_SEED: u64 = 0xa1;
pub const REVERSE_SEED: u64 = 0xa2;

/// Acceptance and weight spread of one direction.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Direction {
    pub accept_rate: f64,
    pub effective_chains: f64,
}

/// What [`run`] measured (`ais.json`).
#[derive(Debug, Clone, Serialize)]
pub struct AisReport {
    pub what: &'static str,
    pub setup: Setup,
    pub class: Option<u32>,
    pub settings: Ais,
    pub chains: usize,
    pub log_z_lower: f64,
    pub log_z_upper: f64,
    pub log_z_note: &'static str,
    pub forward: Direction,
    pub reverse: Direction,
    pub test_images: usize,
    /// From the upper and from the lower estimate of `log Z`.
    pub test_log_likelihood_nats: [f64; 2],
    pub test_log_likelihood_note: &'static str,
    pub dims: usize,
    pub seconds: f64,
}

/// `eval ais` for `class` (of a conditional model) with `chains` chains; writes `ais.json` and `ais.png`.
pub fn run(s: &Subject, class: u32, chains: usize, ais: &Ais, device: &Device) -> Result<AisReport> {
    let t0 = Instant::now();
    let conditional = s.conditional();
    let classes = s.classes();
    ensure!(!conditional || (class as usize) < classes, "--class {class} is outside 0..{classes}");
    ensure!(chains >= 1 && ais.bridges >= 1, "--chains and --bridges must be at least 1");
    let cond = if conditional { labels_cond(&vec![class; chains], classes, device)? } else { None };
    let shape = s.shape();
    let (fwd, end) = ais.forward(&s.model, &shape, chains, cond.as_ref(), s.seed ^ FORWARD_SEED, device)?;
    let rev = ais.reverse(&s.model, &end, cond.as_ref(), s.seed ^ REVERSE_SEED)?;
    let (lower, upper) = crate::ais::bounds(&fwd, Some(&rev));
    let upper = upper.unwrap_or(f64::NAN);
    // test log-likelihood of the class's images: log p(x) = -E(x) - log Z
    let test = s.split(Split::Test)?;
    let (x, y) = subset(&test, None, s.seed)?;
    let keep: Vec<u32> = (0..y.len() as u32).filter(|&i| !conditional || y[i as usize] == class).collect();
    let xs = x.index_select(&Tensor::from_slice(&keep, keep.len(), &Device::Cpu)?, 0)?.to_device(device)?;
    let cond_x = if conditional { labels_cond(&vec![class; keep.len()], classes, device)? } else { None };
    let e = ebm_sampler::Energy::energy(&s.model, &xs, cond_x.as_ref())?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mean_neg_e = -(ais.energy_scale as f64) * e.iter().sum::<f64>() / e.len().max(1) as f64;
    let r = AisReport {
        what: "AIS estimates of log Z = log of the integral of exp(-s E) over [0,1]^D, and test log-likelihood",
        setup: s.setup(),
        class: conditional.then_some(class),
        settings: *ais,
        chains,
        log_z_lower: lower,
        log_z_upper: upper,
        log_z_note: "lower: forward AIS from U[0,1]^D (a stochastic lower bound); upper: reverse AIS started from \
                     the forward chains' end states (the reference's 'upper-bound style' estimate: a bound only \
                     for exact samples)",
        forward: Direction { accept_rate: fwd.accept_rate, effective_chains: fwd.effective_chains },
        reverse: Direction { accept_rate: rev.accept_rate, effective_chains: rev.effective_chains },
        test_images: keep.len(),
        test_log_likelihood_nats: [mean_neg_e - upper, mean_neg_e - lower],
        test_log_likelihood_note: "mean over the class's test images (pixels p/(L-1)) of -s E(x) - log Z, for log Z \
                                   from the upper and the lower estimate: a continuous density on [0,1]^D",
        dims: shape.iter().product(),
        seconds: secs(t0),
    };
    s.write_json("ais.json", &r)?;
    let wf: Vec<f32> = fwd.log_weights.iter().map(|w| *w as f32).collect();
    let wr: Vec<f32> = rev.log_weights.iter().map(|w| -*w as f32).collect();
    HistogramChart::new(&format!("log Z: lower {lower:.2}, upper {upper:.2}"), 30)
        .x_label("log-weight (forward) / minus log-weight (reverse)")
        .render(&[("forward", &wf, palette(0)), ("reverse", &wr, palette(1))])
        .save_png(s.out.join("ais.png"))?;
    Ok(r)
}
