//! Any bytes as a safetensors bundle, and (when they parse) as a model checkpoint and a training checkpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(b) = ebm_io::Bundle::from_bytes(data, &candle_core::Device::Cpu) else { return };
    let p = std::path::Path::new("fuzz.safetensors");
    let _ = ebm_models::EnergyNet::from_bundle(&b, p);
    let _ = ebm_cd::state::rng_from_meta(&b, "rng", p);
    let _ = ebm_replay::ReplayBuffer::<u8>::from_bundle(&b, "replay/", p);
});
