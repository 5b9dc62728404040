//! The model zoo: energy networks built from serde configs, with spectral normalisation in the official
//! semantics, saved and loaded as self-describing safetensors checkpoints.
//!
//! [`EnergyNet`] implements [`ebm_sampler::Energy`], so every model can be sampled with the samplers of
//! `ebm-sampler` and composed with the others.
//!
//! Architectures (reference 2): the official `resnet32`, `resnet32_large`, `resnet32_larger`, `resnet32_wider`,
//! `resnet128`, `mnist_net` and `dsprites_net`; our own `digits_net` (8x8 digits) and `cond_mnist_net`
//! (class-conditional MNIST) built from the same blocks; and an `mlp` for low-dimensional data. Parameter names
//! follow the official checkpoint's scopes (e.g. `res_1_res_c2/gb`) with PyTorch layouts (conv
//! `[cout, cin, kh, kw]`, dense `[out, in]`); only the variables a network uses are stored (see [`official`]).

pub mod arch;
pub mod blocks;
pub mod config;
pub mod convert;
pub mod convnet;
pub mod hub;
pub mod layers;
pub mod mlp;
pub mod net;
pub mod official;
pub mod ops;
pub mod params;
pub mod resnet;
pub mod spectral;
mod zoo;

pub use arch::{Architecture, Weights};
pub use config::{
    Activation, CondMnistNetConfig, DigitsNetConfig, DspritesNetConfig, MlpConfig, MnistNetConfig, ModelConfig,
    ResNet128Config, ResNet32Config, ResNet32LargeConfig, ResNet32WiderConfig,
};
pub use net::{EnergyNet, ModelError};
pub use official::{official_counts, official_variable_count, OfficialCounts};
pub use params::Params;
