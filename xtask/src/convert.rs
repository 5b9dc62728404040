//! `cargo xtask convert-checkpoint`: the authors' TensorFlow checkpoints to zoo model files (or hub-ready folders).

use anyhow::{bail, Context, Result};
use clap::Args;
use ebm_io::tf_bundle::TfBundle;
use ebm_models::convert::{convert_tf, convert_torch, experiment, experiments};
use ebm_models::hub::{write_hub_folder, ModelCard};
use ebm_models::{EnergyNet, ModelConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint: a TensorFlow prefix, e.g. cachedir/cifar10_cond/model_74700 (the `.index`/`.data-*` files
    /// beside it), or a PyTorch state dict (`.pt`, `.pth`, `.bin`) of a port that keeps the official names.
    #[arg(long, required_unless_present = "list")]
    from: Option<PathBuf>,
    /// For a PyTorch file: the key of the state dict inside the saved dict (default: the top level, else
    /// `state_dict`, `model_state_dict` or `model`).
    #[arg(long)]
    key: Option<String>,
    /// A released experiment (see --list): picks the architecture and its settings.
    #[arg(long, conflicts_with = "arch")]
    experiment: Option<String>,
    /// A zoo architecture (resnet32, resnet32_large, resnet32_larger, resnet32_wider, resnet128, mnist_net,
    /// dsprites_net) for checkpoints of other runs.
    #[arg(long)]
    arch: Option<String>,
    /// Filters (`--num_filters` of the official run).
    #[arg(long)]
    filters: Option<usize>,
    /// Classes (or, for dsprites_net, latent dimensions); 0 = unconditional.
    #[arg(long)]
    classes: Option<usize>,
    /// Swish activations (`--swish_act` of the official run).
    #[arg(long)]
    swish: bool,
    /// The self-attention block was on (`--use_attention`).
    #[arg(long)]
    attention: bool,
    /// The model scope, when the checkpoint holds several (`context_0`, `context_1`, ...).
    #[arg(long)]
    scope: Option<String>,
    /// Output model file (`.safetensors`); with --hub, a new folder to write as a hub repository.
    #[arg(long, required_unless_present = "list")]
    out: Option<PathBuf>,
    /// Write --out as a hub-ready folder: model.safetensors, config.json and a README model card.
    #[arg(long)]
    hub: bool,
    /// Also convert Adam's moments, into `<out>.optimizer.safetensors` (`adam/m/*`, `adam/v/*`, beta powers).
    #[arg(long)]
    with_optimizer: bool,
    /// Print the released experiments this converter knows, and exit.
    #[arg(long)]
    list: bool,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.list {
        println!("{:<30} {:>9}  {:<16} notes", "experiment", "iteration", "architecture");
        for e in experiments() {
            println!("{:<30} {:>9}  {:<16} {}", e.name, e.iteration, e.config.arch_name(), e.notes);
        }
        return Ok(());
    }
    let (from, out) = (a.from.clone().unwrap(), a.out.clone().unwrap());
    let config = model_config(&a)?;
    if !a.hub && out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("--out {}: a model file ends in .safetensors (or pass --hub to write a folder)", out.display());
    }
    let torch = is_torch_file(&from);
    if torch && a.with_optimizer {
        bail!("--with-optimizer: a PyTorch optimizer state is keyed by parameter position, not name; only TensorFlow checkpoints carry their Adam slots over");
    }
    if torch && a.scope.is_some() {
        bail!("--scope picks a model in a TensorFlow checkpoint; a PyTorch state dict holds one (its prefix is found)");
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let (conv, source) = if torch {
        let tensors = read_torch(&from, a.key.as_deref())?;
        eprintln!("{}: {} tensors; converting to a `{}` model", from.display(), tensors.len(), config.arch_name());
        let conv = convert_torch(tensors, &config, &from.display().to_string())?;
        let source = format!(
            "PyTorch state dict `{}` of a port of the official IGEBM networks (Du & Mordatch 2019){}",
            file_name(&from),
            if conv.scope.is_empty() { String::new() } else { format!(", prefix `{}`", conv.scope) }
        );
        (conv, source)
    } else {
        let ckpt = TfBundle::open(&from)?;
        eprintln!(
            "{}: {} variables; converting to a `{}` model",
            ckpt.prefix().display(),
            ckpt.variables().len(),
            config.arch_name()
        );
        ckpt.verify()?; // every checksum, the variables left out included
        let conv = convert_tf(&ckpt, &config, a.scope.as_deref(), a.with_optimizer)?;
        let source = format!(
            "TensorFlow checkpoint `{}`{} of the official IGEBM code (Du & Mordatch 2019, openai/ebm_code_release), \
             scope `{}`",
            file_name(ckpt.prefix()),
            a.experiment.as_ref().map(|e| format!(" (experiment `{e}`)")).unwrap_or_default(),
            conv.scope
        );
        (conv, source)
    };
    let net = EnergyNet::from_bundle(&conv.model, &from)?;
    let meta = [("ebm.source", source.clone())];
    eprintln!(
        "  {} tensors kept, {} official-but-unused variables checked and left out, {} optimizer variables {}",
        conv.model.tensors.len(),
        conv.unused.len(),
        if a.with_optimizer { conv.optimizer.as_ref().map_or(0, |o| o.tensors.len()) } else { conv.dropped_slots },
        if a.with_optimizer { "converted" } else { "dropped" }
    );
    if a.hub {
        // the model file is written into a temporary place first, then the folder is assembled all at once
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile_in(parent)?;
        let model_file = tmp.path().join("model.safetensors");
        net.save_with(&model_file, &meta)?;
        let card = ModelCard {
            title: match &a.experiment {
                Some(e) => format!("IGEBM `{e}` ({}), converted", config.arch_name()),
                None => format!("IGEBM {} model, converted", config.arch_name()),
            },
            source,
            license: "The authors' release (openai/ebm_code_release and its `cachedir.tar.gz`) carries no license \
                      file. These weights are a format conversion of that release; ask the authors before \
                      redistributing them."
                .into(),
            command: command_line(),
        };
        let config_json = serde_json::to_string(&config)?;
        write_hub_folder(&out, &model_file, &config_json, &card)?;
        if let Some(opt) = &conv.optimizer {
            opt.save(&out.join("optimizer.safetensors"))?;
        }
    } else {
        net.save_with(&out, &meta)?;
        if let Some(opt) = &conv.optimizer {
            opt.save(&optimizer_path(&out))?;
        }
    }
    println!("{}", out.display());
    Ok(())
}

fn file_name(p: &Path) -> String {
    let parent = p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned());
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match parent {
        Some(d) => format!("{d}/{name}"),
        None => name,
    }
}

