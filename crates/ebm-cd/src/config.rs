//! The run configuration: one TOML file (a preset, or a user's copy of one) says everything a run does.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use crate::error::{CdError, Result};
use crate::optim::AdamConfig;
use ebm_data::ImageSource;
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
    /// The iteration the cosine decay starts from; the rate is constant before it. 0: the whole run decays. A
    /// decay that starts late leaves every earlier iteration as a constant-rate run has it, so a checkpoint of
    /// that run can be resumed into the decay (see [`TrainLoop::same_schedule_until`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_decay_from: u64,
    /// What the run optimises: contrastive divergence (the EBM), or a classifier baseline on the same network.
    #[serde(default, skip_serializing_if = "is_default")]
    pub objective: Objective,
    /// Weight of the cross-entropy `CE(softmax(-E(x, .)), y)` of the positives, added to the contrastive
    /// divergence loss (the hybrid of JEM: the conditional energies as logits); 0: the plain IGEBM.
    #[serde(default, skip_serializing_if = "is_default")]
    pub classify_weight: f64,
    /// The temperature `T` of the hybrid's classifier, `p(y | x) = softmax_y(-E(x, y) / T)`: below 1 the
    /// cross-entropy is satisfied by smaller energy gaps between classes, on the scale the contrastive-divergence
    /// and L2 terms keep the energies at. 1: JEM's reading of the energies as logits.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub classify_temperature: f64,
    /// Random translation, up to this many pixels each way, of the images the cross-entropy sees (the hybrid's
    /// term and the classifier objectives; [`ebm_data::augment::random_shift`]); the contrastive-divergence term
    /// always sees the images as they are, so what the model generates is unchanged. 0: none.
    #[serde(default, skip_serializing_if = "is_default")]
    pub classify_shift: usize,
    /// Standard deviation of Gaussian noise added to the images the cross-entropy sees (after the shift; the
    /// hybrid's term and the classifier objectives): a classifier trained on noisy copies has a smoother input
    /// gradient, the gradient the hybrid's Langevin chains follow. 0: none.
    #[serde(default, skip_serializing_if = "is_default")]
    pub classify_noise: f32,
    /// Extra cross-entropy-only updates per hybrid iteration, each on a fresh training batch (shifted and noised
    /// as above, weighted by `classify_weight`): the classifier then gets `1 + k` steps for every Langevin batch,
    /// the cheap way to give it the step count a softmax baseline trains for when Langevin dominates the cost.
    /// 0: one cross-entropy term per iteration, inside the contrastive-divergence update.
    #[serde(default, skip_serializing_if = "is_default")]
    pub classify_extra_batches: u32,
    /// Fraction of each negative batch that is training data under a wrong label (each image of the batch's tail
    /// with a label drawn uniformly from the other classes) instead of a Langevin chain: contrastive divergence
    /// then also raises `E(x, y')` for data `x` of another class, which is what `argmin_y E(x, y)` classification
    /// needs and the official loss never asks for. The chains shrink to the rest of the batch. 0: the official
    /// negatives.
    #[serde(default, skip_serializing_if = "is_default")]
    pub wrong_label_negatives: f64,
    /// The attack adversarial training trains on (`objective = "adversarial"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
}

/// Keys at their default are left out of a written config, so configs from before the key existed read the same.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a run optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Contrastive divergence with Langevin negatives (plus `classify_weight` times the cross-entropy).
    #[default]
    Cd,
    /// Cross-entropy only, the conditional energies as logits: a softmax classifier with the EBM's network.
    Softmax,
    /// Cross-entropy on PGD adversarial examples of each batch (Madry et al.): the adversarially trained baseline.
    Adversarial,
}

/// The PGD attack of adversarial training: random start in the ball, `steps` signed-gradient steps of
/// `step_factor * eps / steps`, projected onto the ball and [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {
    pub norm: AttackNorm,
    pub eps: f32,
    pub steps: usize,
    #[serde(default = "step_factor")]
    pub step_factor: f32,
}

fn step_factor() -> f32 {
    2.5
}

/// The ball an attack stays in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackNorm {
    Linf,
    L2,
}

