//! `compose`: sample from a composition of trained models.

use candle_core::Device;
use clap::Args;
use ebm_compose::{Composed, Request};
use ebm_sampler::builder::ComposeOp;
use std::path::PathBuf;

/// Sample from a composition of several models' energies (AND, OR, NOT) and draw the result.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// A model to compose: `RUN[:label=L|:cond=v1,v2,...][:weight=W][:margin=M]`, where RUN is a run folder or a
    /// model .safetensors file; `label` for class-conditional models, `cond` (the latent vector) for continuous ones;
    /// a negative weight makes it a NOT term (`margin`: the energy above which NOT stops acting). `RUN:W` is short
    /// for `RUN:weight=W`.
    #[arg(long = "model", required = true, num_args = 1)]
    models: Vec<String>,
    /// How the positive-weight models combine: `and` (sum of energies) or `or` (mixture, logsumexp).
    #[arg(long, value_enum, default_value_t = Op::And)]
    op: Op,
    /// Number of samples (default: 2000 for 2D models, 64 for image models).
    #[arg(long)]
    samples: Option<usize>,
    /// Langevin steps from uniform noise (default: 500 for 2D models; the first run's `eval.steps` for images).
    #[arg(long)]
    steps: Option<usize>,
    /// Sample exp(-E/T): below 1 concentrates the samples on the composition's high-density region.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Width tau of the soft hinge of NOT terms, in energy units (default: the spread, one standard deviation, of
    /// the negated model's energies on the noise starts).
    #[arg(long)]
    not_softness: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder for compose.png and compose.json (and samples.safetensors for images).
    #[arg(long, default_value = "runs/compose")]
    out: PathBuf,
}

/// `and` or `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Op {
    /// `sum_i w_i E_i`: samples all models agree on.
    And,
    /// `-log sum_i w_i exp(-E_i)`: samples any of the models likes.
    Or,
}

pub fn run(a: ComposeArgs, device: &Device) -> anyhow::Result<()> {
    let out = a.out.clone();
    let r = Request {
        models: a.models,
        op: match a.op {
            Op::And => ComposeOp::And,
            Op::Or => ComposeOp::Or,
        },
        samples: a.samples,
        steps: a.steps,
        temperature: a.temperature,
        not_softness: a.not_softness,
        seed: a.seed,
        out: a.out,
    };
    match ebm_compose::compose(&r, device)? {
        Composed::Toy(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            println!("wrote {} and {}", out.join("compose.png").display(), out.join("compose.json").display());
        }
        Composed::Images(report) => {
            for m in &report.models {
                println!(
                    "{:>5} w={:<6} {:<40} mean energy {:.4} (at the noise starts {:.4})",
                    m.role, m.weight, m.model, m.energy_mean, m.energy_start_mean
                );
            }
            println!(
                "wrote {}, {} and {}",
                out.join("samples.safetensors").display(),
                out.join("compose.png").display(),
                out.join("compose.json").display()
            );
        }
    }
    Ok(())
}
