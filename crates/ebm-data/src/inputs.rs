//! Inputs a user hands a trained model: images (and labels, when the file has them) from a safetensors file
//! (tensors `images`/`samples`/`x`, labels `labels`/`y`) or an IDX image file, checked against the shape the model
//! takes. Models see pixels in [0, 1]: float tensors are taken as they are, 8-bit ones (`U8`, like the IDX files)
//! are scaled by 1/255; a NaN or an infinity is refused.

use crate::error::{DataError, Result};
use candle_core::{DType, Device, Tensor};
use ebm_io::Bundle;
use std::path::Path;

/// Images `[N, ...want]` in [0, 1] and labels from `path`; `model` names the model in the shape error.
pub fn read_inputs(path: &Path, want: &[usize], model: &str, device: &Device) -> Result<(Tensor, Option<Vec<u32>>)> {
    let name = path.display().to_string();
    let bad = |detail: String| DataError::Malformed { file: name.clone(), detail };
    let candle = |e: candle_core::Error| bad(e.to_string());
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let (x, labels) = if is_safetensors {
        let b = Bundle::load(path, device)
            .map_err(|e| DataError::Invalid { source_name: name.clone(), detail: e.to_string() })?;
        let pick = |keys: &[&str]| keys.iter().find_map(|k| b.tensors.get(*k).cloned());
        let x = match pick(&["images", "samples", "x"]) {
            Some(x) => x,
            None if b.tensors.len() == 1 => b.tensors.values().next().expect("one tensor").clone(),
            None => {
                return Err(bad(format!(
                    "no tensor named `images`, `samples` or `x` (it holds {:?})",
                    b.tensors.keys().collect::<Vec<_>>()
                )))
            }
        };
        let labels = match pick(&["labels", "y"]) {
            Some(l) => Some(
                l.to_dtype(DType::I64)
                    .and_then(|l| l.to_vec1::<i64>())
                    .map_err(candle)?
                    .into_iter()
                    .map(|v| v as u32)
                    .collect(),
            ),
            None => None,
        };
        let x = match x.dtype() {
            // as the IDX files: p / 255 for each pixel
            DType::U8 => {
                let v: Vec<f32> = x
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<u8>())
                    .map_err(candle)?
                    .iter()
                    .map(|&p| p as f32 / 255.0)
                    .collect();
                Tensor::from_vec(v, x.shape(), device).map_err(candle)?
            }
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => x.to_dtype(DType::F32).map_err(candle)?,
            other => return Err(bad(format!("images of {other:?} values; give floats in [0, 1] or 8-bit pixels"))),
        };
        let finite = (&x * 0.0).and_then(|z| z.abs()?.sum_all()?.to_scalar::<f32>()).map_err(candle)? == 0.0;
        if !finite {
            return Err(bad("the images hold non-finite values (NaN or infinity)".into()));
        }
        (x, labels)
    } else {
        let imgs = crate::idx::read_images(path)?;
        let v: Vec<f32> = imgs.pixels.iter().map(|p| *p as f32 / 255.0).collect();
        (Tensor::from_vec(v, (imgs.count, 1, imgs.rows, imgs.cols), device).map_err(candle)?, None)
    };
    if !(x.rank() == want.len() + 1 && x.dims()[1..] == want[..]) {
        return Err(DataError::Invalid {
            source_name: name.clone(),
            detail: format!(
                "inputs of shape {:?}, but the `{model}` model takes [N, {}]",
                x.dims(),
                want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok((x, labels))
}

/// Labels from an IDX label file.
pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    Ok(crate::idx::read_labels(path)?.into_iter().map(u32::from).collect())
}
