//! The crate's error type: every message names the file, and the residue and atom where there is one.

use thiserror::Error;

/// Errors from reading structures, assigning force-field parameters and evaluating energies.
#[derive(Debug, Error)]
pub enum Error {
    /// An I/O failure on `file`, reading or writing (the OS's reason in the message, once).
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
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

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error::Other(msg)
    }
}

/// Returns early with an error built from a format string, in any crate whose error type
/// converts from `String` (every bgen crate's does).
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(format!($($t)*).into())
    };
}

/// `eprintln!` that never panics: a status line to a closed stderr (`bgen md ... 2>&1 | head`)
/// is dropped, and the long run it reports on goes on (`eprintln!` would abort it).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `println!` that never panics on a closed stdout (see [`say!`]).
#[macro_export]
macro_rules! show {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Adds what was being done to an error's message ("reading x.npy: ..."), as a `String` that
/// `?` turns into the calling crate's error type. The one way every bgen crate adds context.
pub trait Context<T> {
    /// Prefixes the error's message with `what`.
    fn context(self, what: impl std::fmt::Display) -> std::result::Result<T, String>;
    /// Prefixes the error's message with `what()`, evaluated only on error.
    fn with_context<D: std::fmt::Display>(
        self,
        what: impl FnOnce() -> D,
    ) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl std::fmt::Display) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
    fn with_context<D: std::fmt::Display>(
        self,
        what: impl FnOnce() -> D,
    ) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl std::fmt::Display) -> std::result::Result<T, String> {
        self.ok_or_else(|| what.to_string())
    }
    fn with_context<D: std::fmt::Display>(
        self,
        what: impl FnOnce() -> D,
    ) -> std::result::Result<T, String> {
        self.ok_or_else(|| what().to_string())
    }
}
