//! The crate's error type: messages name the run, the file or the sampler's state.

/// Errors of the samplers and the sampling stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Degenerate(#[from] crate::smc::Degenerate),
    #[error(transparent)]
    System(#[from] bgen_system::Error),
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
