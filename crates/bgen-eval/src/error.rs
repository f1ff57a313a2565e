//! The crate's error type: messages name the samples, the reference or the file.

/// Errors of evaluation, plots, reports and the evaluation stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    System(#[from] bgen_system::Error),
    #[error(transparent)]
    Md(#[from] bgen_md::Error),
    #[cfg(feature = "stage")]
    #[error(transparent)]
    Models(#[from] bgen_models::Error),
    #[error("{0}")]
    Other(String),
}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error::Other(msg)
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
