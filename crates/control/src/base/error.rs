//! Google's error model (`google.rpc.Status` with an `ErrorInfo` detail), as a type every
//! service returns and the wire renders.

use std::collections::BTreeMap;

/// The canonical codes Runpool answers with, named as `google.rpc.Code` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    OutOfRange,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Aborted,
    AlreadyExists,
    ResourceExhausted,
    Unimplemented,
    Internal,
}

impl Code {
    /// The HTTP status Google maps this code to.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::Aborted | Code::AlreadyExists => 409,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Internal => 500,
        }
    }

    /// The `google.rpc.Code` number.
    pub fn rpc_code(self) -> i32 {
        match self {
            Code::InvalidArgument => 3,
            Code::FailedPrecondition => 9,
            Code::OutOfRange => 11,
            Code::Unauthenticated => 16,
            Code::PermissionDenied => 7,
            Code::NotFound => 5,
            Code::Aborted => 10,
            Code::AlreadyExists => 6,
            Code::ResourceExhausted => 8,
            Code::Unimplemented => 12,
            Code::Internal => 13,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::Aborted => "ABORTED",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
        }
    }
}

/// `google.rpc.ErrorInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub reason: String,
    pub domain: String,
    pub metadata: BTreeMap<String, String>,
}

/// `google.rpc.PreconditionFailure.Violation`: one failed precondition, with what fixes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub r#type: String,
    pub subject: String,
    pub description: String,
}

/// `google.rpc.BadRequest.FieldViolation`: one field of a request that is wrong, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A failed call, in Google's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub info: Option<Box<ErrorInfo>>,
    /// Rendered as a `google.rpc.PreconditionFailure` detail.
    pub violations: Vec<Violation>,
    /// Rendered as a `google.rpc.BadRequest` detail.
    pub field_violations: Vec<FieldViolation>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            info: None,
            violations: vec![],
            field_violations: vec![],
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message).with_info(
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "googleapis.com",
            [],
        )
    }

    /// Google's IAM denial: `Permission 'P' denied on resource 'R' (or it may not exist).`
    pub fn permission_denied(permission: &str, resource: &str, domain: &str) -> Self {
        Self::new(
            Code::PermissionDenied,
            format!(
                "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
            ),
        )
        .with_info(
            "IAM_PERMISSION_DENIED",
            domain,
            [("permission", permission), ("resource", resource)],
        )
    }

    /// Stale etag on a read-modify-write, with Google's text.
    pub fn concurrent_change() -> Self {
        Self::new(
            Code::Aborted,
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
        )
    }

    pub fn with_info<'a>(
        mut self,
        reason: &str,
        domain: &str,
        metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.info = Some(Box::new(ErrorInfo {
            reason: reason.to_string(),
            domain: domain.to_string(),
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }));
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal(format!("storage failure: {e}"))
    }
}

impl From<runpool_artifacts::Error> for Error {
    fn from(e: runpool_artifacts::Error) -> Error {
        match e {
            runpool_artifacts::Error::Invalid(m) => Error::invalid(m),
            runpool_artifacts::Error::Internal(m) => Error::internal(m),
        }
    }
}
