//! Folders of images, one subfolder per class (torchvision's `ImageFolder` layout): `root/<class>/<file>.png`
//! or `.jpg` / `.jpeg`. Classes are the subfolder names sorted by name, so class `k` is the `k`-th name; files are
//! read in name order within each class. Other files (and hidden ones) are skipped.
//!
//! Every image becomes `[C, S, S]` 8-bit pixels through a [`Fit`]: the exact size (every image must already be
//! `S x S`), the top-left `S x S` crop (the paper's textures: `np.array(im)[:32, :32]`), or a bilinear resize of the
//! whole image. Decoding runs on the rayon pool.

use crate::error::{DataError, Result};
use crate::file::display_name;
use crate::images::ImageSet;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How an image of any size becomes `side x side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Every image must be `side x side` already.
    Exact,
    /// The top-left `side x side` pixels; images smaller than that are an error.
    TopLeftCrop,
    /// The whole image resized (bilinear, `image::imageops::FilterType::Triangle`).
    Resize,
}

/// How a folder is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderOptions {
    /// Output side `S`.
    pub side: usize,
    pub fit: Fit,
    /// 3 (RGB) or 1 (luma).
    pub channels: usize,
}

impl FolderOptions {
    /// The paper's textures: RGB, the top-left 32x32 crop.
    pub const TEXTURES: FolderOptions = FolderOptions { side: 32, fit: Fit::TopLeftCrop, channels: 3 };
}

/// A labelled folder: the images and the class names (label `k` is `classes[k]`).
#[derive(Debug, Clone)]
pub struct LabelledFolder {
    pub set: ImageSet,
    pub classes: Vec<String>,
}

/// Whether `path` names a PNG or JPEG file by its extension.
fn is_image(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    !hidden && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut v =
        rd.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>().map_err(|e| DataError::io(dir, e))?;
    v.sort();
    Ok(v)
}

/// The classes of a folder and its image files with their labels, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub classes: Vec<String>,
    pub files: Vec<(PathBuf, u32)>,
}

/// The classes and image files of `root`, in order.
pub fn list(root: impl AsRef<Path>) -> Result<Listing> {
    let root = root.as_ref();
    let mut classes = Vec::new();
    let mut files = Vec::new();
    for sub in sorted_entries(root)? {
        let hidden = sub.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if !sub.is_dir() || hidden {
            continue;
        }
        let label = classes.len() as u32;
        let before = files.len();
        files.extend(sorted_entries(&sub)?.into_iter().filter(|p| p.is_file() && is_image(p)).map(|p| (p, label)));
        if files.len() == before {
            return Err(DataError::Malformed {
                file: display_name(&sub),
                detail: "a class folder without any PNG or JPEG image".to_string(),
            });
        }
        classes.push(sub.file_name().expect("a folder has a name").to_string_lossy().into_owned());
    }
    if classes.is_empty() {
        return Err(DataError::Malformed {
            file: display_name(root),
            detail: "no class subfolder (expected root/<class>/<image>.png or .jpg)".to_string(),
        });
    }
    Ok(Listing { classes, files })
}

/// Reads every image of `root` into one set named `name`.
pub fn load(root: impl AsRef<Path>, name: &str, opts: FolderOptions) -> Result<LabelledFolder> {
    if !matches!(opts.channels, 1 | 3) || opts.side == 0 {
        return Err(DataError::invalid(
            name,
            format!("{} channels of side {}: need 1 or 3 channels", opts.channels, opts.side),
        ));
    }
    let Listing { classes, files } = list(root)?;
    let images = files.par_iter().map(|(p, _)| read_image(p, opts)).collect::<Result<Vec<Vec<u8>>>>()?;
    let labels = files.iter().map(|&(_, l)| l).collect();
    let num_classes = classes.len();
    let set = ImageSet::new(name, images.concat(), 256, [opts.channels, opts.side, opts.side], labels, num_classes)?;
    Ok(LabelledFolder { set, classes })
}

/// Decodes one file into `[C, S, S]` pixels.
pub fn read_image(path: &Path, opts: FolderOptions) -> Result<Vec<u8>> {
    let bad = |detail: String| DataError::Malformed { file: display_name(path), detail };
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| bad(format!("cannot decode the image: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let s = opts.side;
    let img = match opts.fit {
        Fit::Exact if (w, h) != (s, s) => return Err(bad(format!("image is {w}x{h}, expected {s}x{s}"))),
        Fit::Exact => img,
        Fit::TopLeftCrop if w < s || h < s => {
            return Err(bad(format!("image is {w}x{h}, smaller than the {s}x{s} crop")))
        }
        Fit::TopLeftCrop => img.crop_imm(0, 0, s as u32, s as u32),
        Fit::Resize => img.resize_exact(s as u32, s as u32, image::imageops::FilterType::Triangle),
    };
    let plane = s * s;
    Ok(if opts.channels == 1 {
        img.to_luma8().into_raw()
    } else {
        let hwc = img.to_rgb8().into_raw();
        let mut chw = vec![0u8; 3 * plane];
        for (k, px) in hwc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + k] = px[c];
            }
        }
        chw
    })
}
