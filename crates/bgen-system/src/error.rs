//! The crate's error type: every message names the file, and the residue and atom where there is one.

use thiserror::Error;

/// Errors from reading structures, assigning force-field parameters and evaluating energies.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {msg}")]
    Pdb {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}: {msg}")]
    Xml { file: String, msg: String },
    #[error("{file}: residue {residue}: {msg}")]
    Residue {
        file: String,
        residue: String,
        msg: String,
    },
    #[error("{file}: no {term} parameters for atoms {atoms} (atom classes {classes})")]
    MissingParameter {
        file: String,
        term: &'static str,
        atoms: String,
        classes: String,
    },
    #[error("{file}: {msg}")]
    Npy { file: String, msg: String },
    #[error("{file}: {msg}")]
    Coordinates { file: String, msg: String },
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
