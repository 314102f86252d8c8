//! The crate's error type: every failure names the file, tensor, key or frame it is about. Callers that branch on
//! a failure match [`Error::kind`] ([`ErrorKind`]), never the message text: out of memory is recognised once, where
//! a libtorch error or panic becomes an [`Error`] ([`Error::from_panic`], the `From` conversions), and caught
//! libtorch panics stay off stderr with [`install_quiet_panic_hook`] + [`catch_quiet`].

mod quiet;

pub use quiet::{catch_quiet, install_quiet_panic_hook, Caught};

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
    /// A file given to the program is unusable as such (not a regular file, too large, not UTF-8, ...).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A parameter (ROS parameter, params file key, command-line value) that cannot be used.
    #[error("{key}: {message}")]
    Parameter { key: String, message: String },
    /// The device ran out of memory (libtorch's allocator said so): the frame, not the program, failed.
    #[error("out of memory on {device}: {message}")]
    OutOfMemory { device: String, message: String },
    #[error("invalid device `{0}`: expected cpu, cuda or cuda:N")]
    Device(String),
    #[error(transparent)]
    Decode(#[from] crate::pipeline::decode::DecodeError),
    #[error(transparent)]
    Preprocess(crate::pipeline::preprocess::PreprocessError),
    #[error(transparent)]
    Postprocess(crate::postprocess::PostprocessError),
    #[error(transparent)]
    Message(#[from] crate::messages::MessageError),
    #[error(transparent)]
    Bag(#[from] crate::bag::BagError),
    #[error("libtorch: {0}")]
    Torch(#[source] tch::TchError),
    #[error("libtorch failed: {0}")]
    Runtime(String),
    /// A panic caught around the model (a bug, or a libtorch failure tch raised as a panic).
    #[error("the model panicked: {0}")]
    Panic(String),
    /// Something this program got wrong (a broken promise between its own parts).
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, for callers that act on it (drop a frame, hint at a smaller input, exit
/// with a usage error, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The device ran out of memory: smaller inputs or batches may work.
    OutOfMemory,
    /// Bad data from outside: an image, a message, a bag, a file given as input.
    Input,
    /// A checkpoint, model config or weights file that does not fit.
    Checkpoint,
    /// A parameter, device or variant name that cannot be used.
    Parameter,
    /// The operating system refused a read or write.
    Io,
    /// libtorch failed otherwise, or this program has a bug.
    Internal,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::pipeline::preprocess::PreprocessError as Pre;
        use crate::postprocess::PostprocessError as Post;
        match self {
            Error::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            Error::Io { .. } => ErrorKind::Io,
            Error::Checkpoint { .. } | Error::WeightMismatch { .. } | Error::Config { .. } | Error::NotFound(_) => {
                ErrorKind::Checkpoint
            }
            Error::UnknownVariant(_) | Error::Device(_) | Error::Parameter { .. } => ErrorKind::Parameter,
            Error::Input { .. } | Error::File { .. } | Error::Decode(_) | Error::Message(_) => ErrorKind::Input,
            Error::Bag(crate::bag::BagError::Io { .. }) => ErrorKind::Io,
            Error::Bag(_) => ErrorKind::Input,
            Error::Preprocess(Pre::InvalidPolicy { .. } | Pre::UnsupportedKind { .. }) => ErrorKind::Parameter,
            Error::Preprocess(Pre::Torch { .. } | Pre::BadShape { .. } | Pre::BatchSizeMismatch { .. }) => {
                ErrorKind::Internal
            }
            Error::Preprocess(_) => ErrorKind::Input,
            Error::Postprocess(Post::Config(_)) => ErrorKind::Parameter,
            Error::Postprocess(Post::TooManyClasses { .. }) => ErrorKind::Checkpoint,
            Error::Postprocess(Post::Labels { .. } | Post::LabelsLine { .. }) => ErrorKind::Input,
            Error::Postprocess(Post::Io { .. }) => ErrorKind::Io,
            Error::Postprocess(_) => ErrorKind::Internal,
            Error::Torch(_) | Error::Runtime(_) | Error::Panic(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A caught panic as an error: [`Error::OutOfMemory`] when libtorch's allocator raised it, else `other` of the
    /// panic's text (e.g. `Error::Panic`, or `Error::Runtime` of its first line).
    pub fn from_panic(caught: &Caught, other: impl FnOnce(String) -> Error) -> Error {
        let text = caught.text();
        out_of_memory(&text).unwrap_or_else(|| other(text))
    }

    /// A panic caught around a model call: [`Error::OutOfMemory`], or [`Error::Panic`] with its text and where it
    /// was raised.
    pub fn model_panic(caught: &Caught) -> Error {
        Error::from_panic(caught, |text| {
            let text = first_line(&text);
            Error::Panic(match &caught.location {
                Some(at) => format!("{text} (at {at})"),
                None => text,
            })
        })
    }

    /// A bad parameter `key` (shown as given) with what is wrong with it.
    pub fn parameter(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Parameter { key: key.into(), message: message.into() }
    }

    /// A file given as input that cannot be used, and why.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
}

/// [`Error::OutOfMemory`] if `text` (a libtorch error or panic message) is an allocator's out-of-memory report.
/// The one place that reads libtorch's wording: CUDA's `CUDA out of memory. ... GPU 0 ...`, the CPU allocator's
/// `can't allocate memory` (older: `not enough memory`), MPS's `MPS backend out of memory`, HIP's `HIP out of memory`.
fn out_of_memory(text: &str) -> Option<Error> {
    let lower = text.to_ascii_lowercase();
    if !(lower.contains("out of memory") || lower.contains("allocate memory") || lower.contains("not enough memory")) {
        return None;
    }
    let device = if lower.contains("cuda") || lower.contains("hip out of memory") {
        match gpu_index(text) {
            Some(i) => format!("cuda:{i}"),
            None => "cuda".to_string(),
        }
    } else if lower.contains("mps") {
        "mps".to_string()
    } else if lower.contains("cpu") {
        "cpu".to_string()
    } else {
        "the device".to_string()
    };
    Some(Error::OutOfMemory { device, message: first_line(text) })
}

/// N of the first `GPU N` in a CUDA message.
fn gpu_index(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once("GPU ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first line of a libtorch message (the rest is a C++ backtrace), also when a panic shows it escaped (`\n`)
/// inside tch's ``called `Result::unwrap()` on an `Err` value: Torch("...")``, cut to 300 characters.
pub(crate) fn first_line(text: &str) -> String {
    let text = text.split_once("Torch(\"").map_or(text, |(_, inner)| inner);
    let line = text.lines().next().unwrap_or_default();
    let line = line.split("\\n").next().unwrap_or_default();
    shorten(line.strip_suffix("\")").unwrap_or(line), 300)
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        out_of_memory(&e.to_string()).unwrap_or(Error::Torch(e))
    }
}

impl From<crate::pipeline::preprocess::PreprocessError> for Error {
    fn from(e: crate::pipeline::preprocess::PreprocessError) -> Self {
        match &e {
            crate::pipeline::preprocess::PreprocessError::Torch { source, .. } => out_of_memory(&source.to_string()),
            _ => None,
        }
        .unwrap_or(Error::Preprocess(e))
    }
}

impl From<crate::postprocess::PostprocessError> for Error {
    fn from(e: crate::postprocess::PostprocessError) -> Self {
        match &e {
            crate::postprocess::PostprocessError::Torch(source) => out_of_memory(&source.to_string()),
            _ => None,
        }
        .unwrap_or(Error::Postprocess(e))
    }
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
