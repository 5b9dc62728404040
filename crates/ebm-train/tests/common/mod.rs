//! Helpers shared by the training tests.

use ebm_models::EnergyNet;

/// Every parameter's bits, by name: equal exactly when two runs computed the same numbers.
pub fn parameter_bits(model: &EnergyNet) -> Vec<(String, Vec<u32>)> {
    model
        .params()
        .iter()
        .map(|(k, s)| {
            let v = s.var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k.to_string(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}
