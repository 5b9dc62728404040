//! Zoo models from the authors' TensorFlow checkpoints (the `cachedir.tar.gz` release, reference 6).
//!
//! The official variables and ours share their names once the model scope (`context_0/`) is removed: we named
//! ours after them. What differs is layout and selection:
//!
//! - conv kernels are HWIO `[k, k, cin, cout]` in TensorFlow, OIHW `[cout, cin, k, k]` here;
//! - dense kernels are `[in, out]` there, `[out, in]` here, and a dense layer that follows a flatten (MnistNet's and
//!   DspritesNet's `fc_dense`) sees its inputs in (h, w, c) order there and (c, h, w) order here, so its columns
//!   are reordered;
//! - the official code creates variables it never uses (conv biases, gains of convs that do not apply them, the
//!   attention scope and the block it would replace, ResNet32's `fc_dense`); they are checked and left out;
//! - the power-iteration vectors `*_u` are kept as they are: loading runs one iteration from them without advancing
//!   them, which is TensorFlow's forward pass of a restored checkpoint (the permutations above do not change a
//!   weight's singular values or its left singular vector);
//! - Adam's slots (`<var>/Adam`, `<var>/Adam_1`, `beta1_power`, `beta2_power`) are dropped unless asked for.
//!
//! A checkpoint that does not hold exactly the variables of the requested model is refused with the variable's
//! name: the official `optimistic_restore` silently skips mismatched variables and leaves random weights.

use crate::config::{
    Activation, DspritesNetConfig, ModelConfig, ResNet128Config, ResNet32Config, ResNet32LargeConfig,
    ResNet32WiderConfig,
};
use crate::convnet::ConvNetPlan;
use crate::net::{EnergyNet, ModelError, CONFIG_KEY, FORMAT, FORMAT_KEY};
use candle_core::{Device, Tensor};
use ebm_io::tf_bundle::{TfBundle, TfDType};
use ebm_io::Bundle;
use std::collections::BTreeSet;

/// One released experiment: the name of its folder in `cachedir/` and the zoo model it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: &'static str,
    /// The checkpoint iteration the README and scripts load (`model_<iteration>`).
    pub iteration: u64,
    pub config: ModelConfig,
    /// The flags of the official run, and what is uncertain about them.
    pub notes: &'static str,
}

/// The released experiments (reference 6; iterations from the README and the scripts' defaults). The dSprites
/// entries follow `ebm_combine.py` (`--swish_act`, 64 filters); only the CIFAR-10 names are confirmed by users to be
/// in the tarball.
pub fn experiments() -> Vec<Experiment> {
    let dsprites = |cond_dim| {
        ModelConfig::DspritesNet(DspritesNetConfig { cond_dim, activation: Activation::Swish, ..Default::default() })
    };
    vec![
        Experiment {
            name: "cifar10_cond",
            iteration: 74700,
            config: ModelConfig::ResNet32(ResNet32Config { filters: 128, classes: 10, ..Default::default() }),
            notes: "ResNet32(128), 10 classes (`--cclass`)",
        },
        Experiment {
            name: "cifar10_large_model_uncond",
            iteration: 121200,
            config: ModelConfig::ResNet32Large(ResNet32LargeConfig {
                filters: 128,
                dropout: false,
                ..Default::default()
            }),
            notes: "ResNet32Large(128), unconditional (`--large_model`); dropout off as in the evaluation scripts",
        },
        Experiment {
            name: "cifar10_wider_model_cond",
            iteration: 21600,
            config: ModelConfig::ResNet32Wider(ResNet32WiderConfig { filters: 192, classes: 10, ..Default::default() }),
            notes: "ResNet32Wider, 10 classes (`--wider_model`); train.py uses 192 filters, ebm_sandbox.py 256: \
                    pass --filters 256 if the checkpoint says so",
        },
        Experiment {
            name: "imagenet128_cond",
            iteration: 2238000,
            config: ModelConfig::ResNet128(ResNet128Config {
                filters: 64,
                classes: 1000,
                activation: Activation::Swish,
                ..Default::default()
            }),
            notes: "ResNet128(64), 1000 classes, `--swish_act`",
        },
        Experiment {
            name: "dsprites_2018_cond_size",
            iteration: 169000,
            config: dsprites(1),
            notes: "DspritesNet(64) on size (1 latent)",
        },
        Experiment {
            name: "dsprites_2018_cond_shape",
            iteration: 477000,
            config: dsprites(3),
            notes: "DspritesNet(64) on shape (3, one-hot)",
        },
        Experiment {
            name: "dsprites_2018_cond_pos_cert",
            iteration: 8000,
            config: dsprites(2),
            notes: "DspritesNet(64) on position (2 latents)",
        },
        Experiment {
            name: "dsprites_cond_rot_119_00",
            iteration: 690000,
            config: dsprites(2),
            notes: "DspritesNet(64) on rotation (cos, sin)",
        },
    ]
}

