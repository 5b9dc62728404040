//! The MLP's hand-written input gradient (used during Langevin) equals autograd's.

use candle_core::{Device, Tensor};
use ebm_kernels::Rng;
use ebm_models::{Activation, EnergyNet, MlpConfig, ModelConfig};
use ebm_sampler::{autograd_energy_and_grad, Energy};

#[test]
fn hand_written_gradient_matches_autograd() {
    for act in [Activation::Swish, Activation::LeakyRelu, Activation::Relu] {
        for sn in [true, false] {
            let cfg = ModelConfig::Mlp(MlpConfig {
                input_dim: 3,
                hidden: 17,
                depth: 3,
                activation: act,
                spectral_norm: sn,
                weight_std: None,
            });
            let mut rng = Rng::new(5);
            let mut net = EnergyNet::new(cfg, &mut rng, &Device::Cpu).unwrap();
            net.refresh().unwrap();
            net.set_frozen(true);
            let x = Tensor::from_vec(rng.normal_vec(33 * 3, 0.0, 2.0), (33, 3), &Device::Cpu).unwrap();
            let (e_fast, g_fast) = net.energy_and_grad(&x, None).unwrap();
            let (e_auto, g_auto) = autograd_energy_and_grad(&net, &x, None).unwrap();
            let rel = |a: &Tensor, b: &Tensor| -> f32 {
                let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                d / b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
            };
            assert!(rel(&e_fast, &e_auto) < 1e-6, "{act:?} sn={sn}: energies differ");
            assert!(rel(&g_fast, &g_auto) < 1e-5, "{act:?} sn={sn}: gradients differ by {}", rel(&g_fast, &g_auto));
        }
    }
}
