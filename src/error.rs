//! The error type of the simdnet crate: a message a user can act on, and whether it is a
//! refusal (the request itself cannot be carried out safely: an output that would overwrite an
//! input, a path that is not a regular file) or a failure while doing it. The command line
//! maps a refusal to exit status 2 and a failure to 1.

use std::fmt;
use std::path::Path;

/// An error with a message that names what is wrong (and the file, where there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
    refusal: bool,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            refusal: false,
        }
    }

    /// A refusal: checked before any work starts, nothing was changed.
    pub fn refusal(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            refusal: true,
        }
    }

    /// An error about a file: `"{path}: {message}"`.
    pub fn in_file(path: &Path, message: impl fmt::Display) -> Error {
        Error::new(format!("{}: {message}", path.display()))
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is a [`Error::refusal`].
    pub fn is_refusal(&self) -> bool {
        self.refusal
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
