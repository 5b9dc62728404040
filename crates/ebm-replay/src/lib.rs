//! ebm-replay
