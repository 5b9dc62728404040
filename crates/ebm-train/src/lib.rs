//! The `ebm-train` driver as a library: configuration, presets, the training loops that compose the other
//! crates, run folders and checkpoints. The binary (`src/main.rs`) is a thin command line over it.

pub mod cd;
pub mod cli;
pub mod compose;
pub mod config;
pub mod driver;
pub mod eval_cmd;
pub mod factors;
pub mod figures;
pub mod image;
pub mod inspect;
pub mod joint;
pub mod optim;
pub mod presets;
pub mod progress;
pub mod run_dir;
pub mod shapes_exp;
pub mod state;
pub mod toy;