/// The experiment called `name`, or an error listing the known ones.
pub fn experiment(name: &str) -> Result<Experiment, String> {
    experiments().into_iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<_> = experiments().iter().map(|e| e.name).collect();
        format!("unknown experiment `{name}` (known: {}; or give --arch with --filters/--classes)", known.join(", "))
    })
}

/// What a conversion produced, and what it left out.
#[derive(Debug)]
pub struct Converted {
    /// The model, as a bundle [`EnergyNet::from_bundle`] reads (and `EnergyNet::save` would write).
    pub model: Bundle,
    /// With `with_optimizer`: Adam's moments under `adam/m/<name>` and `adam/v/<name>` in our layout, and
    /// `adam/beta1_power`, `adam/beta2_power`.
    pub optimizer: Option<Bundle>,
    /// The model scope the variables were read from (`context_0`).
    pub scope: String,
    /// Official variables the model does not use (checked, not converted).
    pub unused: Vec<String>,
    /// Number of optimizer variables dropped (0 with `with_optimizer`).
    pub dropped_slots: usize,
}

fn is_slot(name: &str) -> bool {
    name.ends_with("/Adam") || name.ends_with("/Adam_1") || name == "beta1_power" || name == "beta2_power"
}

/// The scopes that official models create without using them here (beside unused members of used scopes).
fn unused_scope_allowed(scope: &str) -> bool {
    scope == "atten" || scope == "fc_dense" || scope.starts_with("res_")
}

