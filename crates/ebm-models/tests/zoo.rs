//! The zoo: official variable counts, parameter names, save/load round trips of every architecture, load errors,
//! dropout, conditioning, and the spectral norm of the normalised weights.

use candle_core::{DType, Device, Tensor};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use ebm_models::*;
use ebm_sampler::Energy;
use std::path::PathBuf;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-models-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The official configurations of reference 2.3's table with the counts it gives (millions, 3 significant
/// digits).
fn official_table() -> Vec<(&'static str, ModelConfig, f64)> {
    let wider = |filters, classes| ResNet32WiderConfig { filters, classes, ..Default::default() };
    vec![
        ("ResNet32(128) uncond", ModelConfig::ResNet32(ResNet32Config::default()), 7.52),
        ("ResNet32Large(128) uncond", ModelConfig::ResNet32Large(ResNet32LargeConfig::default()), 18.74),
        ("Wider(192, 10 cls)", ModelConfig::ResNet32Wider(wider(192, 10)), 42.19),
        ("Wider(256, 10 cls)", ModelConfig::ResNet32Wider(wider(256, 10)), 74.71),
        ("Wider(256, 1000 cls)", ModelConfig::ResNet32Wider(wider(256, 1000)), 97.77),
        ("ResNet128(64, 1000 cls)", ModelConfig::ResNet128(ResNet128Config::default()), 24.56),
        ("MnistNet", ModelConfig::MnistNet(MnistNetConfig::default()), 1.25),
        ("DspritesNet (L=2)", ModelConfig::DspritesNet(DspritesNetConfig { cond_dim: 2, ..Default::default() }), 0.95),
    ]
}

#[test]
fn official_variable_counts_match_the_reference_table() {
    for (name, cfg, millions) in official_table() {
        let n = official_variable_count(&cfg);
        let c = official_counts(&cfg);
        println!("{name:26} official {n:>10} ({:.2}M; + {} power-iteration state)", n as f64 / 1e6, c.sn_state);
        assert_eq!((n as f64 / 1e4).round() / 100.0, millions, "{name}: {n} variables");
    }
}

/// The table with what we store (builds the full-size models: about 1 GB and a minute; run with --ignored).
#[test]
#[ignore]
fn print_official_vs_stored_counts() {
    for (name, cfg, millions) in official_table() {
        let net = EnergyNet::new(cfg.clone(), &mut Rng::new(0), &Device::Cpu).unwrap();
        let (tensors, scalars) = net.params().counts();
        println!(
            "| {name} | {millions}M | {} | {} | {} ({tensors} tensors, {} state) |",
            official_variable_count(&cfg),
            official_counts(&cfg).sn_state,
            net.params().trainable_count(),
            scalars - net.params().trainable_count(),
        );
    }
}

