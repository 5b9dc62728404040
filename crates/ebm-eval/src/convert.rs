//! Bringing images of one shape to another, for scoring a dataset with a model trained at another size (Fashion-MNIST
//! 28x28 scored by an 8x8 digits model) and for feeding images to Inception-v3 (299x299 RGB).
//!
//! - Downsampling is area averaging (PyTorch's `interpolate(mode="area")`, i.e. adaptive average pooling): output
//!   pixel `i` averages input pixels `floor(i * in / out) .. ceil((i + 1) * in / out)`.
//! - Upsampling is bilinear with `align_corners=False` (PyTorch's default, what pytorch-fid uses to reach 299):
//!   source coordinate `(i + 0.5) * in / out - 0.5`, clamped below at 0.
//! - Grey to RGB repeats the channel; RGB to grey is ITU-R 601 luma (`0.299 R + 0.587 G + 0.114 B`, as PIL's
//!   `convert("L")`).
//! - [`quantize`] rounds to the grid of `levels` grey levels, so that converted images carry no finer values than the
//!   set they are compared with.
//!
//! Each resampling is a pair of matrices `R_h X R_w^T` applied as matmuls.

use candle_core::{DType, Device, Result, Tensor};
use std::path::Path;

/// The `[out, in]` matrix of a 1-D resampling (area when shrinking, bilinear when growing, identity when equal).
pub fn resample_matrix(inp: usize, out: usize) -> Vec<f32> {
    let mut m = vec![0f32; out * inp];
    if out == inp {
        for i in 0..out {
            m[i * inp + i] = 1.0;
        }
    } else if out < inp {
        for i in 0..out {
            let start = (i * inp) / out;
            let end = ((i + 1) * inp).div_ceil(out);
            let w = 1.0 / (end - start) as f32;
            for j in start..end {
                m[i * inp + j] = w;
            }
        }
    } else {
        bilinear_rows(inp, out, &mut m);
    }
    m
}

/// Bilinear weights with `align_corners=False`, as PyTorch computes them (in f32, scale `in / out`).
fn bilinear_rows(inp: usize, out: usize, m: &mut [f32]) {
    let scale = inp as f32 / out as f32;
    for i in 0..out {
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        m[i * inp + i0] += l0;
        m[i * inp + i1] += l1;
    }
}

/// Bilinear resize (`align_corners=False`) of `[B, C, H, W]` to `[B, C, oh, ow]`, for any ratio.
pub fn resize_bilinear(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut rh = vec![0f32; oh * h];
    let mut rw = vec![0f32; ow * w];
    bilinear_rows(h, oh, &mut rh);
    bilinear_rows(w, ow, &mut rw);
    apply(x, &rh, &rw, oh, ow)
}

fn apply(x: &Tensor, rh: &[f32], rw: &[f32], oh: usize, ow: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let dev = x.device();
    let dt = x.dtype();
    let rh = Tensor::from_slice(rh, (oh, h), dev)?.to_dtype(dt)?;
    let rw = Tensor::from_slice(rw, (ow, w), dev)?.to_dtype(dt)?;
    // [B*C*H, W] @ [W, ow] -> [B, C, H, ow]; then R_h @ each plane
    let t = x.reshape((b * c * h, w))?.matmul(&rw.t()?)?.reshape((b * c, h, ow))?;
    let t = rh.unsqueeze(0)?.broadcast_as((b * c, oh, h))?.contiguous()?.matmul(&t)?;
    t.reshape((b, c, oh, ow))
}

/// `[B, C, H, W]` resampled to `[B, C, oh, ow]` by [`resample_matrix`] along each axis.
pub fn resize(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if (h, w) == (oh, ow) {
        return Ok(x.clone());
    }
    apply(x, &resample_matrix(h, oh), &resample_matrix(w, ow), oh, ow)
}

/// `[B, C, H, W]` with `C` in {1, 3} converted to `channels` in {1, 3}.
pub fn to_channels(x: &Tensor, channels: usize) -> Result<Tensor> {
    let c = x.dims4()?.1;
    match (c, channels) {
        (a, b) if a == b => Ok(x.clone()),
        (1, 3) => x.repeat((1, 3, 1, 1)),
        (3, 1) => {
            let w = Tensor::new(&[0.299f32, 0.587, 0.114], x.device())?.to_dtype(x.dtype())?.reshape((1, 3, 1, 1))?;
            x.broadcast_mul(&w)?.sum_keepdim(1)
        }
        (a, b) => candle_core::bail!("cannot convert images of {a} channels to {b}"),
    }
}

/// Rounds values in [0, 1] to the nearest of `levels` evenly spaced grey levels (`k / (levels - 1)`).
pub fn quantize(x: &Tensor, levels: u16) -> Result<Tensor> {
    let l = (levels.max(2) - 1) as f64;
    ((x.clamp(0f32, 1f32)? * l)?.round()? / l)?.to_dtype(x.dtype())
}

/// `x` `[B, C, H, W]` brought to `shape = [C, H, W]`: channels converted, then resized.
pub fn fit_to(x: &Tensor, shape: [usize; 3]) -> Result<Tensor> {
    let x = to_channels(&x.to_dtype(DType::F32)?, shape[0])?;
    resize(&x, shape[1], shape[2])
}

/// A CPU tensor of images from an `[N, C, H, W]` slice.
pub fn images_tensor(v: Vec<f32>, shape: [usize; 4]) -> Result<Tensor> {
    Tensor::from_vec(v, (shape[0], shape[1], shape[2], shape[3]), &Device::Cpu)
}

