//! ebm-eval
