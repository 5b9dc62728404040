//! The registry of architectures: builds the network a [`ModelConfig`] names.

use crate::config::ModelConfig;
use crate::layers::Builder;
use crate::net::Architecture;
use candle_core::Result;

pub(crate) fn build(config: &ModelConfig, b: &mut Builder) -> Result<Box<dyn Architecture>> {
    Ok(match config {
        ModelConfig::Mlp(c) => Box::new(crate::mlp::Mlp::build(c, b)?),
    })
}
