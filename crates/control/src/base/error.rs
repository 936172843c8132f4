//! Google's error model (`google.rpc.Status` with an `ErrorInfo` detail), as a type every
//! service returns and the wire renders.

/// The canonical error codes, `google.rpc.Code` as Google's Rust SDK has it (numbers and names).
pub use google_cloud_gax::error::rpc::Code;

/// The HTTP status Google maps a code to, as `google/rpc/code.proto` documents each one.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::Aborted | Code::AlreadyExists => 409,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

pub use google_cloud_rpc::model::ErrorInfo;
/// `google.rpc.BadRequest.FieldViolation`: one field of a request that is wrong, and how.
pub use google_cloud_rpc::model::bad_request::FieldViolation;
/// `google.rpc.PreconditionFailure.Violation`: one failed precondition, with what fixes it.
pub use google_cloud_rpc::model::precondition_failure::Violation;

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
        self.info = Some(Box::new(
            ErrorInfo::new()
                .set_reason(reason)
                .set_domain(domain)
                .set_metadata(metadata),
        ));
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
