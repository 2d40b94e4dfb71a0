//! Stable, machine-readable error codes (`docs/api.md` §3) and the error body every
//! component answers with. The HTTP status is data here (a `u16`) so that this
//! crate needs no HTTP library; the intake maps it in exactly one place.

use serde::{Deserialize, Serialize};

/// Every error code of the contract. The wire string (`as_str`) and the message
/// are part of the public API: clients written against ARGOS match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON, not an object, or an encrypted body cannot be
    /// decrypted (or a project that requires encryption got a plain body).
    InvalidPayload,
    /// 400: one or more required fields are absent or empty; `parameters` lists all.
    MissingData,
    /// 400: the key's project is disabled.
    InvalidProject,
    /// 400: `admin` is not an administrator of the project.
    InvalidAdmin,
    /// 400: a key that is not a field of the contract (the first in document order).
    InvalidParameter,
    /// 400: a value that breaks its rule or is not a string (the first in document order).
    InvalidFormat,
    /// 400: accepted by the intake but could not be persisted (results only).
    ProcessingError,
    /// 403: missing, unknown or revoked API key.
    Forbidden,
    /// 404: the submission is not processed (yet) or belongs to another project.
    NotFound,
    /// 405: the route exists but not for this method (`Allow` lists the methods).
    MethodNotAllowed,
    /// 408: the request's body did not arrive within the body timeout.
    RequestTimeout,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 429: the project's rate limit is exceeded (`Retry-After` is set).
    RateLimited,
    /// 503: the broker did not durably accept the message in time (`Retry-After` is set).
    Unavailable,
    /// 400: a listing's `start_date`/`end_date` is not `YYYY-MM-DD`, or the start
    /// is after the end (`docs/api.md` §15).
    InvalidDate,
    /// 400: a correction or erasure names a submission that is not a stored one
    /// of the project: unknown, another project's, or deleted (`docs/api.md` §15).
    InvalidSubmission,
    /// 400: an image upload without any image, or with content that is not
    /// JPEG or PNG by its bytes (`docs/api.md`, "Images").
    InvalidData,
    /// 400: an image upload's `idType` is not an ID type code (`docs/api.md`,
    /// "Images").
    #[serde(rename = "invalid_idType")]
    InvalidIdType,
}

impl ErrorCode {
    /// Every code, in the order of the spec's table (used by exhaustive tests).
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::InvalidPayload,
        ErrorCode::MissingData,
        ErrorCode::InvalidProject,
        ErrorCode::InvalidAdmin,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidFormat,
        ErrorCode::ProcessingError,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::InvalidDate,
        ErrorCode::InvalidSubmission,
        ErrorCode::InvalidData,
        ErrorCode::InvalidIdType,
    ];

    /// The wire string, e.g. `invalid_format`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::MissingData => "missing_data",
            ErrorCode::InvalidProject => "invalid_project",
            ErrorCode::InvalidAdmin => "invalid_admin",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidFormat => "invalid_format",
            ErrorCode::ProcessingError => "processing_error",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidSubmission => "invalid_submission",
            ErrorCode::InvalidData => "invalid_data",
            ErrorCode::InvalidIdType => "invalid_idType",
        }
    }

    /// Parses a wire string back into a code (used when reading stored results).
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status the code is answered with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidPayload
            | ErrorCode::MissingData
            | ErrorCode::InvalidProject
            | ErrorCode::InvalidAdmin
            | ErrorCode::InvalidParameter
            | ErrorCode::InvalidFormat
            | ErrorCode::ProcessingError
            | ErrorCode::InvalidDate
            | ErrorCode::InvalidSubmission
            | ErrorCode::InvalidData
            | ErrorCode::InvalidIdType => 400,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The fixed message; for the two parameterised codes, the prefix before `: <name>`.
    pub const fn base_message(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "Invalid payload",
            ErrorCode::MissingData => "Required input data is missing",
            ErrorCode::InvalidProject => "Invalid project",
            ErrorCode::InvalidAdmin => "Invalid admin",
            ErrorCode::InvalidParameter => "invalid parameter",
            ErrorCode::InvalidFormat => "invalid format",
            ErrorCode::ProcessingError => "Failed to complete migration",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "Submission not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Unavailable => "Service unavailable",
            ErrorCode::InvalidDate => "Invalid date",
            ErrorCode::InvalidSubmission => "Invalid submission",
            ErrorCode::InvalidData => "Invalid data",
            ErrorCode::InvalidIdType => "Invalid idType",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a submission was refused: a code plus the fields it concerns.
///
/// `parameters` holds field *names* only, never values, so a `Rejection` is safe
/// to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Rejection {
    /// The stable error code the client sees.
    pub code: ErrorCode,
    /// The wire names of the fields concerned (never their values).
    pub parameters: Vec<String>,
}

impl Rejection {
    /// A rejection that names no field.
    pub fn new(code: ErrorCode) -> Self {
        Rejection {
            code,
            parameters: Vec::new(),
        }
    }

    /// `invalid_parameter` naming `name`.
    pub fn invalid_parameter(name: impl Into<String>) -> Self {
        Rejection {
            code: ErrorCode::InvalidParameter,
            parameters: vec![name.into()],
        }
    }

    /// `invalid_format` naming `name`.
    pub fn invalid_format(name: impl Into<String>) -> Self {
        Rejection {
            code: ErrorCode::InvalidFormat,
            parameters: vec![name.into()],
        }
    }

    /// `missing_data` listing every missing field.
    pub fn missing(names: Vec<String>) -> Self {
        Rejection {
            code: ErrorCode::MissingData,
            parameters: names,
        }
    }

    /// The exact message of `docs/api.md` §3: `invalid parameter: <name>`,
    /// `invalid format: <name>`, or the code's fixed message.
    pub fn message(&self) -> String {
        match (self.code, self.parameters.first()) {
            (ErrorCode::InvalidParameter | ErrorCode::InvalidFormat, Some(name)) => {
                format!("{}: {name}", self.code.base_message())
            }
            _ => self.code.base_message().to_owned(),
        }
    }

    /// The wire body.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error_code: self.code,
            message: self.message(),
            parameters: (!self.parameters.is_empty()).then(|| self.parameters.clone()),
        }
    }
}

impl From<ErrorCode> for Rejection {
    fn from(code: ErrorCode) -> Self {
        Rejection::new(code)
    }
}

/// Every error body: `{"errorCode", "message", "parameters"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The stable error code (`docs/api.md` §3).
    pub error_code: ErrorCode,
    /// The human-readable message of `docs/api.md` §3.
    pub message: String,
    /// The fields concerned; omitted when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
}

impl ErrorBody {
    /// The body for a code that names no field.
    pub fn from_code(code: ErrorCode) -> Self {
        Rejection::new(code).to_body()
    }
}
