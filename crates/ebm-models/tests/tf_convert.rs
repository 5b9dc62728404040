//! The TensorFlow checkpoint converter against checkpoints written by real TensorFlow from the authors' own
//! `models.py` (tests/fixtures/tf/make_tf_fixture.py: how they were made, and with what).

use candle_core::{Device, Tensor};
use ebm_io::tf_bundle::TfBundle;
use ebm_models::convert::{convert_tf, load_tf};
use ebm_models::{EnergyNet, MnistNetConfig, ModelConfig, ResNet32Config, ResNet32LargeConfig};
use ebm_sampler::Energy;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tf")
}

fn expected(name: &str) -> (Tensor, Vec<Vec<f32>>) {
    let b = ebm_io::Bundle::load(&fixtures().join("expected.safetensors"), &Device::Cpu).unwrap();
    let x = b.tensors[&format!("{name}/x")].clone();
    let e = b.tensors[&format!("{name}/energy")].to_vec2::<f32>().unwrap();
    (x, e)
}

fn cases() -> Vec<(&'static str, ModelConfig)> {
    vec![
        ("resnet32_cond", ModelConfig::ResNet32(ResNet32Config { filters: 8, classes: 10, ..Default::default() })),
        (
            "resnet32_large_uncond",
            ModelConfig::ResNet32Large(ResNet32LargeConfig { filters: 8, dropout: false, ..Default::default() }),
        ),
        ("mnistnet", ModelConfig::MnistNet(MnistNetConfig { filters: 8, ..Default::default() })),
    ]
}

/// Relative error of `got` against `want`, with the scale of the whole row set (MnistNet's energies are ~0.03).
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / scale).fold(0.0, f32::max)
}

#[test]
fn converted_models_reproduce_the_official_energies_under_every_class() {
    for (name, cfg) in cases() {
        let ckpt = TfBundle::open(&fixtures().join(name).join("model_7")).unwrap();
        let (net, conv) = load_tf(&ckpt, &cfg, None).unwrap();
        assert_eq!(conv.scope, "context_0");
        assert!(conv.dropped_slots > 0, "{name}: the fixture has Adam slots");
        let (x, want) = expected(name);
        let n = x.dims()[0];
        let classes = want[0].len();
        let mut worst = 0f32;
        for c in 0..classes {
            let cond = (cfg.cond_dim() > 0).then(|| Tensor::new(vec![c as u32; n], &Device::Cpu).unwrap());
            let got = net.energy(&x, cond.as_ref()).unwrap().to_vec1::<f32>().unwrap();
            let want_c: Vec<f32> = want.iter().map(|row| row[c]).collect();
            let err = rel_err(&got, &want_c);
            assert!(err < 1e-4, "{name} class {c}: relative error {err:e}: ours {got:?}, TensorFlow {want_c:?}");
            worst = worst.max(err);
        }
        eprintln!("{name}: {classes} condition(s) x {n} inputs, largest relative error {worst:.2e}");
    }
}

#[test]
fn the_class_conditioning_matters_in_the_fixture() {
    // guards the fixture itself: a converter that dropped the class gains must not pass
    let (_, want) = expected("resnet32_cond");
    for row in &want {
        let spread = row.iter().cloned().fold(f32::MIN, f32::max) - row.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 0.05 * row[0].abs(), "energies barely vary by class: {row:?}");
    }
}

