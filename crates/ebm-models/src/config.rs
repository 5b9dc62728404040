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
}

fn swish() -> Activation {
    Activation::Swish
}

fn yes() -> bool {
    true
}

/// Which network, with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    Mlp(MlpConfig),
}

impl ModelConfig {
    /// The architecture's name as written in configs (`arch = "..."`).
    pub fn arch_name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
        }
    }

    /// Shape of one input sample (without the batch dimension).
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            ModelConfig::Mlp(c) => vec![c.input_dim],
        }
    }

    /// Size of the condition vector (number of classes, or of continuous latents); 0 = unconditional.
    pub fn cond_dim(&self) -> usize {
        match self {
            ModelConfig::Mlp(_) => 0,
        }
    }
}