/// Tiny instances of every architecture and option.
fn tiny_configs() -> Vec<ModelConfig> {
    vec![
        ModelConfig::Mlp(MlpConfig {
            input_dim: 2,
            hidden: 8,
            depth: 2,
            activation: Activation::Swish,
            spectral_norm: true,
            weight_std: None,
        }),
        ModelConfig::ResNet32(ResNet32Config { filters: 4, classes: 3, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32(ResNet32Config { filters: 4, attention: true, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32Large(ResNet32LargeConfig { filters: 2, classes: 2, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32Larger(ResNet32Config { filters: 2, image_size: 8, ..Default::default() }),
        ModelConfig::ResNet32Wider(ResNet32WiderConfig {
            filters: 4,
            classes: 3,
            attention: true,
            activation: Activation::Swish,
            image_size: 8,
            ..Default::default()
        }),
        ModelConfig::ResNet128(ResNet128Config { filters: 2, classes: 3, image_size: 32, ..Default::default() }),
        ModelConfig::MnistNet(MnistNetConfig { filters: 2, ..Default::default() }),
        ModelConfig::MnistNet(MnistNetConfig { filters: 2, spectral_norm: false, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 1, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 3, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 0, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 2, image_size: 32, ..Default::default() }),
        ModelConfig::DspritesNet(DspritesNetConfig {
            filters: 2,
            cond_dim: 1,
            image_size: 32,
            global_pool: true,
            ..Default::default()
        }),
        ModelConfig::DspritesNet(DspritesNetConfig {
            filters: 2,
            cond_dim: 2,
            image_size: 32,
            global_pool: true,
            depth: 2,
            ..Default::default()
        }),
        ModelConfig::DigitsNet(DigitsNetConfig { filters: 4, attention: true, ..Default::default() }),
        ModelConfig::CondMnistNet(CondMnistNetConfig { filters: 2, ..Default::default() }),
    ]
}

fn input_for(cfg: &ModelConfig, b: usize, seed: u64) -> (Tensor, Option<Tensor>) {
    let mut rng = Rng::new(seed);
    let shape: Vec<usize> = [b].into_iter().chain(cfg.input_shape()).collect();
    let n = shape.iter().product();
    let x = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), shape.as_slice(), &Device::Cpu).unwrap();
    let cond = match cfg {
        ModelConfig::DspritesNet(c) if c.cond_dim > 0 => {
            Some(Tensor::from_vec(rng.uniform_vec(b * c.cond_dim, 0.0, 1.0), (b, c.cond_dim), &Device::Cpu).unwrap())
        }
        _ if cfg.cond_dim() > 0 => {
            let v: Vec<u32> = (0..b as u32).map(|i| i % cfg.cond_dim() as u32).collect();
            Some(Tensor::from_vec(v, b, &Device::Cpu).unwrap())
        }
        _ => None,
    };
    (x, cond)
}

/// Moves every parameter away from its initialisation, so that a tensor lost in a round trip shows, and
/// recomputes the normalised weights (the cache follows the parameters only at `normalise` / `refresh`).
fn perturb(net: &mut EnergyNet, rng: &mut Rng) {
    for (_, slot) in net.params().iter() {
        let t = slot.var.as_tensor();
        let noise = Tensor::from_vec(rng.normal_vec(t.elem_count(), 0.0, 0.1), t.shape(), t.device()).unwrap();
        slot.var.set(&(t + noise).unwrap()).unwrap();
    }
    net.normalise(false).unwrap();
}

#[test]
fn every_architecture_round_trips_through_a_checkpoint() {
    let dir = tmpdir("rt");
    for (i, cfg) in tiny_configs().into_iter().enumerate() {
        let name = cfg.arch_name();
        let mut net = EnergyNet::new(cfg.clone(), &mut Rng::new(i as u64), &Device::Cpu).unwrap();
        perturb(&mut net, &mut Rng::new(100 + i as u64));
        net.refresh().unwrap();
        net.refresh().unwrap();
        // a loaded model's normalised weights are those of its stored (W, u) without advancing u (what TensorFlow
        // computes on restore); an in-memory model reaches that state with normalise(false)
        net.normalise(false).unwrap();
        let (x, cond) = input_for(&cfg, 3, i as u64);
        let e = net.energy(&x, cond.as_ref()).unwrap();
        assert_eq!(e.dims(), [3], "{name}");
        let path = dir.join(format!("{i}-{name}.safetensors"));
        net.save(&path).unwrap();
        let back = EnergyNet::load(&path, &Device::Cpu).unwrap();
        assert_eq!(back.config(), &cfg, "{name}: config round trip");
        assert_eq!(back.params().counts(), net.params().counts(), "{name}");
        let e2 = back.energy(&x, cond.as_ref()).unwrap();
        assert_eq!(e.to_vec1::<f32>().unwrap(), e2.to_vec1::<f32>().unwrap(), "{name}: energies after reload");
        // and the next power iteration continues from the saved vectors
        net.refresh().unwrap();
        let mut back = back;
        back.refresh().unwrap();
        let (e3, e4) = (net.energy(&x, cond.as_ref()).unwrap(), back.energy(&x, cond.as_ref()).unwrap());
        assert_eq!(e3.to_vec1::<f32>().unwrap(), e4.to_vec1::<f32>().unwrap(), "{name}: after a refresh");
        // the stored variables never exceed what the official code would create
        let official = official_variable_count(&cfg);
        assert!(net.params().trainable_count() <= official, "{name}: {} > {official}", net.params().trainable_count());
    }
}

#[test]
fn configs_serialise_with_their_arch_tag_and_reject_unknown_fields() {
    for cfg in tiny_configs() {
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(&format!("\"arch\":\"{}\"", cfg.arch_name())), "{json}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    }
    let cfg: ModelConfig = serde_json::from_str(r#"{"arch":"resnet32_large"}"#).unwrap();
    assert_eq!(cfg, ModelConfig::ResNet32Large(ResNet32LargeConfig::default()));
    let err = serde_json::from_str::<ModelConfig>(r#"{"arch":"resnet32","filter":64}"#).unwrap_err().to_string();
    assert!(err.contains("filter"), "{err}");
}

#[test]
fn official_parameter_names_and_layouts() {
    let cfg = ModelConfig::ResNet32(ResNet32Config { filters: 4, classes: 10, image_size: 8, ..Default::default() });
    let net = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).unwrap();
    let p = net.params();
    let dims = |n: &str| p.get(n).unwrap().dims().to_vec();
    assert_eq!(dims("c1_pre/cweight"), [4, 3, 3, 3]);
    assert_eq!(dims("c1_pre/c_u"), [1, 4]);
    assert_eq!(dims("res_optim_res_c1/cweight"), [4, 4, 3, 3]);
    assert_eq!(dims("res_1_res_c2/gb"), [10, 4]);
    assert_eq!(dims("res_1_res_c2/g"), [10, 4]);
    assert_eq!(dims("res_1_res_c2/cb"), [4]);
    assert_eq!(dims("res_2_res_adaptive/cweight"), [8, 4, 3, 3]);
    assert_eq!(dims("fc5/wweight"), [1, 8]);
    assert_eq!(dims("fc5/b"), [1]);
    assert!(!p.contains("res_1_res_c1/g") && !p.contains("res_1_res_c1/b"), "unused variables are not stored");
    assert!(!p.contains("fc_dense/wweight") && !p.contains("atten/gamma"));
    // the zero-initialised convs start (almost) at zero: the residual branches are off at initialisation
    let c2 = p.get("res_1_res_c2/cweight").unwrap().as_tensor().abs().unwrap().max_all().unwrap();
    assert!(c2.to_scalar::<f32>().unwrap() < 1e-8);

    let cfg = ModelConfig::MnistNet(MnistNetConfig { filters: 4, ..Default::default() });
    let net = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).unwrap();
    assert_eq!(net.params().get("fc_dense/wweight").unwrap().dims(), [8, 4 * 4 * 16]);
    assert_eq!(net.params().get("fc_dense/w_u").unwrap().dims(), [1, 8]);
    assert_eq!(net.params().get("c3/cweight").unwrap().dims(), [16, 8, 4, 4]);

    let cfg = ModelConfig::ResNet32Wider(ResNet32WiderConfig {
        filters: 4,
        attention: true,
        image_size: 8,
        ..Default::default()
    });
    let net = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).unwrap();
    let p = net.params();
    assert_eq!(p.get("atten/atten_qweight").unwrap().dims(), [2, 4, 1, 1]);
    assert_eq!(p.get("atten/atten_vweight").unwrap().dims(), [4, 4, 1, 1]);
    assert!(p.contains("atten/atten_q_u") && p.contains("atten/atten_k_b1") && p.contains("atten/gamma"));
    assert!(!p.contains("res_1_res_c1/cweight"), "attention replaces res_1 in ResNet32Wider");
    assert_eq!(p.get("res_optim_res_adaptive/cweight").unwrap().dims(), [4, 128, 3, 3]);

    // DspritesNet with one latent stores vectors, scaled by the latent
    let cfg = ModelConfig::DspritesNet(DspritesNetConfig { filters: 2, cond_dim: 1, ..Default::default() });
    let net = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).unwrap();
    assert_eq!(net.params().get("c3/gb").unwrap().dims(), [4]);
    assert_eq!(net.params().get("c3/g").unwrap().dims(), [4]);
    assert_eq!(net.params().get("c3/cb").unwrap().dims(), [4]);
    assert!(!net.params().contains("c2/g"), "only c3 has a gain");
}

#[test]
fn conditioning_changes_the_energy() {
    for cfg in tiny_configs().into_iter().filter(|c| c.cond_dim() > 0) {
        let name = cfg.arch_name();
        let mut net = EnergyNet::new(cfg.clone(), &mut Rng::new(3), &Device::Cpu).unwrap();
        perturb(&mut net, &mut Rng::new(4));
        let (x, cond) = input_for(&cfg, 2, 5);
        let cond = cond.unwrap();
        let x1 = x.narrow(0, 0, 1).unwrap().repeat((2, 1, 1, 1)).unwrap();
        let e = net.energy(&x1, Some(&cond)).unwrap().to_vec1::<f32>().unwrap();
        assert!((e[0] - e[1]).abs() > 1e-6, "{name}: the same image under two conditions: {e:?}");
    }
}

#[test]
fn resnet32large_dropout_only_in_training_mode() {
    let cfg = ModelConfig::ResNet32Large(ResNet32LargeConfig { filters: 2, image_size: 8, ..Default::default() });
    let (x, _) = input_for(&cfg, 2, 1);
    let make = || {
        let mut net = EnergyNet::new(cfg.clone(), &mut Rng::new(9), &Device::Cpu).unwrap();
        perturb(&mut net, &mut Rng::new(10));
        net
    };
    let mut net = make();
    let e0 = net.energy(&x, None).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(e0, net.energy(&x, None).unwrap().to_vec1::<f32>().unwrap(), "no dropout at evaluation");
    net.set_training(true);
    let e1 = net.energy(&x, None).unwrap().to_vec1::<f32>().unwrap();
    let e2 = net.energy(&x, None).unwrap().to_vec1::<f32>().unwrap();
    assert_ne!(e1, e0);
    assert_ne!(e1, e2, "a fresh mask per forward pass");
    // the masks come from the model's own generator: same seed, same energies
    let mut twin = make();
    twin.set_training(true);
    assert_eq!(e1, twin.energy(&x, None).unwrap().to_vec1::<f32>().unwrap());
    // with the switch off, training mode changes nothing
    let cfg_off = ModelConfig::ResNet32Large(ResNet32LargeConfig {
        filters: 2,
        image_size: 8,
        dropout: false,
        ..Default::default()
    });
    let mut off = EnergyNet::new(cfg_off, &mut Rng::new(9), &Device::Cpu).unwrap();
    perturb(&mut off, &mut Rng::new(10));
    off.set_training(true);
    assert_eq!(e0, off.energy(&x, None).unwrap().to_vec1::<f32>().unwrap());
}

#[test]
fn load_errors_name_the_file_and_the_tensor() {
    let dir = tmpdir("err");
    let mnist = ModelConfig::MnistNet(MnistNetConfig { filters: 2, ..Default::default() });
    let resnet = ModelConfig::ResNet32(ResNet32Config { filters: 2, image_size: 8, ..Default::default() });
    let net = EnergyNet::new(mnist, &mut Rng::new(0), &Device::Cpu).unwrap();
    let path = dir.join("mnist.safetensors");
    net.save(&path).unwrap();

    // a checkpoint of another architecture
    let mut other = EnergyNet::new(resnet.clone(), &mut Rng::new(0), &Device::Cpu).unwrap();
    let err = other.load_weights(&path).unwrap_err().to_string();
    assert!(err.contains("mnist.safetensors") && err.contains("mnist_net") && err.contains("resnet32"), "{err}");
    // its tensors, read into the other architecture regardless of the config
    let bundle = Bundle::load(&path, &Device::Cpu).unwrap();
    let err = other.load_tensors(&bundle, &path).unwrap_err().to_string();
    assert!(err.contains("mnist.safetensors") && err.contains("`c1_pre/c_u` has shape [1, 64]"), "{err}");

    // a missing tensor
    let mut b = bundle.clone();
    b.tensors.remove("c2/cweight");
    let p2 = dir.join("missing.safetensors");
    b.save(&p2).unwrap();
    let err = EnergyNet::load(&p2, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("missing.safetensors") && err.contains("`c2/cweight`"), "{err}");

    // a misshapen tensor
    let mut b = bundle.clone();
    b.insert("fc_dense/wweight", Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap());
    let p3 = dir.join("misshapen.safetensors");
    b.save(&p3).unwrap();
    let err = EnergyNet::load(&p3, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("misshapen.safetensors") && err.contains("`fc_dense/wweight`") && err.contains("[4, 3]"),
        "{err}"
    );

    // an extra tensor
    let mut b = bundle.clone();
    b.insert("res_1_res_c1/cweight", Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    let p4 = dir.join("extra.safetensors");
    b.save(&p4).unwrap();
    let err = EnergyNet::load(&p4, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("extra.safetensors") && err.contains("`res_1_res_c1/cweight`"), "{err}");

    // a config that does not build
    let mut b = bundle;
    b.set_meta(ebm_models::net::CONFIG_KEY, r#"{"arch":"mnist_net","filters":0}"#);
    let p5 = dir.join("badcfg.safetensors");
    b.save(&p5).unwrap();
    let err = EnergyNet::load(&p5, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("filters"), "{err}");
}

/// Largest singular value of a `[rows, cols]` matrix by power iteration in f64.
fn sigma_max(w: &Tensor) -> f64 {
    let (r, c) = w.dims2().unwrap();
    let a: Vec<f64> = w.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let mut v = vec![1f64; c];
    let mut s = 0.0;
    for _ in 0..2000 {
        let u: Vec<f64> = (0..r).map(|i| (0..c).map(|j| a[i * c + j] * v[j]).sum()).collect();
        let mut nv: Vec<f64> = (0..c).map(|j| (0..r).map(|i| a[i * c + j] * u[i]).sum()).collect();
        let n = nv.iter().map(|x| x * x).sum::<f64>().sqrt();
        nv.iter_mut().for_each(|x| *x /= n);
        s = n.sqrt();
        v = nv;
    }
    s
}

#[test]
fn mlp_normalised_weights_have_unit_spectral_norm_after_many_refreshes() {
    let cfg = ModelConfig::Mlp(MlpConfig {
        input_dim: 5,
        hidden: 16,
        depth: 3,
        activation: Activation::Swish,
        spectral_norm: true,
        weight_std: None,
    });
    let mut net = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).unwrap();
    for _ in 0..200 {
        net.refresh().unwrap();
    }
    for i in 0..3 {
        let name = format!("fc{i}/wweight");
        let raw = sigma_max(net.params().get(&name).unwrap().as_tensor());
        let s = sigma_max(&net.effective_weight(&name).unwrap());
        println!("{name}: raw sigma {raw:.4}, normalised {s:.6}");
        assert!(raw > 1.5, "the raw weight is not already normalised");
        assert!((s - 1.0).abs() < 1e-3, "{name}: largest singular value {s}");
    }
}

#[test]
fn image_size_too_small_is_a_clear_error() {
    let cfg = ModelConfig::ResNet128(ResNet128Config { filters: 2, image_size: 16, ..Default::default() });
    let err = EnergyNet::new(cfg, &mut Rng::new(0), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("image_size"), "{err}");
}

#[test]
fn same_padding_matches_tensorflow() {
    use ebm_models::ops::Pad2d;
    let p = |h, k, s| {
        let q = Pad2d::same(h, h, k, k, s);
        (q.top, q.bottom)
    };
    assert_eq!(p(28, 4, 2), (1, 1));
    assert_eq!(p(14, 4, 2), (1, 1));
    assert_eq!(p(7, 4, 2), (1, 2));
    assert_eq!(p(64, 4, 2), (1, 1));
    assert_eq!(p(32, 3, 1), (1, 1));
    assert_eq!(p(5, 1, 1), (0, 0));
}
