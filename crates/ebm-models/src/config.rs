//! Serde configurations: every model is built from one, and a checkpoint stores it beside the weights, so a
//! checkpoint describes itself.

use serde::{Deserialize, Serialize};

/// The nonlinearity inside a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Leaky ReLU with slope 0.2 (TensorFlow's default, the official default).
    #[default]
    LeakyRelu,
    /// `x * sigmoid(x)` (the official `--swish_act`).
    Swish,
    Relu,
}

/// A spectrally normalised multilayer perceptron energy for low-dimensional data (the 2D densities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub input_dim: usize,
    pub hidden: usize,
    /// Number of hidden layers.
    pub depth: usize,
    #[serde(default = "swish")]
    pub activation: Activation,
    #[serde(default = "yes")]
    pub spectral_norm: bool,
    /// Hidden weights without spectral norm start N(0, std^2) when set, Glorot-uniform otherwise. A large std
    /// starts the network with high-frequency features, which lets a 2D energy split into many modes quickly.
    #[serde(default)]
    pub weight_std: Option<f32>,
}

fn swish() -> Activation {
    Activation::Swish
}

fn yes() -> bool {
    true
}

/// The official `ResNet32` (CIFAR-10, the conditional model of the paper) and `ResNet32Larger` (`--larger_model`),
/// both 32x32 networks whose blocks always use leaky-ReLU and whose head is ReLU (ResNet32) or leaky-ReLU when
/// conditional / ReLU otherwise (ResNet32Larger); see `resnet.rs` for the layouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet32Config {
    /// Base width F (official: 128).
    pub filters: usize,
    /// Number of classes of the one-hot condition; 0 = unconditional (official: 10 with `--cclass`).
    pub classes: usize,
    /// `--use_attention`: self-attention replaces `res_3` (ResNet32) or `res_4` (ResNet32Larger).
    pub attention: bool,
    /// `--spec_norm` (official default on).
    pub spectral_norm: bool,
    /// Input channels (3).
    pub channels: usize,
    /// Input height = width (32); the network is fully convolutional, this only fixes the expected input shape.
    pub image_size: usize,
}

impl Default for ResNet32Config {
    fn default() -> Self {
        Self { filters: 128, classes: 0, attention: false, spectral_norm: true, channels: 3, image_size: 32 }
    }
}

/// The official `ResNet32Large` (`--large_model`, the pretrained unconditional CIFAR-10 model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet32LargeConfig {
    /// Base width F (official: 128).
    pub filters: usize,
    /// Number of classes; 0 = unconditional (the pretrained model).
    pub classes: usize,
    /// `--use_attention`: self-attention replaces `res_4`.
    pub attention: bool,
    /// Dropout 0.5 on every block's first conv output while the net is in training mode
    /// ([`crate::EnergyNet::set_training`]): `train.py` builds this model with `train=True` (so on by default);
    /// the evaluation scripts build it with `train=False`, which training mode off reproduces.
    pub dropout: bool,
    pub spectral_norm: bool,
    pub channels: usize,
    pub image_size: usize,
}

impl Default for ResNet32LargeConfig {
    fn default() -> Self {
        Self {
            filters: 128,
            classes: 0,
            attention: false,
            dropout: true,
            spectral_norm: true,
            channels: 3,
            image_size: 32,
        }
    }
}

/// The official `ResNet32Wider` (`--wider_model`; ImageNet 32x32). Its stem is always 128 wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet32WiderConfig {
    /// Base width F: 192 for CIFAR-10 and 256 for ImageNet32 in `train.py` (other scripts differ).
    pub filters: usize,
    /// 10 (CIFAR-10) or 1000 (ImageNet) with `--cclass`; 0 = unconditional.
    pub classes: usize,
    /// `act` of the stem and of every block but `res_optim` (always leaky-ReLU): leaky-ReLU, or swish with
    /// `--swish_act`. The head is swish when this is swish, ReLU otherwise.
    pub activation: Activation,
    /// `--use_attention`: self-attention replaces `res_1`.
    pub attention: bool,
    /// The model's `train` switch (off in every official script): dropout 0.5 on every block's first conv
    /// output, and dropout (keep 0.9) on the attention logits, while in training mode.
    pub dropout: bool,
    pub spectral_norm: bool,
    pub channels: usize,
    pub image_size: usize,
}

impl Default for ResNet32WiderConfig {
    fn default() -> Self {
        Self {
            filters: 192,
            classes: 0,
            activation: Activation::LeakyRelu,
            attention: false,
            dropout: false,
            spectral_norm: true,
            channels: 3,
            image_size: 32,
        }
    }
}