/// Reads one PNG or JPEG file as `[1, C, H, W]` in [0, 1] for a model that takes images of `shape = [C, H, W]`.
/// Nothing is converted: a file of another size or channel count (grey = 1, RGB = 3; alpha is dropped) is an
/// error that names the file, what it holds and what the model takes.
pub fn read_image_file(path: &Path, shape: [usize; 3]) -> Result<Tensor> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| candle_core::Error::msg(format!("{shown}: {e}")))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| candle_core::Error::msg(format!("{shown}: cannot decode the image ({e})")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let channels = if img.color().has_color() { 3 } else { 1 };
    let [c, sh, sw] = shape;
    if (h, w) != (sh, sw) || channels != c {
        let kind = |c: usize| if c == 1 { "grey" } else { "RGB" };
        candle_core::bail!(
            "{shown}: a {w}x{h} {} image ({channels} channel{}), but the model takes {sw}x{sh} {} images ({c} \
             channel{}); resize or convert it first",
            kind(channels),
            if channels == 1 { "" } else { "s" },
            kind(c),
            if c == 1 { "" } else { "s" }
        );
    }
    let v: Vec<f32> = if c == 1 {
        img.to_luma8().into_raw().into_iter().map(|p| p as f32 / 255.0).collect()
    } else {
        let hwc = img.to_rgb8().into_raw();
        let plane = h * w;
        let mut chw = vec![0f32; 3 * plane];
        for (k, px) in hwc.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                chw[ch * plane + k] = px[ch] as f32 / 255.0;
            }
        }
        chw
    };
    Tensor::from_vec(v, (1, c, h, w), &Device::Cpu)
}

/// Every PNG/JPEG file of a folder (in name order, hidden files skipped), or the one file `path`, each read by
/// [`read_image_file`], as `[N, C, H, W]`.
pub fn read_image_files(path: &Path, shape: [usize; 3]) -> Result<Tensor> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| candle_core::Error::msg(format!("{}: {e}", path.display())))?;
        let mut v: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                !name.starts_with('.') && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        candle_core::bail!("{}: no PNG or JPEG files", path.display());
    }
    let t = files.iter().map(|f| read_image_file(f, shape)).collect::<Result<Vec<_>>>()?;
    Tensor::cat(&t, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_downsampling_averages_blocks() {
        // 4x4 -> 2x2 averages 2x2 blocks
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let x = images_tensor(v, [1, 1, 4, 4]).unwrap();
        let y = resize(&x, 2, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![2.5, 4.5, 10.5, 12.5]);
        // 28 -> 8 keeps a constant image constant (the weights of each row sum to one)
        let x = Tensor::full(0.3f32, (2, 1, 28, 28), &Device::Cpu).unwrap();
        let y = resize(&x, 8, 8).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(y.iter().all(|v| (v - 0.3).abs() < 1e-6));
    }

    #[test]
    fn bilinear_upsampling_matches_pytorch() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1., 3.]]]]), size=(1, 5), mode="bilinear",
        // align_corners=False) = [0.0, 0.4, 1.0, 2.2, 3.0]
        let x = images_tensor(vec![0.0, 1.0, 3.0], [1, 1, 1, 3]).unwrap();
        let y = resize_bilinear(&x, 1, 5).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in y.iter().zip([0.0f32, 0.4, 1.0, 2.2, 3.0]) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn image_files_of_the_wrong_size_or_channels_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("ebm-eval-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let grey = dir.join("grey8.png");
        image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 30 + y) as u8])).save(&grey).unwrap();
        let rgb = dir.join("rgb8.png");
        image::RgbImage::from_fn(8, 8, |_, _| image::Rgb([255, 0, 0])).save(&rgb).unwrap();
        let big = dir.join("grey28.png");
        image::GrayImage::new(28, 28).save(&big).unwrap();
        let x = read_image_file(&grey, [1, 8, 8]).unwrap();
        assert_eq!(x.dims(), &[1, 1, 8, 8]);
        assert!((x.flatten_all().unwrap().to_vec1::<f32>().unwrap()[9] - 31.0 / 255.0).abs() < 1e-6);
        let e = read_image_file(&rgb, [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("rgb8.png") && e.contains("3 channels") && e.contains("1 channel"), "{e}");
        let e = read_image_file(&big, [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("grey28.png") && e.contains("28x28") && e.contains("8x8"), "{e}");
        assert_eq!(read_image_file(&rgb, [3, 8, 8]).unwrap().dims(), &[1, 3, 8, 8]);
        let e = read_image_files(&dir, [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("grey28.png") || e.contains("rgb8.png"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn channels_and_quantisation() {
        let x = images_tensor(vec![1.0, 0.0, 0.5], [1, 3, 1, 1]).unwrap();
        let g = to_channels(&x, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((g[0] - (0.299 + 0.057)).abs() < 1e-6);
        let back = to_channels(&to_channels(&x, 1).unwrap(), 3).unwrap();
        assert_eq!(back.dims(), &[1, 3, 1, 1]);
        let q = quantize(&images_tensor(vec![0.0, 0.03, 0.04, 0.97, 1.2], [1, 1, 1, 5]).unwrap(), 17).unwrap();
        let q = q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(q, vec![0.0, 0.0, 0.0625, 1.0, 1.0]);
    }
}