impl AttackNorm {
    /// The same ball as the evaluation crate names it.
    pub fn norm(self) -> ebm_eval::robust::Norm {
        match self {
            AttackNorm::Linf => ebm_eval::robust::Norm::Linf,
            AttackNorm::L2 => ebm_eval::robust::Norm::L2,
        }
    }
}

impl TrainLoop {
    /// How many of a batch's negatives are relabelled data (`wrong_label_negatives` of the batch, rounded).
    pub fn wrong_label_count(&self) -> usize {
        (self.wrong_label_negatives * self.batch_size as f64).round() as usize
    }

    /// The learning rate at iteration `iter` (0-based) for a base rate `base`.
    pub fn lr_at(&self, base: f64, iter: u64) -> f64 {
        let from = self.lr_decay_from.min(self.iterations);
        let span = (self.iterations - from).max(1) as f64;
        let t = (iter.saturating_sub(from) as f64 / span).min(1.0);
        let f = self.lr_final_fraction;
        base * (f + (1.0 - f) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }

    /// Whether `self` and `other` give every iteration before `done` the same learning rate: then a checkpoint at
    /// `done` trained under one is what a run under the other would have reached, and may go on under it.
    pub fn same_schedule_until(&self, other: &TrainLoop, done: u64) -> bool {
        (0..done).all(|i| self.lr_at(1.0, i) == other.lr_at(1.0, i))
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
fn is_one(v: &f64) -> bool {
    *v == 1.0
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
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| CdError::config(origin, e.to_string()))?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::fs_err(path))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs serialise")
    }

    /// Range checks that serde cannot express; `origin` names the config in the error.
    pub fn validate(&self, origin: &str) -> Result<()> {
        self.check().map_err(|message| CdError::config(origin, message))
    }

