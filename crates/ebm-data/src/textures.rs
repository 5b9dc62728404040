//! Three texture photographs shipped with scikit-image (`skimage/data/{brick,grass,gravel}.png`, 512x512 grey,
//! CC0): the textures out-of-distribution set that can be had where DTD's host cannot be reached. `cargo xtask
//! fetch-data skimage-textures` installs the scikit-image 0.25.2 wheel (a zip) from PyPI and unpacks it.
//!
//! Each photograph is cut into non-overlapping 32x32 tiles, the size of the paper's DTD crops; the label is the
//! texture (0 brick, 1 grass, 2 gravel). The top half of each photograph's tile rows is the training part, the
//! bottom half the test part, so the two parts share no pixel.

use crate::error::{DataError, Result};
use crate::folder::{read_image, Fit, FolderOptions};
use crate::images::ImageSet;
use crate::Split;
use std::path::{Path, PathBuf};

/// The photographs, in label order.
pub const FILES: [&str; 3] = ["brick.png", "grass.png", "gravel.png"];
/// Side of each photograph, in pixels.
pub const PHOTO_SIDE: usize = 512;
/// Side of each tile.
pub const TILE: usize = 32;
/// Tiles per photograph in each part: half of the `(512 / 32)^2 = 256` tiles.
pub const TILES_PER_PART: usize = (PHOTO_SIDE / TILE) * (PHOTO_SIDE / TILE) / 2;

/// The folder holding the photographs: `dir/skimage/data` (the unpacked wheel) or `dir` itself.
pub fn photos_dir(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    let inner = dir.join("skimage").join("data");
    if inner.join(FILES[0]).is_file() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// The 32x32 tiles of one `side x side` grey image whose tile row is in `rows`, row by row.
fn tiles(pixels: &[u8], side: usize, rows: std::ops::Range<usize>) -> Vec<u8> {
    let per_row = side / TILE;
    let mut out = Vec::with_capacity(rows.len() * per_row * TILE * TILE);
    for tr in rows {
        for tc in 0..per_row {
            for y in 0..TILE {
                let start = (tr * TILE + y) * side + tc * TILE;
                out.extend_from_slice(&pixels[start..start + TILE]);
            }
        }
    }
    out
}

/// One part of the tiles, `[1, 32, 32]` with 256 grey levels, named "textures-train" / "textures-test".
pub fn load_split(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = photos_dir(dir);
    let rows_per_half = PHOTO_SIDE / TILE / 2;
    let rows = match split {
        Split::Train => 0..rows_per_half,
        Split::Test => rows_per_half..2 * rows_per_half,
    };
    let opts = FolderOptions { side: PHOTO_SIDE, fit: Fit::Exact, channels: 1 };
    let mut pixels = Vec::with_capacity(FILES.len() * TILES_PER_PART * TILE * TILE);
    let mut labels = Vec::with_capacity(FILES.len() * TILES_PER_PART);
    for (label, file) in FILES.iter().enumerate() {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(DataError::invalid(
                path.display().to_string(),
                "missing; install the photographs with `cargo xtask fetch-data skimage-textures`",
            ));
        }
        pixels.extend(tiles(&read_image(&path, opts)?, PHOTO_SIDE, rows.clone()));
        labels.extend(std::iter::repeat_n(label as u32, TILES_PER_PART));
    }
    let name = match split {
        Split::Train => "textures-train",
        Split::Test => "textures-test",
    };
    ImageSet::new(name, pixels, 256, [1, TILE, TILE], labels, FILES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_cut_row_by_row_from_the_asked_rows() {
        // a 64x64 image whose pixel is its column (mod 256) + 100 in the bottom half
        let side = 64;
        let px: Vec<u8> = (0..side * side).map(|i| (i % side) as u8 + if i / side >= 32 { 100 } else { 0 }).collect();
        let top = tiles(&px, side, 0..1);
        assert_eq!(top.len(), 2 * TILE * TILE);
        assert_eq!(&top[..3], &[0, 1, 2]); // first tile, first row
        assert_eq!(top[TILE * TILE], 32); // second tile starts at column 32
        let bottom = tiles(&px, side, 1..2);
        assert_eq!(bottom[0], 100);
        assert_eq!(bottom[TILE * TILE + TILE - 1], 163);
    }
}
