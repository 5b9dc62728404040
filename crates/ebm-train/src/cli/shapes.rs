//! `compose-shapes`: the size x position compositionality experiment, on slices (issue 7) or with every factor
//! varying (`--design all-factors`, issue 15).

use anyhow::bail;
use candle_core::Device;
use clap::{Args, ValueEnum};
use ebm_compose::shapes::all_factors::{self, Part};
use ebm_compose::shapes::{Composition, Settings, SizeFrame};
use std::path::PathBuf;

/// Which data the models of `compose-shapes` are trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Design {
    /// Each model sees a slice: the size model at the centre, the position model at scale 0.75 (issue 7).
    Slice,
    /// Every model sees every factor varying, minus held-out (scale, position) cells (issue 15).
    AllFactors,
}

/// Train (or reuse) the size and position models, compose them, and measure the held-out pairs.
#[derive(Debug, Args)]
pub struct ComposeShapesArgs {
    /// `slice` (the models of shapes-{size,position}-cpu) or `all-factors` (shapes-{size,position,shape}-all-cpu,
    /// composed on held-out cells).
    #[arg(long, value_enum, default_value = "slice")]
    design: Design,
    /// All-factors design: `pairs` (size x position on the held-out cells) or `shape` (adds the shape model:
    /// three-factor composition, NOT and OR).
    #[arg(long, default_value = "pairs")]
    part: Part,
    /// All-factors design: a trained shape model (run folder); trained into OUT/shape when absent (or reused).
    #[arg(long)]
    shape_model: Option<PathBuf>,
    /// All-factors design, pairs part: chains per seen cell (default 8).
    #[arg(long)]
    seen_samples: Option<usize>,
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
    /// Override the training iterations of the models trained here (two, or three with `--part shape`).
    #[arg(long)]
    iterations: Option<u64>,
    /// Samples per (scale, position) pair and way of sampling (default 20; all-factors design: per held-out
    /// cell or triple, default 32).
    #[arg(long)]
    samples_per_pair: Option<usize>,
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
    /// The experiment's folder (default runs/compose-shapes; all-factors design: runs/compose-shapes-all).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: ComposeShapesArgs, device: &Device) -> anyhow::Result<()> {
    if a.design == Design::AllFactors {
        return run_all_factors(a, device);
    }
    if a.part != Part::Pairs || a.shape_model.is_some() || a.seen_samples.is_some() {
        bail!("--part, --shape-model and --seen-samples belong to --design all-factors");
    }
    let s = Settings {
        size_model: a.size_model,
        position_model: a.position_model,
        paper_scale: a.paper_scale,
        iterations: a.iterations,
        samples_per_pair: a.samples_per_pair.unwrap_or(20),
        steps: a.steps,
        size_weight: a.size_weight,
        composition: a.composition,
        scale_grid: a.scale_grid,
        size_frame: a.size_frame,
        init_steps: a.init_steps,
        joint_iterations: a.joint_iterations,
        seed: a.seed,
        out: a.out.unwrap_or_else(|| PathBuf::from("runs/compose-shapes")),
    };
    let report = ebm_compose::shapes::run(&s, device)?;
    println!("{}", report.summary(&s.out));
    Ok(())
}

fn run_all_factors(a: ComposeShapesArgs, device: &Device) -> anyhow::Result<()> {
    // the slice design's ways of composing are not part of this design: refuse them rather than ignore them
    let slice_only = [
        (a.paper_scale, "--paper-scale"),
        (a.size_weight != 1.0, "--size-weight"),
        (a.composition != Composition::Sum, "--composition"),
        (a.scale_grid != 11, "--scale-grid"),
        (a.size_frame != SizeFrame::Image, "--size-frame"),
        (a.init_steps != 0, "--init-steps"),
        (a.joint_iterations != 0, "--joint-iterations"),
    ];
    if let Some((_, flag)) = slice_only.iter().find(|(set, _)| *set) {
        bail!("{flag} belongs to --design slice; the all-factors design composes by the plain sum");
    }
    if a.part == Part::Pairs && a.shape_model.is_some() {
        bail!("--shape-model is used by --part shape only");
    }
    if a.part == Part::Shape && a.seen_samples.is_some() {
        bail!("--seen-samples is used by --part pairs only");
    }
    let s = all_factors::Settings {
        size_model: a.size_model,
        position_model: a.position_model,
        shape_model: a.shape_model,
        iterations: a.iterations,
        part: a.part,
        samples_per_cell: a.samples_per_pair.unwrap_or(32),
        seen_samples: a.seen_samples.unwrap_or(8),
        steps: a.steps,
        seed: a.seed,
        out: a.out.unwrap_or_else(|| PathBuf::from("runs/compose-shapes-all")),
    };
    match s.part {
        Part::Pairs => println!("{}", all_factors::run_pairs(&s, device)?.summary(&s.out)),
        Part::Shape => println!("{}", all_factors::run_shape(&s, device)?.summary(&s.out)),
    }
    Ok(())
}
