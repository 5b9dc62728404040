//! ebm-sampler
