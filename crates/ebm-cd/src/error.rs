//! The errors of training: typed where a caller must tell cases apart (a bad config, an unusable checkpoint or
//! run folder, a run that diverged), with what was being done added as context. Every message names the file or
//! the config key at fault.

use std::path::PathBuf;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum CdError {
    /// A config (a file, a preset, or a checkpoint's copy of one) that does not parse or is out of range.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },
    /// A checkpoint or model file that cannot be used.
    #[error("{}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// A run folder that cannot be used as asked.
    #[error("{}: {reason}", path.display())]
    RunFolder { path: PathBuf, reason: String },
    /// Training diverged and rolling back did not help.
    #[error("training diverged at iteration {iteration} ({reason}); {advice}")]
    Diverged { iteration: u64, reason: String, advice: String },
    /// Anything else, said in words.
    #[error("{0}")]
    Msg(String),
    #[error("{}: {inner}", path.display())]
    Fs { path: PathBuf, inner: std::io::Error },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Data(#[from] ebm_data::DataError),
    #[error(transparent)]
    Io(#[from] ebm_io::IoError),
    #[error(transparent)]
    Model(#[from] ebm_models::ModelError),
    #[error(transparent)]
    Replay(#[from] ebm_replay::ReplayError),
    #[error(transparent)]
    Eval(#[from] ebm_eval::EvalError),
    #[error(transparent)]
    Plot(#[from] ebm_plot::PlotError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `inner`, with what was being done when it happened.
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<CdError> },
}

/// The result of this crate's operations.
pub type Result<T> = std::result::Result<T, CdError>;

impl CdError {
    /// A config error in `origin` (a file name or `preset NAME`).
    pub fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        CdError::Config { origin: origin.into(), message: message.into() }
    }

    /// A checkpoint error about `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        CdError::Checkpoint { path: path.into(), reason: reason.into() }
    }

    /// A run-folder error about `path`.
    pub fn run_folder(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        CdError::RunFolder { path: path.into(), reason: reason.into() }
    }

    /// The innermost error under any [`CdError::Context`] layers: the case a caller matches on.
    pub fn root(&self) -> &CdError {
        match self {
            CdError::Context { inner, .. } => inner.root(),
            other => other,
        }
    }
}

/// An error from a file-system call on `path`.
pub fn fs_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CdError + '_ {
    move |inner| CdError::Fs { path: path.to_path_buf(), inner }
}

/// Adds what was being done to an error.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<CdError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| CdError::Context { context: what.into(), inner: Box::new(e.into()) })
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| CdError::Context { context: what().into(), inner: Box::new(e.into()) })
    }
}

/// Returns a [`CdError::Msg`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($fmt:tt)+) => {
        return Err($crate::CdError::Msg(format!($($fmt)+)))
    };
}

/// Returns a [`CdError::Msg`] built like `format!` unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $crate::bail!($($fmt)+);
        }
    };
}