/// The official `ResNet128` (ImageNet 128x128; the official code always builds it with 1000 classes). Its stem is
/// always 64 wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet128Config {
    /// Base width F (official: 64).
    pub filters: usize,
    /// 1000 in the official code (which cannot run it unconditionally); 0 = unconditional (ours).
    pub classes: usize,
    /// `act` of the stem and of `res_3`..`res_10` (`res_optim` is always leaky-ReLU); the head is swish when this
    /// is swish, ReLU otherwise (the official run uses `--swish_act`).
    pub activation: Activation,
    /// `--use_attention`: self-attention after `res_optim`.
    pub attention: bool,
    /// The model's `train` switch (off in the official scripts): dropout 0.5 on every block's first conv output.
    pub dropout: bool,
    pub spectral_norm: bool,
    pub channels: usize,
    pub image_size: usize,
}

impl Default for ResNet128Config {
    fn default() -> Self {
        Self {
            filters: 64,
            classes: 1000,
            activation: Activation::LeakyRelu,
            attention: false,
            dropout: false,
            spectral_norm: true,
            channels: 3,
            image_size: 128,
        }
    }
}

/// The official `MnistNet` (28x28x1, unconditional: its `--cclass` path crashes in the official code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnistNetConfig {
    /// Base width F (official `--num_filters`, default 64); the stem is always 64 wide.
    pub filters: usize,
    /// Leaky-ReLU, or swish with `--swish_act`.
    pub activation: Activation,
    pub spectral_norm: bool,
}

impl Default for MnistNetConfig {
    fn default() -> Self {
        Self { filters: 64, activation: Activation::LeakyRelu, spectral_norm: true }
    }
}

/// The official `DspritesNet` (64x64x1, or another side with `image_size`) conditioned on continuous latents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DspritesNetConfig {
    /// Base width F (official `--num_filters`, 64 in the README runs); the stem is always 32 wide.
    pub filters: usize,
    /// Length L of the latent vector: size 1, position 2, shape 3 (one-hot), rotation 2 (cos, sin); 0 =
    /// unconditional. Default 1 (the official constructor's `label_size`).
    pub cond_dim: usize,
    /// Leaky-ReLU, or swish with `--swish_act` (the README runs).
    pub activation: Activation,
    pub spectral_norm: bool,
    /// Side of the square input: 64 as dSprites (official); ours for smaller sprites (32 trains 4x faster on a
    /// CPU). The four stride-2 convs leave `ceil(side / 16)` pixels a side before `fc_dense`.
    pub image_size: usize,
    /// Ours, not the paper's: average the last conv's features over space before `fc_dense` (which then takes
    /// `2F` inputs) instead of flattening them. The energy then barely depends on where a pattern is, so a model
    /// trained on sprites at one position judges their size anywhere (the compositionality experiment's size model).
    pub global_pool: bool,
    /// Ours: how many of the four stride-2 convs `c1..c4` to keep (default 4, the official network). Fewer keeps
    /// the features finer (with `global_pool`: an energy averaged over patches of about 12 pixels after two).
    pub depth: usize,
}

impl Default for DspritesNetConfig {
    fn default() -> Self {
        Self {
            filters: 64,
            cond_dim: 1,
            activation: Activation::LeakyRelu,
            spectral_norm: true,
            image_size: 64,
            global_pool: false,
            depth: 4,
        }
    }
}

/// OUR conditional network for 8x8x1 images (the embedded UCI digits), not the paper's: the official blocks at a
/// size a CPU trains in minutes. Layout in `resnet.rs` ([`crate::resnet::ResNetPlan::digits`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigitsNetConfig {
    /// Base width F (default 32).
    pub filters: usize,
    /// Number of classes; 0 = unconditional.
    pub classes: usize,
    /// Activation of the stem, the blocks and the head.
    pub activation: Activation,
    /// Self-attention after `res_1` (at 4x4).
    pub attention: bool,
    pub spectral_norm: bool,
}

impl Default for DigitsNetConfig {
    fn default() -> Self {
        Self { filters: 32, classes: 10, activation: Activation::LeakyRelu, attention: false, spectral_norm: true }
    }
}