    // comparisons are negated on purpose: a NaN fails every check
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn check(&self) -> std::result::Result<(), String> {
        macro_rules! ensure {
            ($cond:expr, $($fmt:tt)+) => {
                if !$cond {
                    return Err(format!($($fmt)+));
                }
            };
        }
        let fin = |v: f64| v.is_finite();
        ensure!(
            !self.name.is_empty()
                && !self.name.starts_with('.')
                && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name `{}` must be a plain folder name (letters, digits, `-`, `_`, `.`; not starting with `.`)",
            self.name
        );
        let t = &self.train;
        ensure!(t.batch_size > 0, "train.batch_size must be positive");
        ensure!(t.adam.lr > 0.0 && t.adam.lr <= 1.0, "train.adam.lr must be in (0, 1], got {:?}", t.adam.lr);
        ensure!((0.0..1.0).contains(&t.adam.beta1), "train.adam.beta1 must be in [0, 1), got {}", t.adam.beta1);
        ensure!((0.0..1.0).contains(&t.adam.beta2), "train.adam.beta2 must be in [0, 1), got {}", t.adam.beta2);
        ensure!(t.adam.eps > 0.0 && fin(t.adam.eps), "train.adam.eps must be a positive number, got {}", t.adam.eps);
        ensure!(fin(t.ml_coeff) && fin(t.l2_coeff), "train.ml_coeff and train.l2_coeff must be finite");
        ensure!(t.l2_coeff >= 0.0, "train.l2_coeff must be >= 0, got {}", t.l2_coeff);
        ensure!(t.log_every >= 1, "train.log_every must be at least 1");
        ensure!((0.0..=1.0).contains(&self.replay.reinit_prob), "replay.reinit_prob must be in [0, 1]");
        ensure!(self.replay.capacity > 0, "replay.capacity must be positive");
        let s = &self.sampler;
        let f32fin = |v: f32| v.is_finite();
        ensure!(s.steps >= 1, "sampler.steps must be at least 1");
        ensure!(
            s.step_size > 0.0 && f32fin(s.step_size),
            "sampler.step_size must be a positive number, got {}",
            s.step_size
        );
        ensure!(
            s.noise_std >= 0.0 && f32fin(s.noise_std),
            "sampler.noise_std must be a number >= 0, got {}",
            s.noise_std
        );
        ensure!(s.temperature > 0.0 && f32fin(s.temperature), "sampler.temperature must be a positive number");
        ensure!(
            s.init_range[0] < s.init_range[1] && s.init_range.iter().all(|v| v.is_finite()),
            "sampler.init_range must be [lo, hi] with finite lo < hi, got {:?}",
            s.init_range
        );
        if let Some([lo, hi]) = s.clamp {
            ensure!(
                lo < hi && lo.is_finite() && hi.is_finite(),
                "sampler.clamp must be [lo, hi] with finite lo < hi, got [{lo}, {hi}]"
            );
        }
        if s.clip != ClipKind::None {
            ensure!(
                s.clip_value > 0.0 && f32fin(s.clip_value),
                "sampler.clip_value must be a positive number when sampler.clip is set"
            );
        }
        ensure!(t.divergence_bound > 0.0, "train.divergence_bound must be positive");
        ensure!(t.lr_final_fraction > 0.0 && t.lr_final_fraction <= 1.0, "train.lr_final_fraction must be in (0, 1]");
        // a start at or past train.iterations is allowed: a run trained in parts (`--iterations`) reaches it later
        ensure!(
            t.lr_decay_from == 0 || t.lr_final_fraction < 1.0,
            "train.lr_decay_from ({}) starts a decay, but train.lr_final_fraction is 1 (no decay)",
            t.lr_decay_from
        );
        ensure!(
            fin(t.classify_weight) && t.classify_weight >= 0.0,
            "train.classify_weight must be a number >= 0, got {}",
            t.classify_weight
        );
        let classifies = t.classify_weight > 0.0 || t.objective != Objective::Cd;
        ensure!(
            !classifies || self.model.is_class_conditional(),
            "train.classify_weight and train.objective = \"{:?}\" need a class-conditional model",
            t.objective
        );
        if t.classify_shift > 0 {
            ensure!(classifies, "train.classify_shift shifts what the cross-entropy sees: it needs train.classify_weight > 0 or a classifier objective");
            let shape = self.model.input_shape();
            let [_, h, w] = shape[..] else {
                return Err(format!("train.classify_shift is for image models, not inputs of shape {shape:?}"));
            };
            ensure!(
                2 * t.classify_shift < h.min(w),
                "train.classify_shift = {} would move a {h}x{w} image out of its frame (at most {})",
                t.classify_shift,
                (h.min(w) - 1) / 2
            );
        }
        ensure!(
            fin(t.classify_temperature) && t.classify_temperature > 0.0,
            "train.classify_temperature must be a number > 0, got {}",
            t.classify_temperature
        );
        ensure!(
            t.classify_temperature == 1.0 || (t.classify_weight > 0.0 && t.objective == Objective::Cd),
            "train.classify_temperature is the hybrid's: it needs train.classify_weight > 0 and the cd objective"
        );
        ensure!(
            t.classify_noise.is_finite() && t.classify_noise >= 0.0,
            "train.classify_noise must be a number >= 0, got {}",
            t.classify_noise
        );
        ensure!(
            t.classify_noise == 0.0 || classifies,
            "train.classify_noise adds noise to what the cross-entropy sees: it needs train.classify_weight > 0 or a \
             classifier objective"
        );
        ensure!(
            t.classify_extra_batches == 0 || (t.classify_weight > 0.0 && t.objective == Objective::Cd),
            "train.classify_extra_batches adds the hybrid's cross-entropy steps: it needs train.classify_weight > 0 \
             and the cd objective"
        );
        ensure!(
            t.classify_extra_batches <= 64,
            "train.classify_extra_batches = {} is more than 64 cross-entropy steps per iteration",
            t.classify_extra_batches
        );
        ensure!(
            t.wrong_label_negatives.is_finite() && (0.0..1.0).contains(&t.wrong_label_negatives),
            "train.wrong_label_negatives must be a fraction in [0, 1), got {}",
            t.wrong_label_negatives
        );
        if t.wrong_label_negatives > 0.0 {
            ensure!(
                self.model.is_class_conditional() && t.objective == Objective::Cd,
                "train.wrong_label_negatives relabels data as negatives: it needs a class-conditional model trained \
                 by contrastive divergence"
            );
            let k = t.wrong_label_count();
            ensure!(
                k >= 1 && k < t.batch_size,
                "train.wrong_label_negatives = {} of a batch of {} leaves {k} relabelled images and {} chains (each \
                 needs at least one)",
                t.wrong_label_negatives,
                t.batch_size,
                t.batch_size - k
            );
        }
        match (&t.objective, &t.adversarial) {
            (Objective::Adversarial, None) => {
                return Err("train.objective = \"adversarial\" needs [train.adversarial]".into())
            }
            (Objective::Adversarial, Some(a)) => {
                ensure!(a.eps > 0.0 && a.eps.is_finite(), "train.adversarial.eps must be a positive number");
                ensure!(a.steps >= 1, "train.adversarial.steps must be at least 1");
                ensure!(
                    a.step_factor > 0.0 && a.step_factor.is_finite(),
                    "train.adversarial.step_factor must be positive"
                );
            }
            (_, Some(_)) => return Err("[train.adversarial] is for train.objective = \"adversarial\"".into()),
            _ => {}
        }
        let e = &self.eval;
        ensure!(e.samples >= 1, "eval.samples must be at least 1");
        ensure!(e.per_class >= 1, "eval.per_class must be at least 1");
        ensure!(e.steps >= 1, "eval.steps must be at least 1");
        ensure!(e.mmd_bandwidth > 0.0 && fin(e.mmd_bandwidth), "eval.mmd_bandwidth must be a positive number");
        match &self.data {
            DataConfig::Toy2d { name } => {
                name.parse::<ebm_data::Toy2d>().map_err(|e| format!("data.name: {e}"))?;
                ensure!(self.model.input_shape() == [2], "a toy2d run needs a model with 2 inputs");
            }
            DataConfig::Images { source, shapes, .. } => {
                ensure!(self.model.input_shape().len() == 3, "an image run needs an image model");
                ensure!(
                    shapes.is_none() || source.is_generated(),
                    "data.shapes configures the generated `shapes-*` sources, not `{}`",
                    source.name()
                );
            }
        }
        Ok(())
    }
}

