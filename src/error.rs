//! The error type of the simdnet crate: a message a user can act on.

use std::fmt;
use std::path::Path;

/// An error with a message that names what is wrong (and the file, where there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// An error about a file: `"{path}: {message}"`.
    pub fn in_file(path: &Path, message: impl fmt::Display) -> Error {
        Error::new(format!("{}: {message}", path.display()))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `Result` with simdnet's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
