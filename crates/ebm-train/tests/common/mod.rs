//! Helpers shared by the training tests.

use ebm_replay::Stored;
use ebm_train::state::TrainState;

/// Every parameter's bits, by name: equal exactly when two runs computed the same numbers.
pub fn parameter_bits<E: Stored>(st: &TrainState<E>) -> Vec<(String, Vec<u32>)> {
    st.model
        .params()
        .iter()
        .map(|(k, s)| {
            let v = s.var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k.to_string(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}
