//! The registry of architectures: builds the network a [`ModelConfig`] names.

use crate::arch::Architecture;
use crate::config::ModelConfig;
use crate::convnet::ConvNetPlan;
use crate::layers::Builder;
use crate::resnet::{ResNetPlan, Stage};
use candle_core::Result;

pub(crate) fn build(config: &ModelConfig, b: &mut Builder) -> Result<Box<dyn Architecture>> {
    validate(config)?;
    if let Some(plan) = ResNetPlan::from_config(config) {
        return Ok(Box::new(plan.build(b)?));
    }
    if let Some(plan) = ConvNetPlan::from_config(config) {
        return Ok(Box::new(plan.build(b)?));
    }
    Ok(match config {
        ModelConfig::Mlp(c) => Box::new(crate::mlp::Mlp::build(c, b)?),
        _ => unreachable!("every config has a builder"),
    })
}

/// Rejects configurations that cannot build a network, with a message naming the field.
fn validate(config: &ModelConfig) -> Result<()> {
    let arch = config.arch_name();
    let filters = match config {
        ModelConfig::Mlp(c) => {
            if c.input_dim == 0 || c.hidden == 0 {
                candle_core::bail!("{arch} config: `input_dim` and `hidden` must be positive");
            }
            return Ok(());
        }
        ModelConfig::ResNet32(c) | ModelConfig::ResNet32Larger(c) => c.filters,
        ModelConfig::ResNet32Large(c) => c.filters,
        ModelConfig::ResNet32Wider(c) => c.filters,
        ModelConfig::ResNet128(c) => c.filters,
        ModelConfig::MnistNet(c) => c.filters,
        ModelConfig::DspritesNet(c) => c.filters,
        ModelConfig::DigitsNet(c) => c.filters,
        ModelConfig::CondMnistNet(c) => c.filters,
    };
    if filters == 0 {
        candle_core::bail!("{arch} config: `filters` must be positive");
    }
    if let ModelConfig::DspritesNet(c) = config {
        if c.image_size < 16 {
            candle_core::bail!("{arch} config: `image_size` {} is too small (at least 16)", c.image_size);
        }
    }
    let shape = config.input_shape();
    if shape.contains(&0) {
        candle_core::bail!("{arch} config: the input shape {shape:?} has an empty dimension");
    }
    if let Some(plan) = ResNetPlan::from_config(config) {
        let downs = plan.stages.iter().filter(|s| matches!(s, Stage::Res(b) if b.down)).count();
        if shape[1] >> downs == 0 || shape[2] >> downs == 0 {
            candle_core::bail!(
                "{arch} config: `image_size` {} is too small for its {downs} downsampling blocks (at least {})",
                shape[1],
                1usize << downs
            );
        }
    }
    Ok(())
}
