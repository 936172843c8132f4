//! What worker pool instances are made from and what they leave behind, on disk in the data
//! dir: container images imported from local archives ([`images`]) and each instance's
//! stdout and stderr ([`logs`]). Neither knows about callers or permissions: the services
//! that read them (`runpool-control`) authorize first.

pub mod images;
pub mod logs;

/// Why an image could not be imported or stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The archive is not what it must be; the message says what, for the caller.
    Invalid(String),
    /// The store itself failed (a disk error).
    Internal(String),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid(m) | Error::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