/// Converts the checkpoint `ckpt` to the zoo model `config`. `scope` picks the model scope when the checkpoint holds
/// several (`context_0`, `context_1`, ... in `ebm_combine.py`'s files); by default there must be exactly one.
pub fn convert_tf(
    ckpt: &TfBundle,
    config: &ModelConfig,
    scope: Option<&str>,
    with_optimizer: bool,
) -> Result<Converted, ModelError> {
    let origin = ckpt.prefix().display().to_string();
    let err = |reason: String| ModelError::Checkpoint { path: origin.clone(), reason };
    let vars = ckpt.variables();

    // the model scope
    let mut scopes = BTreeSet::new();
    for name in vars.keys().filter(|n| !is_slot(n)) {
        match name.split_once('/') {
            Some((s, _)) => {
                scopes.insert(s.to_string());
            }
            None => return Err(err(format!("unexpected variable `{name}` outside a model scope"))),
        }
    }
    let scope = match scope {
        Some(s) if scopes.contains(s) => s.to_string(),
        Some(s) => {
            return Err(err(format!("no model scope `{s}` (the checkpoint has {})", join(scopes.iter()))));
        }
        None if scopes.len() == 1 => scopes.into_iter().next().unwrap(),
        None if scopes.is_empty() => return Err(err("the checkpoint holds no model variables".into())),
        None => {
            return Err(err(format!(
                "the checkpoint holds several models ({}); pick one with --scope",
                join(scopes.iter())
            )))
        }
    };
    let prefix = format!("{scope}/");

    let plan = EnergyNet::plan(config).map_err(|e| err(format!("model config: {e}")))?;
    let arch = describe(config);
    let flatten = flatten_channels(config);
    let mut model = Bundle::new();
    let mut optimizer = with_optimizer.then(Bundle::new);
    let mut used_scopes = BTreeSet::new();
    for (name, (shape, trainable)) in &plan {
        let tf_name = format!("{prefix}{name}");
        let v = vars.get(&tf_name).ok_or_else(|| {
            err(format!("missing variable `{tf_name}` that a {arch} needs; is this the right experiment or --arch?"))
        })?;
        let t = convert_one(ckpt, &tf_name, &v.shape, v.dtype, name, shape, flatten, &arch).map_err(&err)?;
        model.insert(name.clone(), t);
        if let (Some(opt), true) = (optimizer.as_mut(), *trainable) {
            for (slot, key) in [("Adam", "m"), ("Adam_1", "v")] {
                let slot_name = format!("{tf_name}/{slot}");
                let s = vars.get(&slot_name).ok_or_else(|| err(format!("missing optimizer slot `{slot_name}`")))?;
                let t = convert_one(ckpt, &slot_name, &s.shape, s.dtype, name, shape, flatten, &arch).map_err(&err)?;
                opt.insert(format!("adam/{key}/{name}"), t);
            }
        }
        if let Some((s, _)) = name.rsplit_once('/') {
            used_scopes.insert(s.to_string());
        }
    }
    if let Some(opt) = optimizer.as_mut() {
        for p in ["beta1_power", "beta2_power"] {
            let v = vars.get(p).ok_or_else(|| err(format!("missing optimizer variable `{p}`")))?;
            let values = ckpt.read_f32(p).map_err(|e| err(e.to_string()))?;
            opt.insert(format!("adam/{p}"), Tensor::from_vec(values, v.shape.clone(), &Device::Cpu)?);
        }
    }

    // every other variable of the scope must be one the official code creates without using
    let mut unused = Vec::new();
    let (mut trainable, mut sn_state) = (0usize, 0usize);
    for (name, v) in vars.iter().filter(|(n, _)| !is_slot(n)) {
        let Some(local) = name.strip_prefix(&prefix) else { continue };
        if local.ends_with("_u") {
            sn_state += v.numel();
        } else {
            trainable += v.numel();
        }
        if plan.contains_key(local) {
            continue;
        }
        let owner = local.rsplit_once('/').map(|(s, _)| s).unwrap_or("");
        if !(used_scopes.contains(owner) || unused_scope_allowed(owner)) {
            return Err(err(format!("unexpected variable `{name}` for a {arch}")));
        }
        unused.push(name.clone());
    }
    let want = crate::official_counts(config);
    if (trainable, sn_state) != (want.trainable, want.sn_state) {
        return Err(err(format!(
            "the scope `{scope}` holds {trainable} trainable scalars and {sn_state} power-iteration scalars; the \
             official {arch} creates {} and {}: a different model (check --filters, --classes, --arch, attention)",
            want.trainable, want.sn_state
        )));
    }
    let dropped_slots = if with_optimizer { 0 } else { vars.keys().filter(|n| is_slot(n)).count() };
    model.set_meta(FORMAT_KEY, FORMAT);
    model.set_meta(CONFIG_KEY, serde_json::to_string(config).expect("configs serialise"));
    Ok(Converted { model, optimizer, scope, unused, dropped_slots })
}

