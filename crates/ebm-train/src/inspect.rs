//! `sample`, `score` and `classify`: using a trained model from the command line.

use crate::cli::open_model;
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::Energy;
use std::path::{Path, PathBuf};

/// Images (and labels, when the file has them) read from a safetensors file (tensors `images`/`samples`/`x`,
/// labels `labels`/`y`) or an IDX image file; checked against the model's input shape.
pub fn read_inputs(path: &Path, model: &EnergyNet, device: &Device) -> anyhow::Result<(Tensor, Option<Vec<u32>>)> {
    let want = model.config().input_shape();
    let name = path.display();
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let (x, labels) = if is_safetensors {
        let b = Bundle::load(path, device)?;
        let pick = |keys: &[&str]| keys.iter().find_map(|k| b.tensors.get(*k).cloned());
        let x = match pick(&["images", "samples", "x"]) {
            Some(x) => x,
            None if b.tensors.len() == 1 => b.tensors.values().next().expect("one tensor").clone(),
            None => anyhow::bail!(
                "{name}: no tensor named `images`, `samples` or `x` (it holds {:?})",
                b.tensors.keys().collect::<Vec<_>>()
            ),
        };
        let labels = match pick(&["labels", "y"]) {
            Some(l) => Some(l.to_dtype(DType::I64)?.to_vec1::<i64>()?.into_iter().map(|v| v as u32).collect()),
            None => None,
        };
        (x.to_dtype(DType::F32)?, labels)
    } else {
        let imgs = ebm_data::idx::read_images(path)?;
        let v: Vec<f32> = imgs.pixels.iter().map(|p| *p as f32 / 255.0).collect();
        (Tensor::from_vec(v, (imgs.count, 1, imgs.rows, imgs.cols), device)?, None)
    };
    anyhow::ensure!(
        x.rank() == want.len() + 1 && x.dims()[1..] == want[..],
        "{name}: inputs of shape {:?}, but the `{}` model takes [N, {}]",
        x.dims(),
        model.config().arch_name(),
        want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok((x, labels))
}

/// Reads labels from an IDX label file.
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<u32>> {
    Ok(ebm_data::idx::read_labels(path)?.into_iter().map(u32::from).collect())
}

fn check_labels(labels: &[u32], classes: usize, origin: &str) -> anyhow::Result<()> {
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        anyhow::bail!("{origin}: label {l} at position {i} is outside 0..{classes}");
    }
    Ok(())
}

/// `ebm-train sample`: fresh chains from uniform noise, `per_class` per class (or `per_class` in all for an
/// unconditional model), written as safetensors and a PNG grid.
pub fn sample(
    model_path: &Path,
    per_class: usize,
    steps: usize,
    seed: u64,
    out: &Path,
    device: &Device,
) -> anyhow::Result<()> {
    let (mut model, cfg) = open_model(model_path, device)?;
    let shape = model.config().input_shape();
    anyhow::ensure!(shape.len() == 3, "{}: `sample` draws image models; use `train` for 2D runs", model_path.display());
    let classes = model.config().cond_dim();
    let (sampler, range) = crate::config::sampler_or_official(cfg.as_ref(), steps);
    let mut rng = Rng::with_stream(seed, 0x5a3);
    model.set_frozen(true);
    let (x, labels) = crate::image::fresh_per_class(&model, &sampler, range, classes, per_class, &mut rng, device)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut b = Bundle::new();
    b.insert("samples", x.clone());
    b.insert("labels", Tensor::from_slice(&labels, labels.len(), device)?);
    b.set_meta("steps", steps.to_string());
    b.set_meta("model", model_path.display().to_string());
    b.save(&out.join("samples.safetensors"))?;
    let cols = per_class.min(16);
    crate::figures::image_grid_png(&x, (classes > 0).then_some(&labels[..]), cols, &out.join("samples.png"))?;
    println!("wrote {} and {}", out.join("samples.safetensors").display(), out.join("samples.png").display());
    Ok(())
}

/// `ebm-train score`: the energy of every input (per class for a conditional model) as JSON.
pub fn score(model_path: &Path, input: &Path, out: Option<&PathBuf>, device: &Device) -> anyhow::Result<()> {
    let (model, _) = open_model(model_path, device)?;
    let (x, _) = read_inputs(input, &model, device)?;
    let classes = model.config().cond_dim();
    let energies: Vec<Vec<f32>> = if classes > 0 {
        ebm_eval::classify::class_energies(&model, &x, classes)?.to_vec2::<f32>()?
    } else {
        model.energy(&x, None)?.to_vec1::<f32>()?.into_iter().map(|e| vec![e]).collect()
    };
    let json = serde_json::json!({
        "model": model_path.display().to_string(),
        "input": input.display().to_string(),
        "per_class": classes > 0,
        "energies": energies,
    });
    match out {
        Some(p) => {
            ebm_io::write_atomic(p, serde_json::to_string_pretty(&json)?.as_bytes())?;
            println!("wrote {} energies to {}", energies.len(), p.display());
        }
        None => println!("{}", serde_json::to_string(&json)?),
    }
    Ok(())
}

/// `ebm-train classify`: `argmin_y E(x, y)` per input, with accuracy and the confusion matrix when labels are known.
pub fn classify(model_path: &Path, input: &Path, labels: Option<&PathBuf>, device: &Device) -> anyhow::Result<()> {
    let (model, _) = open_model(model_path, device)?;
    let classes = model.config().cond_dim();
    anyhow::ensure!(
        model.config().is_class_conditional(),
        "{}: `classify` needs a class-conditional model (this `{}` model is not)",
        model_path.display(),
        model.config().arch_name()
    );
    let (x, file_labels) = read_inputs(input, &model, device)?;
    let labels = match labels {
        Some(p) => Some(read_labels(p)?),
        None => file_labels,
    };
    let pred = ebm_eval::classify::predict(&model, &x, classes, 256)?;
    let mut json = serde_json::json!({ "predictions": pred });
    if let Some(l) = &labels {
        anyhow::ensure!(l.len() == pred.len(), "{} inputs but {} labels", pred.len(), l.len());
        check_labels(l, classes, &input.display().to_string())?;
        let acc = ebm_eval::classify::accuracy(&pred, l);
        json["accuracy"] = serde_json::json!(acc);
        json["confusion"] = serde_json::json!(ebm_eval::classify::confusion(&pred, l, classes));
        eprintln!("accuracy {:.2}% on {} inputs", 100.0 * acc, l.len());
    }
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}
