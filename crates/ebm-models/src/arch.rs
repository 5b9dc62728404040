//! What a network of the zoo is: an [`Architecture`] (a pure function of its weights, input and condition) and
//! the [`Weights`] view it reads its tensors through. Every network module depends on this one and on nothing
//! that builds networks.

use crate::params::Params;
use candle_core::{Result, Tensor};
use ebm_kernels::Rng;
use std::collections::HashMap;
use std::sync::Mutex;

/// A network definition: a pure function of its (effective) weights, the input and the condition.
pub trait Architecture: Send + Sync {
    /// Energies `[B]`.
    fn forward(&self, w: &Weights, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor>;

    /// Energies and their input gradient by a hand-written backward pass, for architectures that have one; used
    /// while the model is frozen (Langevin), where no parameter gradient is wanted. `None`: use autograd.
    fn energy_and_input_grad(
        &self,
        _w: &Weights,
        _x: &Tensor,
        _cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        None
    }

    /// Energies `[B, classes]` under every class from one pass, for networks whose classes share it (a logit
    /// head). `None`: one conditioned [`Architecture::forward`] per class.
    fn class_energies(&self, _w: &Weights, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }
}

/// The weights a forward pass sees: the spectrally normalised ones where normalisation applies, the raw
/// parameters elsewhere; all detached from the parameters while the model is frozen (Langevin).
pub struct Weights<'a> {
    pub(crate) normalised: &'a HashMap<String, Tensor>,
    pub(crate) params: &'a Params,
    pub(crate) frozen: bool,
    /// Dropout draws (ResNet32Large trains with dropout, also during training-time Langevin).
    pub dropout: Option<&'a Mutex<Rng>>,
}

impl Weights<'_> {
    /// The effective tensor for parameter `name`.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        if let Some(t) = self.normalised.get(name) {
            return Ok(if self.frozen { t.detach() } else { t.clone() });
        }
        let v = self.params.get(name)?;
        Ok(if self.frozen { v.as_tensor().detach() } else { v.as_tensor().clone() })
    }
}