fn join<'a>(it: impl Iterator<Item = &'a String>) -> String {
    it.map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

/// `resnet32 model (filters 128, 10 classes)`: how errors name the requested model.
fn describe(config: &ModelConfig) -> String {
    let json = serde_json::to_value(config).expect("configs serialise");
    let get = |k: &str| json.get(k).and_then(|v| v.as_u64());
    let mut parts = Vec::new();
    if let Some(f) = get("filters") {
        parts.push(format!("filters {f}"));
    }
    if let Some(c) = get("classes").or(get("cond_dim")) {
        parts.push(format!("condition of {c}"));
    }
    format!("`{}` model ({})", config.arch_name(), parts.join(", "))
}

/// For networks whose `fc_dense` follows a flatten: the channels of the flattened feature map.
fn flatten_channels(config: &ModelConfig) -> Option<usize> {
    let plan = ConvNetPlan::from_config(config)?;
    if plan.global_pool {
        return None;
    }
    plan.convs.last().map(|c| c.cout)
}

/// One variable in our layout: read (checksum checked), permuted, shape-checked against the plan.
#[allow(clippy::too_many_arguments)]
fn convert_one(
    ckpt: &TfBundle,
    tf_name: &str,
    tf_shape: &[usize],
    dtype: TfDType,
    name: &str,
    want: &[usize],
    flatten: Option<usize>,
    arch: &str,
) -> Result<Tensor, String> {
    if !matches!(dtype, TfDType::F32 | TfDType::F64) {
        return Err(format!("variable `{tf_name}` holds {dtype:?}, not floats"));
    }
    // the TF shape this variable must have, from ours
    let expected_tf: Vec<usize> = match (want.len(), name.ends_with("wweight")) {
        (4, _) => vec![want[2], want[3], want[1], want[0]],
        (2, true) => vec![want[1], want[0]],
        _ => want.to_vec(),
    };
    if tf_shape != expected_tf {
        return Err(format!(
            "variable `{tf_name}` has shape {tf_shape:?}; a {arch} needs {expected_tf:?} (TensorFlow layout)"
        ));
    }
    let values = ckpt.read_f32(tf_name).map_err(|e| e.to_string())?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("variable `{tf_name}` holds a non-finite value ({}) at element {i}", values[i]));
    }
    let t = Tensor::from_vec(values, tf_shape.to_vec(), &Device::Cpu).map_err(|e| e.to_string())?;
    let t = match (want.len(), name.ends_with("wweight")) {
        (4, _) => t.permute((3, 2, 0, 1)),
        (2, true) if name == "fc_dense/wweight" && flatten.is_some() => {
            // rows (h, w, c) -> columns (c, h, w)
            let c = flatten.unwrap();
            let (inp, out) = (tf_shape[0], tf_shape[1]);
            let hw = inp / c;
            t.reshape((hw, c, out)).and_then(|t| t.permute((2, 1, 0))).and_then(|t| t.reshape((out, inp)))
        }
        (2, true) => t.t(),
        _ => Ok(t),
    };
    t.and_then(|t| t.contiguous()).map_err(|e| e.to_string())
}

/// Reads the released experiment's checkpoint and builds the model (the converted bundle checked by the loader).
pub fn load_tf(
    ckpt: &TfBundle,
    config: &ModelConfig,
    scope: Option<&str>,
) -> Result<(EnergyNet, Converted), ModelError> {
    let converted = convert_tf(ckpt, config, scope, false)?;
    let net = EnergyNet::from_bundle(&converted.model, ckpt.prefix())?;
    Ok((net, converted))
}

