//! Any bytes as IDX image and label files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebm_data::idx::parse_images(data, "fuzz.idx");
    let _ = ebm_data::idx::parse_labels(data, "fuzz.idx");
});
