//! `ApiError`: every failure a handler can answer, rendered in the one JSON error shape.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use concord_api::validate::Invalid;
use concord_api::{ErrorBody, ErrorCode};
use concord_raft::ProposeError;
use concord_state::StateError;

/// A request that could not be served, with the code and message the client sees.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub oldest_revision: Option<u64>,
    /// 1-based (line, column) of a content parse error.
    pub position: Option<(u32, u32)>,
}

impl ApiError {
    /// Any error without extra fields.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            oldest_revision: None,
            position: None,
        }
    }

    /// 400 about one named field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(ErrorCode::InvalidArgument, message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 410 with the oldest revision a watcher can resume from.
    pub fn compacted(oldest: u64) -> Self {
        ApiError {
            oldest_revision: Some(oldest),
            ..ApiError::new(
                ErrorCode::Compacted,
                format!(
                    "the requested revision has been compacted; resume with from_revision >= {oldest} after re-reading current state"
                ),
            )
        }
    }

    /// 500 for faults that are ours, not the client's.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid(&e.field, e.message)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let code = match e {
            StateError::CasFailed { .. } | StateError::ConfigCasFailed { .. } => {
                ErrorCode::CasFailed
            }
            StateError::LeaseNotFound(_)
            | StateError::InstanceNotFound { .. }
            | StateError::CheckNotFound { .. }
            | StateError::ConfigNotFound(_)
            | StateError::ConfigVersionNotFound { .. }
            | StateError::NoGray(_)
            | StateError::RouteNotFound(_)
            | StateError::TxnNotFound(_) => ErrorCode::NotFound,
            StateError::TxnConflict(_) => ErrorCode::Conflict,
            StateError::InvalidSnapshot(_) | StateError::Invalid(_) => ErrorCode::InvalidArgument,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader {
                leader_id,
                leader_client_addr,
            } => ApiError::new(
                ErrorCode::NoLeader,
                match (leader_id, leader_client_addr) {
                    (Some(id), Some(addr)) => {
                        format!("this node is not the leader; node {id} at {addr} is")
                    }
                    _ => "no leader is known right now; retry shortly".to_owned(),
                },
            ),
            ProposeError::Unavailable(m) => ApiError::new(ErrorCode::Unavailable, m),
            ProposeError::Fatal(m) => ApiError::new(ErrorCode::Unavailable, m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = ErrorBody::new(self.code, self.message);
        body.error.field = self.field;
        body.error.oldest_revision = self.oldest_revision;
        if let Some((line, column)) = self.position {
            body.error.line = Some(line);
            body.error.column = Some(column);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if self.code == ErrorCode::NoLeader || self.code == ErrorCode::Unavailable {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
