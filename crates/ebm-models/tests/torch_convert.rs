//! The PyTorch state-dict converter against files written by real `torch.save` from an independent PyTorch
//! implementation of the official networks (tests/fixtures/torch/make_torch_fixture.py: how, and with what).

use candle_core::{DType, Device, Tensor};
use ebm_models::convert::convert_torch;
use ebm_models::{EnergyNet, MnistNetConfig, ModelConfig, ResNet32Config, ResNet32LargeConfig};
use ebm_sampler::Energy;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn read(file: &str, key: Option<&str>) -> Vec<(String, Tensor)> {
    candle_core::pickle::read_all_with_key(fixtures().join(file), key).unwrap()
}

fn cases() -> Vec<(&'static str, &'static str, Option<&'static str>, ModelConfig)> {
    vec![
        (
            "resnet32_cond",
            "resnet32_cond.pt",
            Some("state_dict"),
            ModelConfig::ResNet32(ResNet32Config { filters: 8, classes: 10, ..Default::default() }),
        ),
        (
            "resnet32_large_uncond",
            "resnet32_large.pth",
            None,
            ModelConfig::ResNet32Large(ResNet32LargeConfig { filters: 8, dropout: false, ..Default::default() }),
        ),
        ("mnistnet", "mnistnet.pt", None, ModelConfig::MnistNet(MnistNetConfig { filters: 8, ..Default::default() })),
    ]
}

#[test]
fn converted_state_dicts_reproduce_the_torch_energies_under_every_class() {
    let exp = ebm_io::Bundle::load(&fixtures().join("expected.safetensors"), &Device::Cpu).unwrap();
    for (name, file, key, cfg) in cases() {
        let conv = convert_torch(read(file, key), &cfg, file).unwrap();
        let net = EnergyNet::from_bundle(&conv.model, Path::new(file)).unwrap();
        let x = &exp.tensors[&format!("{name}/x")];
        let want = exp.tensors[&format!("{name}/energy")].to_vec2::<f32>().unwrap();
        let n = x.dims()[0];
        let scale = want.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        let mut worst = 0f32;
        for c in 0..want[0].len() {
            let cond = (cfg.cond_dim() > 0).then(|| Tensor::new(vec![c as u32; n], &Device::Cpu).unwrap());
            let got = net.energy(x, cond.as_ref()).unwrap().to_vec1::<f32>().unwrap();
            for (g, row) in got.iter().zip(&want) {
                let err = (g - row[c]).abs() / scale;
                assert!(err < 1e-4, "{name} class {c}: ours {g}, torch {}", row[c]);
                worst = worst.max(err);
            }
        }
        eprintln!("{name}: {} condition(s) x {n} inputs, largest relative error {worst:.2e}", want[0].len());
    }
}

#[test]
fn the_prefix_spelling_and_unused_variables_are_reported() {
    let (_, file, key, cfg) = cases().remove(0);
    let conv = convert_torch(read(file, key), &cfg, file).unwrap();
    assert_eq!(conv.scope, "module");
    let (_, file, key, cfg) = cases().remove(1);
    let conv = convert_torch(read(file, key), &cfg, file).unwrap();
    assert_eq!((conv.scope.as_str(), conv.unused.clone()), ("", vec!["c1_pre/b".to_string()]));
}

#[test]
fn wrong_models_layouts_and_values_are_refused_by_name() {
    let (_, file, key, cfg) = cases().remove(0);
    let wider = ModelConfig::ResNet32(ResNet32Config { filters: 16, classes: 10, ..Default::default() });
    let e = convert_torch(read(file, key), &wider, file).unwrap_err().to_string();
    assert!(e.contains("resnet32_cond.pt") && e.contains("module.") && e.contains("16]"), "{e}");

    // a key the model does not know
    let mut t = read(file, key);
    t.push(("module.extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()));
    let e = convert_torch(t, &cfg, file).unwrap_err().to_string();
    assert!(e.contains("unexpected tensor `module.extra.weight`"), "{e}");

    // a kernel in TensorFlow's HWIO layout is named, not permuted silently
    let mut t = read(file, key);
    let k = t.iter_mut().find(|(k, _)| k == "module.c1_pre.cweight").unwrap();
    k.1 = k.1.permute((2, 3, 1, 0)).unwrap().contiguous().unwrap();
    let e = convert_torch(t, &cfg, file).unwrap_err().to_string();
    assert!(e.contains("module.c1_pre.cweight") && e.contains("TensorFlow's layout"), "{e}");

    // a NaN is refused with its place
    let mut t = read(file, key);
    let k = t.iter_mut().find(|(k, _)| k == "module.fc5.b").unwrap();
    k.1 = Tensor::new(&[f32::NAN], &Device::Cpu).unwrap();
    let e = convert_torch(t, &cfg, file).unwrap_err().to_string();
    assert!(e.contains("module.fc5.b") && e.contains("non-finite"), "{e}");

    // not a port that keeps the official names
    let t = vec![("conv1.weight_orig".to_string(), Tensor::zeros((8, 3, 3, 3), DType::F32, &Device::Cpu).unwrap())];
    let e = convert_torch(t, &cfg, file).unwrap_err().to_string();
    assert!(e.contains("official names") && e.contains("conv1.weight_orig"), "{e}");
}
