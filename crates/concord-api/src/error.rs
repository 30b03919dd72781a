//! The single JSON error shape every endpoint answers with.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": "...", "message": "..."}}`: one shape so clients need one parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The code is stable and machine-readable; the message is for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// The oldest retained revision, present on `compacted` errors so a watcher can resync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_revision: Option<u64>,
    /// The field a validation error is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line of a content parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column of a content parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// Stable error codes and the HTTP status each maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    MethodNotAllowed,
    CasFailed,
    Conflict,
    Compacted,
    TooLarge,
    NoLeader,
    Unavailable,
    Internal,
    /// A participant or upstream failed for good (502).
    BadGateway,
}

impl ErrorCode {
    /// The snake_case code written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::CasFailed => "cas_failed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Compacted => "compacted",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NoLeader => "no_leader",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::BadGateway => "bad_gateway",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::CasFailed | ErrorCode::Conflict => 409,
            ErrorCode::Compacted => 410,
            ErrorCode::TooLarge => 413,
            ErrorCode::NoLeader | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
        }
    }
}

impl ErrorBody {
    /// Builds an error body with no extra fields.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
                oldest_revision: None,
                field: None,
                line: None,
                column: None,
            },
        }
    }
}