fn optimizer_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.optimizer.safetensors"))
}

fn tempfile_in(dir: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".convert.")
        .tempdir_in(dir)
        .with_context(|| format!("a temporary folder in {}", dir.display()))
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}

/// The model to convert to: the experiment's (with --filters/--classes/--swish/--attention overriding it), or
/// --arch with those settings.
fn model_config(a: &ConvertArgs) -> Result<ModelConfig> {
    let mut json = match (&a.experiment, &a.arch) {
        (Some(e), _) => serde_json::to_value(experiment(e).map_err(anyhow::Error::msg)?.config)?,
        (None, Some(arch)) => serde_json::json!({ "arch": arch }),
        (None, None) => bail!("give --experiment NAME (see --list) or --arch ARCH"),
    };
    let obj = json.as_object_mut().expect("configs are objects");
    let arch = obj["arch"].as_str().unwrap_or_default().to_string();
    if let Some(f) = a.filters {
        obj.insert("filters".into(), f.into());
    }
    if let Some(c) = a.classes {
        obj.insert(if arch == "dsprites_net" { "cond_dim" } else { "classes" }.into(), c.into());
    }
    if a.swish {
        obj.insert("activation".into(), "swish".into());
    }
    if a.attention {
        obj.insert("attention".into(), true.into());
    }
    if matches!(arch.as_str(), "resnet32_large" | "resnet32_wider" | "resnet128") {
        // converted models are for sampling and evaluation: the official eval scripts build them without dropout
        obj.entry("dropout").or_insert(false.into());
    }
    let config: ModelConfig = serde_json::from_value(json.clone())
        .with_context(|| format!("--arch/--filters/--classes/--swish/--attention give no valid model ({json})"))?;
    if matches!(config, ModelConfig::Mlp(_) | ModelConfig::DigitsNet(_) | ModelConfig::CondMnistNet(_)) {
        bail!("`{}` is one of this project's own networks; the official code has no checkpoints of it", arch);
    }
    Ok(config)
}

/// A PyTorch file, by its extension (TensorFlow checkpoints are named by a prefix without one of these).
fn is_torch_file(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("pt" | "pth" | "bin" | "ckpt"))
}

/// The tensors of a PyTorch state dict. The pickle is vetted first (size, memo copies) and then read by candle's
/// unpickler, which rebuilds tensors from their storages without running any code from the file.
fn read_torch(path: &Path, key: Option<&str>) -> Result<Vec<(String, candle_core::Tensor)>> {
    let shown = path.display();
    if !path.is_file() {
        bail!("{shown}: no such file");
    }
    ebm_data::pickle::vet_torch_file(path)?;
    let read = |k: Option<&str>| {
        candle_core::pickle::read_all_with_key(path, k)
            .with_context(|| format!("{shown}: not a PyTorch state dict that candle can read"))
    };
    if let Some(k) = key {
        let t = read(Some(k))?;
        if t.is_empty() {
            bail!("{shown}: no tensors under the key `{k}`");
        }
        return Ok(t);
    }
    let top = read(None)?;
    if !top.is_empty() {
        return Ok(top);
    }
    for k in ["state_dict", "model_state_dict", "model"] {
        if let Ok(t) = candle_core::pickle::read_all_with_key(path, Some(k)) {
            if !t.is_empty() {
                eprintln!("{shown}: the state dict under `{k}`");
                return Ok(t);
            }
        }
    }
    bail!("{shown}: no tensors at the top level or under `state_dict`, `model_state_dict`, `model`; pass --key")
}
