//! The model zoo: energy networks built from serde configs, with spectral normalisation in the official
//! semantics, saved and loaded as self-describing safetensors checkpoints.
//!
//! [`EnergyNet`] implements [`ebm_sampler::Energy`], so every model can be sampled with the samplers of
//! `ebm-sampler` and composed with the others.

pub mod config;
pub mod layers;
pub mod mlp;
pub mod net;
pub mod params;
pub mod spectral;
mod zoo;

pub use config::{Activation, MlpConfig, ModelConfig};
pub use net::{one_hot, Architecture, EnergyNet, ModelError, Weights};
pub use params::Params;
