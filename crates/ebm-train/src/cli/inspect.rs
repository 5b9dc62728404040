//! `sample`, `score` and `classify`: using a trained model from the command line.

use candle_core::Device;
use clap::Args;
use ebm_cd::Run;
use ebm_eval::pipelines::inspect;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[arg(long)]
    model: PathBuf,
    /// A run config to use instead of the one the model was trained with (it must describe the same model).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Samples per class (or in all, for an unconditional model).
    #[arg(long, default_value_t = 10)]
    per_class: usize,
    /// Langevin steps from uniform noise.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder for samples.safetensors and samples.png.
    #[arg(long, default_value = "runs/samples")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[arg(long)]
    model: PathBuf,
    /// A run config to use instead of the one the model was trained with (it must describe the same model).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    input: PathBuf,
    /// Write the energies to this JSON file instead of printing them.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[arg(long)]
    model: PathBuf,
    /// A run config to use instead of the one the model was trained with (it must describe the same model).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    input: PathBuf,
    /// An IDX label file (otherwise a `labels` tensor in the input file is used, if any).
    #[arg(long)]
    labels: Option<PathBuf>,
}

pub fn sample(a: SampleArgs, device: &Device) -> anyhow::Result<()> {
    let mut run = Run::open_with(&a.model, a.config.as_deref(), device)?;
    let settings = run.settings();
    let (st, png) =
        inspect::sample(&mut run.model, &a.model, settings.as_ref(), a.per_class, a.steps, a.seed, &a.out, device)?;
    println!("wrote {} and {}", st.display(), png.display());
    Ok(())
}

fn inputs(
    run: &Run,
    input: &std::path::Path,
    device: &Device,
) -> anyhow::Result<(candle_core::Tensor, Option<Vec<u32>>)> {
    let c = run.model.config();
    Ok(ebm_data::inputs::read_inputs(input, &c.input_shape(), c.arch_name(), device)?)
}

pub fn score(a: ScoreArgs, device: &Device) -> anyhow::Result<()> {
    let run = Run::open_with(&a.model, a.config.as_deref(), device)?;
    let (x, _) = inputs(&run, &a.input, device)?;
    let scores = inspect::score(&run.model, &a.model, &x, &a.input)?;
    match &a.out {
        Some(p) => {
            ebm_io::write_atomic(p, serde_json::to_string_pretty(&scores)?.as_bytes())?;
            println!("wrote {} energies to {}", scores.energies.len(), p.display());
        }
        None => println!("{}", serde_json::to_string(&scores)?),
    }
    Ok(())
}

pub fn classify(a: ClassifyArgs, device: &Device) -> anyhow::Result<()> {
    let run = Run::open_with(&a.model, a.config.as_deref(), device)?;
    let (x, file_labels) = inputs(&run, &a.input, device)?;
    let labels = match &a.labels {
        Some(p) => Some((ebm_data::inputs::read_labels(p)?, p.clone())),
        None => file_labels.map(|l| (l, a.input.clone())),
    };
    let c = inspect::classify(&run.model, &a.model, &x, labels.as_ref().map(|(l, p)| (&l[..], p.as_path())))?;
    if let Some(acc) = c.accuracy {
        eprintln!("accuracy {:.2}% on {} inputs", 100.0 * acc, c.predictions.len());
    }
    println!("{}", serde_json::to_string(&c)?);
    Ok(())
}