/// Converts a PyTorch state dict (already read, e.g. by `candle_core::pickle`) of a port of the official networks
/// to the zoo model `config`. `origin` names the file in errors.
///
/// Supported are ports that keep the official variable names, as keys written either way: `c1_pre/cweight` (the
/// TensorFlow name) or `c1_pre.cweight` (a module path), optionally under one common prefix (`module.` of
/// `DataParallel`, `model.`, `context_0/`), with PyTorch layouts: conv kernels `[cout, cin, k, k]`, dense
/// `[out, in]` and a flatten in NCHW order, which are ours, so nothing is permuted. A power-iteration vector may be
/// stored as `[n]` (as `torch.nn.utils.spectral_norm` keeps `weight_u`) or `[1, n]`. Variables the official code
/// creates without using may be present or absent; any other key is refused with its name, and so is a tensor in
/// TensorFlow layout.
pub fn convert_torch(
    tensors: Vec<(String, Tensor)>,
    config: &ModelConfig,
    origin: &str,
) -> Result<Converted, ModelError> {
    let err = |reason: String| ModelError::Checkpoint { path: origin.to_string(), reason };
    let plan = EnergyNet::plan(config).map_err(|e| err(format!("model config: {e}")))?;
    let arch = describe(config);
    if tensors.is_empty() {
        return Err(err("the state dict holds no tensors".into()));
    }
    // the common prefix: what precedes the stem conv's kernel, in either spelling
    let anchor = plan.keys().next().expect("every model has parameters").clone();
    let dotted = |s: &str| s.replace('/', ".");
    let prefix = tensors
        .iter()
        .find_map(|(k, _)| {
            let p = k.strip_suffix(anchor.as_str()).or_else(|| k.strip_suffix(dotted(&anchor).as_str()))?;
            (p.is_empty() || p.ends_with(['.', '/'])).then(|| p.to_string())
        })
        .ok_or_else(|| {
            err(format!(
                "no tensor named `{anchor}` or `{}` (with any prefix): not a port of the official {arch} that keeps \
                 the official names (keys here start with {})",
                dotted(&anchor),
                join(tensors.iter().take(3).map(|(k, _)| k))
            ))
        })?;
    let mut by_name = std::collections::BTreeMap::new();
    for (key, t) in tensors {
        let local = key.strip_prefix(&prefix).ok_or_else(|| {
            err(format!("tensor `{key}` is outside the model's prefix `{prefix}` (one model per state dict)"))
        })?;
        // official names hold no dots: a dotted key is a module path
        let name = local.replace('.', "/");
        if by_name.insert(name.clone(), (key.clone(), t)).is_some() {
            return Err(err(format!("tensor `{key}` appears twice (as `{name}` in both spellings)")));
        }
    }

    let mut model = Bundle::new();
    let mut used_scopes = BTreeSet::new();
    for (name, (shape, _)) in &plan {
        let (key, t) = by_name.remove(name).ok_or_else(|| {
            err(format!(
                "missing tensor `{prefix}{name}` (or `{prefix}{}`) that a {arch} needs; is this the right --arch?",
                dotted(name)
            ))
        })?;
        let t = torch_one(&key, t, name, shape, &arch).map_err(&err)?;
        model.insert(name.clone(), t);
        if let Some((s, _)) = name.rsplit_once('/') {
            used_scopes.insert(s.to_string());
        }
    }
    let mut unused = Vec::new();
    for (name, (key, _)) in by_name {
        let owner = name.rsplit_once('/').map(|(s, _)| s).unwrap_or("");
        if !(used_scopes.contains(owner) || unused_scope_allowed(owner)) {
            return Err(err(format!("unexpected tensor `{key}` for a {arch}")));
        }
        unused.push(key);
    }
    model.set_meta(FORMAT_KEY, FORMAT);
    model.set_meta(CONFIG_KEY, serde_json::to_string(config).expect("configs serialise"));
    let scope = prefix.trim_end_matches(['.', '/']).to_string();
    Ok(Converted { model, optimizer: None, scope, unused, dropped_slots: 0 })
}

/// One state-dict tensor in our layout: float, finite, of the planned shape (a `[n]` power-iteration vector
/// becomes `[1, n]`).
fn torch_one(key: &str, t: Tensor, name: &str, want: &[usize], arch: &str) -> Result<Tensor, String> {
    let shape = t.dims().to_vec();
    if !t.dtype().is_float() {
        return Err(format!("tensor `{key}` holds {:?}, not floats", t.dtype()));
    }
    let t = if name.ends_with("_u") && shape.len() == 1 && want.len() == 2 && want[0] == 1 && shape[0] == want[1] {
        t.reshape(want).map_err(|e| e.to_string())?
    } else if shape != want {
        let tf: Vec<usize> = match want.len() {
            4 => vec![want[2], want[3], want[1], want[0]],
            2 if name.ends_with("wweight") => vec![want[1], want[0]],
            _ => want.to_vec(),
        };
        let hint = if shape == tf && tf != want {
            " (that is TensorFlow's layout: convert the TensorFlow checkpoint itself, or transpose before saving)"
        } else {
            ""
        };
        return Err(format!("tensor `{key}` has shape {shape:?}; a {arch} needs {want:?}{hint}"));
    } else {
        t
    };
    let t = t.to_dtype(candle_core::DType::F32).and_then(|t| t.contiguous()).map_err(|e| e.to_string())?;
    let values = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(|e| e.to_string())?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("tensor `{key}` holds a non-finite value ({}) at element {i}", values[i]));
    }
    Ok(t)
}
