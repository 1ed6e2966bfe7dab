//! The one error type of the `portcullis` command.

use std::fmt;

/// What kind of failure an [`Error`] is; decides how `main` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy did not compile; the message is the compiler's `file:line:col: message`, printed bare.
    Compile,
    /// A bundle failed validation.
    InvalidBundle,
    /// Bad command-line input or configuration (names, token, paths).
    Usage,
    /// Reading or writing a file, or binding a socket.
    Io,
    /// Talking to the control plane over HTTP, or the server refused the request.
    Http,
}

/// A failure of one `portcullis` command: a kind and a message for the operator.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of the command's operations.
pub type Result<T> = std::result::Result<T, Error>;
