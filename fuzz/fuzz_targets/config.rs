//! Any text as a run config: parsed and range-checked, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = ebm_cd::RunConfig::from_toml(text, "fuzz.toml") {
            let _ = cfg.estimated_bytes();
            let _ = ebm_cd::RunConfig::from_toml(&cfg.to_toml(), "round trip").expect("a valid config round-trips");
        }
    }
});
