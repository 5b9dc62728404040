//! Any bytes as a MATLAB v5 file (SVHN's format) and as CIFAR binary records.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebm_data::matlab::parse(data, "fuzz.mat");
    let _ = ebm_data::cifar::parse(data, "fuzz.bin", "c10", ebm_data::cifar::CifarFormat::Cifar10);
});
