//! ebm-data
