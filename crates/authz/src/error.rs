//! The one error of this crate: a policy (or a condition in it) Google would refuse.

/// A rejected policy; the message is what the caller sees in an `INVALID_ARGUMENT` (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub message: String,
}

impl PolicyError {
    pub fn new(message: String) -> Self {
        PolicyError { message }
    }
}
