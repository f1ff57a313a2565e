//! The crate's error type: messages name the file (a checkpoint, the data, a run).

/// Errors of models, training, checkpoints and the training stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {msg}")]
    Checkpoint { file: String, msg: String },
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    #[error(transparent)]
    System(#[from] bgen_system::Error),
    #[error(transparent)]
    Md(#[from] bgen_md::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
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
