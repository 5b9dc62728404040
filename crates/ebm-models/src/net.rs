//! [`EnergyNet`]: a network of the zoo with its parameters, its spectral-norm state and its cached normalised
//! weights; the type the rest of the project trains, samples from, saves and loads.

use crate::arch::{Architecture, Weights};
use crate::config::ModelConfig;
use crate::layers::{Builder, SnSpec};
use crate::params::Params;
use crate::spectral::spectral_normalize;
use candle_core::{DType, Device, Result, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_sampler::Energy;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Errors in loading a model that a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Io(#[from] ebm_io::IoError),
    #[error("{path}: {reason}")]
    Checkpoint { path: String, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Metadata key holding the model's JSON config inside a checkpoint.
pub const CONFIG_KEY: &str = "ebm.model_config";
/// Metadata key holding the checkpoint format tag.
pub const FORMAT_KEY: &str = "ebm.format";
/// The format tag of model checkpoints.
pub const FORMAT: &str = "ebm-model/1";
/// Metadata key holding, in a model file written by a training run, the run config (TOML) it was trained with.
pub const RUN_CONFIG_KEY: &str = "ebm.run_config";

/// A network of the zoo, ready to compute energies.
pub struct EnergyNet {
    config: ModelConfig,
    params: Params,
    sn: Vec<SnSpec>,
    arch: Box<dyn Architecture>,
    normalised: HashMap<String, Tensor>,
    frozen: bool,
    training: bool,
    dropout_rng: Mutex<Rng>,
    device: Device,
}

impl EnergyNet {
    /// Builds and initialises a network (official initialisation) from `config`, drawing from `rng`.
    pub fn new(config: ModelConfig, rng: &mut Rng, device: &Device) -> Result<Self> {
        let mut params = Params::new();
        let mut b = Builder::new(&mut params, rng, device);
        let arch: Box<dyn Architecture> = crate::zoo::build(&config, &mut b)?;
        let sn = b.sn;
        let dropout_rng = Mutex::new(rng.fork(0xd409));
        let mut net = Self {
            config,
            params,
            sn,
            arch,
            normalised: HashMap::new(),
            frozen: false,
            training: false,
            dropout_rng,
            device: device.clone(),
        };
        net.normalise(false)?;
        Ok(net)
    }

    /// Every tensor `config` would build (name, shape, trainable), without allocating any: the check a config read
    /// from a file goes through before it is built.
    pub fn plan(config: &ModelConfig) -> Result<std::collections::BTreeMap<String, (Vec<usize>, bool)>> {
        let mut params = Params::planning();
        let mut rng = Rng::new(0);
        let mut b = Builder::new(&mut params, &mut rng, &Device::Cpu);
        crate::zoo::build(config, &mut b)?;
        Ok(params.planned().cloned().unwrap_or_default())
    }

    /// Scalars in every tensor `config` would build, or `None` if the count overflows (a config no machine can
    /// hold).
    pub fn planned_scalars(config: &ModelConfig) -> Result<Option<u64>> {
        let mut total: u64 = 0;
        for (shape, _) in Self::plan(config)?.values() {
            let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
            match n.and_then(|n| total.checked_add(n)) {
                Some(t) => total = t,
                None => return Ok(None),
            }
        }
        Ok(Some(total))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One power iteration for every normalised weight, updating the stored `u`, then recomputes the normalised
    /// weights: once per training iteration (not per Langevin step), as the official code does.
    pub fn refresh(&mut self) -> Result<()> {
        self.normalise(true)
    }

    /// Recomputes the normalised weights from the stored `u`; with `update_u` the new `u` is kept.
    pub fn normalise(&mut self, update_u: bool) -> Result<()> {
        self.normalised.clear();
        for s in &self.sn {
            let w = self.params.get(&s.weight)?.as_tensor().clone();
            let u = self.params.get(&s.u)?;
            let (wn, u_new) = spectral_normalize(&w, u.as_tensor(), s.kind)?;
            if update_u {
                u.set(&u_new)?;
            }
            self.normalised.insert(s.weight.clone(), wn);
        }
        Ok(())
    }

    /// Converts every parameter and state tensor to `dtype` (models are built and loaded in f32; f64 serves
    /// precise gradient checks). Inputs must then have this dtype; conditions are converted.
    pub fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        self.params.to_dtype(dtype)?;
        self.normalise(false)
    }

    /// The dtype of the parameters.
    pub fn dtype(&self) -> DType {
        self.params.iter().next().map(|(_, s)| s.var.dtype()).unwrap_or(DType::F32)
    }

    /// While frozen the forward pass treats every weight as a constant: Langevin needs only input gradients.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// Training mode enables train-time behaviour such as ResNet32Large's dropout.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// The tensor the forward pass uses for parameter `name`: the spectrally normalised weight (as of the last
    /// [`EnergyNet::refresh`]) where normalisation applies, the raw parameter otherwise.
    pub fn effective_weight(&self, name: &str) -> Result<Tensor> {
        self.weights().get(name)
    }

    /// The dropout generator's state, for exact resume.
    pub fn dropout_rng(&self) -> &Mutex<Rng> {
        &self.dropout_rng
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            normalised: &self.normalised,
            params: &self.params,
            frozen: self.frozen,
            dropout: self.training.then_some(&self.dropout_rng),
        }
    }

    /// Turns a condition into the `[B, cond_dim]` float matrix the networks use: integer labels `[B]` become
    /// one-hot rows.
    pub fn condition(&self, cond: Option<&Tensor>, batch: usize) -> Result<Option<Tensor>> {
        let dim = self.config.cond_dim();
        match (cond, dim) {
            (None, 0) => Ok(None),
            (Some(_), 0) => Ok(None), // an unconditional model ignores labels, as the official code does
            (None, d) => candle_core::bail!("this model is conditional ({d} classes/latents): pass a condition"),
            (Some(c), d) => {
                let labels = c.dtype().is_int() && c.rank() == 1;
                if labels && !self.config.is_class_conditional() {
                    candle_core::bail!(
                        "the {} model is conditioned on {d} continuous latents: pass a float [B, {d}] condition, not \
                         integer labels",
                        self.config.arch_name()
                    );
                }
                let c = if labels { ebm_sampler::one_hot(c, d)? } else { c.to_dtype(DType::F32)? };
                if c.dims() != [batch, d] {
                    candle_core::bail!("condition has shape {:?}, expected [{batch}, {d}]", c.dims());
                }
                Ok(Some(c))
            }
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let want = self.config.input_shape();
        if x.rank() != want.len() + 1 || x.dims()[1..] != want[..] {
            candle_core::bail!(
                "input has shape {:?}, the {} model expects [B, {want:?}]",
                x.dims(),
                self.config.arch_name()
            );
        }
        Ok(())
    }

    /// Writes weights, power-iteration state and config to one safetensors file, atomically.
    pub fn save(&self, path: &Path) -> std::result::Result<(), ModelError> {
        self.save_with(path, &[])
    }

    /// [`EnergyNet::save`] with extra metadata entries (e.g. the run config the model was trained with). A model
    /// holding a NaN or an infinity is refused: a saved model is always usable.
    pub fn save_with(&self, path: &Path, meta: &[(&str, String)]) -> std::result::Result<(), ModelError> {
        if let Some(name) = self.params.first_non_finite()? {
            return Err(ModelError::Checkpoint {
                path: path.display().to_string(),
                reason: format!("not written: parameter `{name}` holds non-finite values (NaN or infinity)"),
            });
        }
        let mut b = Bundle::new();
        for (k, v) in meta {
            b.set_meta(*k, v.clone());
        }
        for (name, slot) in self.params.iter() {
            b.insert(name, slot.var.as_tensor().clone());
        }
        b.set_meta(FORMAT_KEY, FORMAT);
        b.set_meta(CONFIG_KEY, serde_json::to_string(&self.config).expect("configs serialise"));
        b.save(path)?;
        Ok(())
    }

    /// Reads a model written by [`EnergyNet::save`]; every tensor must be present with the config's shape.
    ///
    /// The loaded model's normalised weights are computed from the stored `(W, u)` with one power iteration that
    /// does not advance `u` (`normalise(false)`), which is what TensorFlow computes when it restores a
    /// checkpoint. An in-memory model after [`EnergyNet::refresh`] holds the weights of the iteration that
    /// produced its `u`, so its energies equal the reloaded model's after `normalise(false)`; the next `refresh`
    /// of either continues identically (exact resume needs only the stored `u`).
    pub fn load(path: &Path, device: &Device) -> std::result::Result<Self, ModelError> {
        let bundle = Bundle::load(path, device)?;
        Self::from_bundle(&bundle, path)
    }

    /// Builds the model a bundle describes and fills it with the bundle's tensors.
    pub fn from_bundle(bundle: &Bundle, path: &Path) -> std::result::Result<Self, ModelError> {
        let err = |reason: String| ModelError::Checkpoint { path: path.display().to_string(), reason };
        match bundle.metadata.get(FORMAT_KEY) {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(err(format!("unsupported checkpoint format `{f}` (expected `{FORMAT}`)"))),
            None => return Err(err("not an ebm model checkpoint (no `ebm.format` metadata)".into())),
        }
        let cfg_json = bundle.meta(path, CONFIG_KEY)?;
        let config: ModelConfig =
            serde_json::from_str(cfg_json).map_err(|e| err(format!("model config does not parse: {e}")))?;
        // the tensors the config asks for must be the ones in the file before anything is built: a config edited to
        // `filters = 1000000` would otherwise allocate terabytes
        let plan = Self::plan(&config).map_err(|e| err(format!("model config: {e}")))?;
        let arch = config.arch_name();
        for (name, (shape, _)) in &plan {
            let t = bundle.tensors.get(name).ok_or_else(|| {
                err(format!("missing tensor `{name}` that the `{arch}` model of its config needs (config: {cfg_json})"))
            })?;
            check_stored(t, name, shape, arch).map_err(err)?;
        }
        if let Some(extra) = bundle.tensors.keys().find(|k| !plan.contains_key(*k)) {
            return Err(err(format!("unexpected tensor `{extra}` for a `{arch}` model")));
        }
        let device = bundle.tensors.values().next().map(|t| t.device().clone()).unwrap_or(Device::Cpu);
        let mut net = Self::new(config, &mut Rng::new(0), &device)?;
        net.load_tensors(bundle, path)?;
        Ok(net)
    }

    /// Reads the weights of a checkpoint written by [`EnergyNet::save`] into this model: the checkpoint must hold
    /// the same architecture, and every tensor must be present with this model's shape.
    pub fn load_weights(&mut self, path: &Path) -> std::result::Result<(), ModelError> {
        let err = |reason: String| ModelError::Checkpoint { path: path.display().to_string(), reason };
        let bundle = Bundle::load(path, &self.device)?;
        if let Some(cfg_json) = bundle.metadata.get(CONFIG_KEY) {
            let theirs: ModelConfig =
                serde_json::from_str(cfg_json).map_err(|e| err(format!("model config does not parse: {e}")))?;
            if theirs.arch_name() != self.config.arch_name() {
                return Err(err(format!(
                    "the checkpoint holds a `{}` model, cannot load it into a `{}` model",
                    theirs.arch_name(),
                    self.config.arch_name()
                )));
            }
        }
        self.load_tensors(&bundle, path)
    }

    /// Copies every parameter from `bundle` (names and shapes must match exactly; extra tensors are an error).
    pub fn load_tensors(&mut self, bundle: &Bundle, path: &Path) -> std::result::Result<(), ModelError> {
        self.load_tensors_prefixed(bundle, "", path)
    }

    /// Copies every parameter `name` from the bundle's tensor `<prefix><name>` (e.g. `param/` in the PyTorch
    /// reference fixtures). Every parameter must be present with its shape; a tensor under `prefix` that the
    /// model does not have is an error. `path` only names the source in errors.
    pub fn load_tensors_prefixed(
        &mut self,
        bundle: &Bundle,
        prefix: &str,
        path: &Path,
    ) -> std::result::Result<(), ModelError> {
        let err = |reason: String| ModelError::Checkpoint { path: path.display().to_string(), reason };
        let arch = self.config.arch_name();
        for (name, slot) in self.params.iter() {
            let key = format!("{prefix}{name}");
            let t = bundle
                .tensors
                .get(&key)
                .ok_or_else(|| err(format!("missing tensor `{key}` that a `{arch}` model needs")))?;
            check_stored(t, &key, slot.var.dims(), arch).map_err(err)?;
            let t = t.to_dtype(slot.var.dtype())?.to_device(&self.device)?;
            if !all_finite(&t)? {
                return Err(err(format!("tensor `{key}` holds non-finite values (NaN or infinity)")));
            }
            slot.var.set(&t)?;
        }
        let extra = bundle.tensors.keys().filter_map(|k| k.strip_prefix(prefix)).find(|k| !self.params.contains(k));
        if let Some(extra) = extra {
            return Err(err(format!("unexpected tensor `{prefix}{extra}` for a `{arch}` model")));
        }
        self.normalise(false)?;
        Ok(())
    }
}

/// Why the stored tensor `t` (named `key`) cannot be the `arch` model's parameter of shape `want`: a wrong shape or
/// a dtype that is not a float.
fn check_stored(t: &Tensor, key: &str, want: &[usize], arch: &str) -> std::result::Result<(), String> {
    if t.dims() != want {
        return Err(format!("tensor `{key}` has shape {:?}, the `{arch}` model needs {want:?}", t.dims()));
    }
    if !matches!(t.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Err(format!("tensor `{key}` holds {:?} values, a model stores floats", t.dtype()));
    }
    Ok(())
}

/// Whether every value of `t` is finite (`0 t` is 0 exactly where `t` is finite, NaN elsewhere).
pub fn all_finite(t: &Tensor) -> Result<bool> {
    let z = (t * 0.0)?.abs()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(z == 0.0)
}

impl Energy for EnergyNet {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.check_input(x)?;
        let c = self.condition(cond, x.dims()[0])?;
        let c = match c {
            Some(c) if c.dtype() != x.dtype() => Some(c.to_dtype(x.dtype())?),
            c => c,
        };
        self.arch.forward(&self.weights(), x, c.as_ref())
    }

    fn energy_and_grad(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        if self.frozen {
            self.check_input(x)?;
            let c = self.condition(cond, x.dims()[0])?;
            if let Some(r) = self.arch.energy_and_input_grad(&self.weights(), x, c.as_ref()) {
                return r;
            }
        }
        ebm_sampler::autograd_energy_and_grad(self, x, cond)
    }

    fn class_energies_at_once(&self, x: &Tensor, classes: usize) -> Option<Result<Tensor>> {
        if let Err(e) = self.check_input(x) {
            return Some(Err(e));
        }
        let e = self.arch.class_energies(&self.weights(), x)?;
        Some(e.and_then(|e| {
            if e.dims() != [x.dims()[0], classes] {
                candle_core::bail!("the model scores {:?} classes, {classes} were asked for", e.dims().get(1));
            }
            Ok(e)
        }))
    }
}