#[test]
fn a_wrong_model_is_refused_with_the_variable_name() {
    let ckpt = TfBundle::open(&fixtures().join("resnet32_cond/model_7")).unwrap();
    let wrong_filters = ModelConfig::ResNet32(ResNet32Config { filters: 16, classes: 10, ..Default::default() });
    let e = convert_tf(&ckpt, &wrong_filters, None, false).unwrap_err().to_string();
    assert!(e.contains("context_0/c1_pre/") && e.contains("[1, 16]"), "{e}");
    let unconditional = ModelConfig::ResNet32(ResNet32Config { filters: 8, classes: 0, ..Default::default() });
    let e = convert_tf(&ckpt, &unconditional, None, false).unwrap_err().to_string();
    assert!(e.contains("context_0/"), "{e}");
    let e = convert_tf(&ckpt, &ModelConfig::MnistNet(MnistNetConfig { filters: 8, ..Default::default() }), None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model_7") && e.contains("missing variable"), "{e}");
    // Large has more blocks than ResNet32: the ResNet32 checkpoint lacks them
    let ckpt = TfBundle::open(&fixtures().join("resnet32_large_uncond/model_7")).unwrap();
    let r32 = ModelConfig::ResNet32(ResNet32Config { filters: 8, ..Default::default() });
    let e = convert_tf(&ckpt, &r32, None, false).unwrap_err().to_string();
    assert!(e.contains("context_0/"), "{e}");
    let e = convert_tf(&ckpt, &cases()[1].1, Some("context_1"), false).unwrap_err().to_string();
    assert!(e.contains("no model scope `context_1`"), "{e}");
}

#[test]
fn optimizer_slots_convert_to_our_layout_on_request() {
    let ckpt = TfBundle::open(&fixtures().join("mnistnet/model_7")).unwrap();
    let cfg = &cases()[2].1;
    let conv = convert_tf(&ckpt, cfg, None, true).unwrap();
    let opt = conv.optimizer.unwrap();
    assert_eq!(conv.dropped_slots, 0);
    let plan = EnergyNet::plan(cfg).unwrap();
    for (name, (shape, trainable)) in &plan {
        for key in ["m", "v"] {
            let t = opt.tensors.get(&format!("adam/{key}/{name}"));
            assert_eq!(t.is_some(), *trainable, "{key}/{name}");
            if let Some(t) = t {
                assert_eq!(t.dims(), &shape[..], "{key}/{name}");
            }
        }
    }
    // one Adam step from zero moments: v = (1 - beta2) g^2 >= 0, and some are nonzero
    let v = opt.tensors["adam/v/c1/cweight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|&x| x >= 0.0) && v.iter().any(|&x| x > 0.0));
    let b2 = opt.tensors["adam/beta2_power"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!((b2[0] - 0.999f32 * 0.999).abs() < 1e-6, "{b2:?}");
}

/// A copy of the `mnistnet` fixture in a fresh folder, with `damage` applied to one of its files.
fn damaged(tag: &str, file: &str, damage: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-tf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model_7.index", "model_7.data-00000-of-00001"] {
        let mut bytes = std::fs::read(fixtures().join("mnistnet").join(f)).unwrap();
        if f == file {
            damage(&mut bytes);
        }
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    dir.join("model_7")
}

fn convert_err(prefix: &Path) -> String {
    let cfg = &cases()[2].1;
    match TfBundle::open(prefix) {
        Err(e) => e.to_string(),
        Ok(ckpt) => convert_tf(&ckpt, cfg, None, false).map(|_| ()).unwrap_err().to_string(),
    }
}

#[test]
fn corrupted_and_truncated_bundles_give_clear_errors() {
    let data = "model_7.data-00000-of-00001";
    // a flipped bit inside a tensor's bytes: its stored CRC32C catches it, naming file and variable
    let p = damaged("bitflip", data, |b| b[1000] ^= 0x10);
    let e = convert_err(&p);
    assert!(e.contains(data) && e.contains("checksum mismatch in variable"), "{e}");
    // a truncated data shard: caught from the index's offsets before anything is read
    let p = damaged("shortdata", data, |b| b.truncate(b.len() - 100));
    let e = convert_err(&p);
    assert!(e.contains(data) && e.contains("truncated"), "{e}");
    // a flipped byte in the index's data block: the block checksum
    let p = damaged("indexflip", "model_7.index", |b| b[20] ^= 0x01);
    let e = convert_err(&p);
    assert!(e.contains("model_7.index") && e.contains("checksum mismatch"), "{e}");
    // a truncated index (footer gone, or cut in half)
    for keep in [10usize, 800] {
        let p = damaged(&format!("shortindex{keep}"), "model_7.index", |b| b.truncate(keep));
        let e = convert_err(&p);
        assert!(e.contains("model_7.index") && e.contains("not a valid TensorFlow checkpoint"), "{keep}: {e}");
    }
    // a missing data shard
    let p = damaged("noshard", data, |_| {});
    std::fs::remove_file(p.with_file_name(data)).unwrap();
    let e = convert_err(&p);
    assert!(e.contains(data) && e.contains("missing data shard"), "{e}");
    // a folder instead of a prefix: the error lists the checkpoints in it
    let e = convert_err(&fixtures().join("mnistnet"));
    assert!(e.contains("model_7"), "{e}");
}
