//! Any bytes as a pickle, through the project's unpickler and the opcode scan that vets PyTorch files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebm_data::pickle::parse(data, "fuzz.pkl");
    let _ = ebm_data::pickle::count_opcodes(data, "fuzz.pkl");
});