/// The keys a resumed run may take from an edited config.toml: how long it runs, how often it logs, draws and
/// checkpoints, and what it measures at the end. Everything else is fixed by the checkpoint.
pub const RESUMABLE_KEYS: [&str; 5] =
    ["train.iterations", "train.log_every", "train.figure_every", "train.checkpoint_every", "description"];

/// The learning-rate schedule's keys: a resumed run may change them where the new schedule gives every iteration
/// the checkpoint has done the rate it had ([`TrainLoop::same_schedule_until`]).
pub const SCHEDULE_KEYS: [&str; 2] = ["train.lr_final_fraction", "train.lr_decay_from"];

/// Whether key `k` (dotted) may differ between a checkpoint's config and the one it is resumed with.
pub fn resumable(k: &str) -> bool {
    RESUMABLE_KEYS.contains(&k) || k.starts_with("eval.")
}

/// The dotted keys whose values differ between two configs (a key present in only one counts).
pub fn differing_keys(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    fn flatten(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, x, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let table = |c: &RunConfig| {
        let mut m = std::collections::BTreeMap::new();
        if let Ok(v) = toml::Value::try_from(c) {
            flatten("", &v, &mut m);
        }
        m
    };
    let (ta, tb) = (table(a), table(b));
    let mut keys: Vec<String> = ta.keys().chain(tb.keys()).filter(|k| ta.get(*k) != tb.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

impl RunConfig {
    /// What the run surely needs in memory, in bytes: the model's parameters with their gradients, Adam moments
    /// and normalised copies, the replay buffer, one batch. `None` when the count overflows. Activations come on
    /// top, so this is a lower bound, used to refuse configs no machine could run.
    pub fn estimated_bytes(&self) -> Result<Option<u64>> {
        let Some(params) = ebm_models::EnergyNet::planned_scalars(&self.model)? else { return Ok(None) };
        let copies = 4 + u64::from(self.train.adam.beta1 != 0.0); // parameter, gradient, v (and m), normalised copy
        let numel: u64 = self.model.input_shape().iter().map(|&d| d as u64).product();
        let cond = self.model.cond_dim() as u64;
        let replay = (self.replay.capacity as u64).checked_mul(numel + 4 * cond);
        let batch = (self.train.batch_size as u64).checked_mul(numel * 4 * 3);
        Ok(params
            .checked_mul(4 * copies)
            .zip(replay)
            .zip(batch)
            .and_then(|((p, r), b)| p.checked_add(r)?.checked_add(b)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn differing_keys_name_every_changed_leaf() {
        let a = crate::presets::load("digits").unwrap();
        let mut b = a.clone();
        assert!(super::differing_keys(&a, &b).is_empty());
        b.train.iterations += 1;
        b.sampler.clamp = None;
        b.eval.per_class = 3;
        let keys = super::differing_keys(&a, &b);
        assert_eq!(keys, ["eval.per_class", "sampler.clamp", "train.iterations"]);
        let fixed: Vec<_> = keys.iter().filter(|k| !super::resumable(k)).collect();
        assert_eq!(fixed, ["sampler.clamp"]);
    }

    #[test]
    fn a_late_decay_keeps_the_rate_before_it_and_ends_at_the_fraction() {
        let mut t = crate::presets::load("digits").unwrap().train;
        t.iterations = 120;
        let constant = t.clone();
        t.lr_final_fraction = 0.1;
        t.lr_decay_from = 100;
        assert!((0..=100).all(|i| t.lr_at(2.0, i) == 2.0));
        assert!((t.lr_at(2.0, 110) - 1.1).abs() < 1e-12, "half way down the cosine: {}", t.lr_at(2.0, 110));
        assert!((t.lr_at(2.0, 120) - 0.2).abs() < 1e-12);
        assert!(t.same_schedule_until(&constant, 100) && !t.same_schedule_until(&constant, 102));
        t.lr_decay_from = 0; // the whole run decays: only iteration 0 keeps the constant rate
        assert!(t.same_schedule_until(&constant, 1) && !t.same_schedule_until(&constant, 2));
        let mut c = crate::presets::load("digits").unwrap();
        c.train.lr_decay_from = 5;
        assert!(c.validate("t").unwrap_err().to_string().contains("train.lr_final_fraction is 1"));
    }

    #[test]
    fn estimated_bytes_grow_with_the_model_and_overflow_to_none() {
        let mut c = crate::presets::load("digits").unwrap();
        let small = c.estimated_bytes().unwrap().unwrap();
        assert!(small > 0 && small < 1 << 30, "{small}");
        if let ebm_models::ModelConfig::DigitsNet(m) = &mut c.model {
            m.filters = 100_000;
        }
        let big = c.estimated_bytes().unwrap().unwrap();
        assert!(big > 1 << 40, "{big}: a 100000-filter DigitsNet needs terabytes");
    }

    #[test]
    fn classify_shift_needs_a_cross_entropy_and_room_in_the_frame() {
        let mut c = crate::presets::load("digits-hybrid").unwrap();
        c.train.classify_shift = 1;
        c.validate("t").unwrap();
        c.train.classify_shift = 4; // an 8x8 image has room for 3 at most
        assert!(c.validate("t").unwrap_err().to_string().contains("train.classify_shift = 4"));
        c.train.classify_shift = 1;
        c.train.classify_noise = -0.1;
        assert!(c.validate("t").unwrap_err().to_string().contains("train.classify_noise must be"));
        c.train.classify_noise = f32::NAN;
        assert!(c.validate("t").unwrap_err().to_string().contains("train.classify_noise must be"));
        let mut plain = crate::presets::load("digits").unwrap();
        plain.train.classify_noise = 0.1;
        assert!(plain.validate("t").unwrap_err().to_string().contains("needs train.classify_weight"));
        plain.train.classify_noise = 0.0;
        plain.train.classify_shift = 1;
        assert!(plain.validate("t").unwrap_err().to_string().contains("needs train.classify_weight"));
        // the key is left out of a config that does not use it, so earlier configs serialise unchanged
        assert!(!crate::presets::load("digits").unwrap().to_toml().contains("classify_shift"));
    }
}
