//! `compose-shapes`: the size x position compositionality experiment.

use candle_core::Device;
use clap::Args;
use ebm_compose::shapes::{Composition, Settings, SizeFrame};
use std::path::PathBuf;

/// Train (or reuse) the size and position models, compose them, and measure the held-out pairs.
#[derive(Debug, Args)]
pub struct ComposeShapesArgs {
    /// A trained size model (run folder); trained into OUT/size when absent (or reused if OUT/size has one).
    #[arg(long)]
    size_model: Option<PathBuf>,
    /// A trained position model (run folder); trained into OUT/position when absent (or reused).
    #[arg(long)]
    position_model: Option<PathBuf>,
    /// Paper scale: 64x64 sprites and a 64-filter DspritesNet, batch 128, 10000 iterations (GPU-sized); the
    /// default is the 32x32 CPU pair.
    #[arg(long)]
    paper_scale: bool,
    /// Override the training iterations of both models.
    #[arg(long)]
    iterations: Option<u64>,
    /// Samples per (scale, position) pair and way of sampling.
    #[arg(long, default_value_t = 20)]
    samples_per_pair: usize,
    /// Langevin steps from uniform noise (the runs' sampler settings otherwise).
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Weight of the size model's energy in the sum (the position model's is 1); in `bayes` composition, the
    /// weight (guidance scale) of the classifier term `-log p_size(s | x)`.
    #[arg(long, default_value_t = 1.0)]
    size_weight: f64,
    /// How the two models are combined: `sum` (the product of experts) or `bayes` (the size model as an
    /// implicit classifier over a scale grid).
    #[arg(long, default_value = "sum")]
    composition: Composition,
    /// Points of the scale grid of the `bayes` classifier, evenly spaced over the size model's training range.
    #[arg(long, default_value_t = 11)]
    scale_grid: usize,
    /// Where the size model looks: `image` (the image as it is) or `requested` (recentred on the requested
    /// position, which builds in translation invariance).
    #[arg(long, default_value = "image")]
    size_frame: SizeFrame,
    /// Langevin steps of the position model alone before the composed chain (0: from uniform noise).
    #[arg(long, default_value_t = 0)]
    init_steps: usize,
    /// Fine-tune the two models jointly for this many iterations before composing them (the official `gentest`),
    /// into OUT/joint (reused or continued if there). 0: compose the separately trained models as they are.
    #[arg(long, default_value_t = 0)]
    joint_iterations: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "runs/compose-shapes")]
    out: PathBuf,
}

pub fn run(a: ComposeShapesArgs, device: &Device) -> anyhow::Result<()> {
    let s = Settings {
        size_model: a.size_model,
        position_model: a.position_model,
        paper_scale: a.paper_scale,
        iterations: a.iterations,
        samples_per_pair: a.samples_per_pair,
        steps: a.steps,
        size_weight: a.size_weight,
        composition: a.composition,
        scale_grid: a.scale_grid,
        size_frame: a.size_frame,
        init_steps: a.init_steps,
        joint_iterations: a.joint_iterations,
        seed: a.seed,
        out: a.out,
    };
    let report = ebm_compose::shapes::run(&s, device)?;
    println!("{}", report.summary(&s.out));
    Ok(())
}
