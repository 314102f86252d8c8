//! The crate's error type: every failure names the file, tensor, key or frame it is about.

use std::path::PathBuf;

/// Errors of the dinoseg core. Each variant carries enough context to act on without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("checkpoint {path} does not fit the model:\n{report}")]
    WeightMismatch { path: PathBuf, report: String },
    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("unknown backbone variant `{0}` (see `dinoseg backbones`)")]
    UnknownVariant(String),
    #[error("model not found: {0}")]
    NotFound(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("invalid device `{0}`: expected cpu, cuda or cuda:N")]
    Device(String),
    #[error(transparent)]
    Decode(#[from] crate::pipeline::decode::DecodeError),
    #[error(transparent)]
    Preprocess(#[from] crate::pipeline::preprocess::PreprocessError),
    #[error(transparent)]
    Postprocess(#[from] crate::postprocess::PostprocessError),
    #[error(transparent)]
    Message(#[from] crate::messages::MessageError),
    #[error(transparent)]
    Bag(#[from] crate::bag::BagError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("libtorch failed: {0}")]
    Runtime(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A value echoed back in an error, cut to at most `max` characters (`...` marks a cut).
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The message of a caught panic (`catch_unwind`'s payload).
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// A tensor a file should hold is not there.
    pub fn checkpoint_missing(path: impl Into<PathBuf>, tensor: &str) -> Self {
        Error::Checkpoint { path: path.into(), message: format!("no tensor named `{tensor}`") }
    }
    /// Writing a tensor file failed.
    pub fn checkpoint_write(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Checkpoint { path: path.into(), message: format!("cannot write: {e}") }
    }
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), message: message.into() }
    }
}
