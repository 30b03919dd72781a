//! What the three services share over HTTP: the error shape, the mapping of
//! barrier results to the status codes the coordinator understands, `/health`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use concord_client::api::{ErrorBody, ErrorCode};
use concord_client::participant::{BarrierError, BarrierOutcome, TxnMeta};
use concord_client::sqlx;

/// An error answered in the project's shape, `{"error":{"code","message"}}`,
/// so shop errors look like Concord's own through the gateway.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with `code`'s status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409: refused because of the current state (a duplicate key, a limit).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 503: a dependency (another service, Concord) cannot be reached now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = %err, "database error");
        ApiError::new(ErrorCode::Internal, format!("database error: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

/// Why a participant step did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A business refusal: nothing changed, and nothing will on a retry either
    /// (answered 409, so the coordinator compensates the earlier steps).
    #[error("{0}")]
    Refused(String),
    /// The database failed: answered 500, so the coordinator retries.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl IntoResponse for StepError {
    fn into_response(self) -> Response {
        match self {
            StepError::Refused(message) => ApiError::conflict(message).into_response(),
            StepError::Db(err) => ApiError::from(err).into_response(),
        }
    }
}

/// Answers a barrier call: every outcome the barrier reports is a success for
/// the coordinator (200 `{"outcome"}`), a refusal is 409, a database error 500.
pub fn step_response(
    meta: &TxnMeta,
    result: Result<BarrierOutcome<()>, BarrierError<StepError>>,
) -> Response {
    match result {
        Ok(outcome) => {
            let outcome = outcome.as_str();
            tracing::info!(txn = %meta.txn_id, step = %meta.step, op = %meta.op.as_str(), attempt = meta.attempt, outcome, "step done");
            Json(serde_json::json!({ "outcome": outcome })).into_response()
        }
        Err(err) => {
            tracing::info!(txn = %meta.txn_id, step = %meta.step, op = %meta.op.as_str(), attempt = meta.attempt, error = %err, "step not done");
            err.into_response()
        }
    }
}

/// `GET /health`: what the registry's HTTP check probes. The process answering
/// at all is the signal; the database is checked on every request anyway.
pub async fn health() -> &'static str {
    "ok"
}

/// A JSON request body, whatever its `Content-Type`: `curl -d '{...}'` sends
/// `application/x-www-form-urlencoded`, and the demo's curl lines should work as
/// written. A body that is not the expected JSON answers 400 in the error shape.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("cannot read the body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid(format!("the body is not the expected JSON: {e}")))
    }
}
