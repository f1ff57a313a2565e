//! The crate's error type: messages name the file or the replica and step.

use thiserror::Error;

/// Errors of MD runs and data sets.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    System(#[from] bgen_system::Error),
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("{0}")]
    Other(String),
    #[error(
        "replica {replica}: the energy became non-finite at step {step} ({time_ps} ps); \
         the last checkpoint is intact; try a smaller time step or minimise better"
    )]
    Unstable {
        replica: usize,
        step: u64,
        time_ps: f64,
    },
}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error::Other(msg)
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        file: path.display().to_string(),
        error,
    }
}

pub(crate) fn file_err(path: &std::path::Path, msg: impl Into<String>) -> Error {
    Error::File {
        file: path.display().to_string(),
        msg: msg.into(),
    }
}
