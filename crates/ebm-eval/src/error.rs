//! The errors of the evaluation pipelines. Each message says which file or setting is at fault.

use std::path::PathBuf;

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file (model, classifier, inputs, weights) that cannot serve the evaluation asked of it.
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
    /// Settings that cannot describe an evaluation (an empty epsilon list, an unknown mask, ...).
    #[error("{0}")]
    Settings(String),
    #[error("{}: {inner}", path.display())]
    Fs { path: PathBuf, inner: std::io::Error },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Data(#[from] ebm_data::DataError),
    #[error(transparent)]
    Io(#[from] ebm_io::IoError),
    #[error(transparent)]
    Plot(#[from] ebm_plot::PlotError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `inner`, with what was being done when it happened.
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<EvalError> },
}

/// The result of the evaluation pipelines.
pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    /// An error about the file `path`.
    pub fn input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EvalError::Input { path: path.into(), reason: reason.into() }
    }
}

/// Adds what was being done to an error.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<EvalError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| EvalError::Context { context: what.into(), inner: Box::new(e.into()) })
    }
}

/// Returns a [`EvalError::Settings`] error unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::error::EvalError::Settings(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// Creates a directory and its parents, naming it on failure.
pub(crate) fn create_dir(path: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|inner| EvalError::Fs { path: path.to_path_buf(), inner })
}
