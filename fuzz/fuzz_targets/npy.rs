//! Any bytes as a .npy array.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebm_data::npy::read_npy(data, "fuzz.npy");
});