/// OUR class-conditional network for 28x28x1 images (MNIST), not the paper's (the official MnistNet is
/// unconditional). Layout in `resnet.rs` ([`crate::resnet::ResNetPlan::cond_mnist`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CondMnistNetConfig {
    /// Base width F (default 64).
    pub filters: usize,
    /// Number of classes; 0 = unconditional.
    pub classes: usize,
    /// Activation of the stem, the blocks and the head.
    pub activation: Activation,
    /// Self-attention after `res_2` (at 7x7).
    pub attention: bool,
    pub spectral_norm: bool,
    /// An unconditional body with a `classes`-logit output layer, `E(x, y) = -logit_y(x)`, instead of class gains
    /// in every block: all classes' energies from one pass (the softmax baselines; 10x cheaper to classify).
    pub logit_head: bool,
}

impl Default for CondMnistNetConfig {
    fn default() -> Self {
        Self {
            filters: 64,
            classes: 10,
            activation: Activation::LeakyRelu,
            attention: false,
            spectral_norm: true,
            logit_head: false,
        }
    }
}

/// Which network, with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch")]
pub enum ModelConfig {
    #[serde(rename = "mlp")]
    Mlp(MlpConfig),
    #[serde(rename = "resnet32")]
    ResNet32(ResNet32Config),
    #[serde(rename = "resnet32_large")]
    ResNet32Large(ResNet32LargeConfig),
    #[serde(rename = "resnet32_larger")]
    ResNet32Larger(ResNet32Config),
    #[serde(rename = "resnet32_wider")]
    ResNet32Wider(ResNet32WiderConfig),
    #[serde(rename = "resnet128")]
    ResNet128(ResNet128Config),
    #[serde(rename = "mnist_net")]
    MnistNet(MnistNetConfig),
    #[serde(rename = "dsprites_net")]
    DspritesNet(DspritesNetConfig),
    #[serde(rename = "digits_net")]
    DigitsNet(DigitsNetConfig),
    #[serde(rename = "cond_mnist_net")]
    CondMnistNet(CondMnistNetConfig),
}

impl ModelConfig {
    /// The architecture's name as written in configs (`arch = "..."`).
    pub fn arch_name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::ResNet32(_) => "resnet32",
            ModelConfig::ResNet32Large(_) => "resnet32_large",
            ModelConfig::ResNet32Larger(_) => "resnet32_larger",
            ModelConfig::ResNet32Wider(_) => "resnet32_wider",
            ModelConfig::ResNet128(_) => "resnet128",
            ModelConfig::MnistNet(_) => "mnist_net",
            ModelConfig::DspritesNet(_) => "dsprites_net",
            ModelConfig::DigitsNet(_) => "digits_net",
            ModelConfig::CondMnistNet(_) => "cond_mnist_net",
        }
    }

    /// Shape of one input sample (without the batch dimension): `[C, H, W]` for images.
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            ModelConfig::Mlp(c) => vec![c.input_dim],
            ModelConfig::ResNet32(c) | ModelConfig::ResNet32Larger(c) => vec![c.channels, c.image_size, c.image_size],
            ModelConfig::ResNet32Large(c) => vec![c.channels, c.image_size, c.image_size],
            ModelConfig::ResNet32Wider(c) => vec![c.channels, c.image_size, c.image_size],
            ModelConfig::ResNet128(c) => vec![c.channels, c.image_size, c.image_size],
            ModelConfig::MnistNet(_) | ModelConfig::CondMnistNet(_) => vec![1, 28, 28],
            ModelConfig::DspritesNet(c) => vec![1, c.image_size, c.image_size],
            ModelConfig::DigitsNet(_) => vec![1, 8, 8],
        }
    }

    /// Size of the condition vector (number of classes, or of continuous latents); 0 = unconditional.
    pub fn cond_dim(&self) -> usize {
        match self {
            ModelConfig::Mlp(_) | ModelConfig::MnistNet(_) => 0,
            ModelConfig::ResNet32(c) | ModelConfig::ResNet32Larger(c) => c.classes,
            ModelConfig::ResNet32Large(c) => c.classes,
            ModelConfig::ResNet32Wider(c) => c.classes,
            ModelConfig::ResNet128(c) => c.classes,
            ModelConfig::DspritesNet(c) => c.cond_dim,
            ModelConfig::DigitsNet(c) => c.classes,
            ModelConfig::CondMnistNet(c) => c.classes,
        }
    }

    /// Whether the condition is a class label (one-hot) rather than continuous latents.
    pub fn is_class_conditional(&self) -> bool {
        self.cond_dim() > 0 && !matches!(self, ModelConfig::DspritesNet(_))
    }
}
