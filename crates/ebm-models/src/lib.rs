//! ebm-models
