//! The transaction headers of one participant call, parsed and validated once.

use concord_api::transactions::{
    TRACEPARENT_HEADER, TXN_ATTEMPT_HEADER, TXN_ID_HEADER, TXN_OP_HEADER, TXN_STEP_HEADER, TxnOp,
};
// reqwest's `header` module is `http::header`, so this is `http::HeaderMap` without
// making the `http` crate (an axum-feature dependency) mandatory.
use reqwest::header::HeaderMap;

/// What the coordinator says about the call being served: which transaction, step
/// and operation it is, so the barrier can key its rows and logs can name the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    /// The transaction, from `Concord-Txn-Id`; never empty.
    pub txn_id: String,
    /// The step (or TCC branch), from `Concord-Txn-Step`; never empty.
    pub step: String,
    /// The operation, from `Concord-Txn-Op`.
    pub op: TxnOp,
    /// Which delivery of this call this is, from `Concord-Txn-Attempt`; starts at 1.
    /// Informational only: the barrier never trusts it, because at-least-once
    /// delivery can repeat an attempt number.
    pub attempt: u32,
    /// The W3C `traceparent`, when the coordinator sent one, so participant spans
    /// can join the transaction's trace.
    pub traceparent: Option<String>,
}

/// Why the transaction headers of a request are unusable; names the header so the
/// coordinator's operator sees what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// A required header is absent.
    #[error("missing header {header}")]
    Missing {
        /// The header's name.
        header: &'static str,
    },
    /// A header is present but its value is not acceptable.
    #[error("invalid header {header}: {reason}")]
    Invalid {
        /// The header's name.
        header: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

impl MetaError {
    /// The header the error is about, for the `field` of the JSON error body.
    pub fn header(&self) -> &'static str {
        match self {
            MetaError::Missing { header } | MetaError::Invalid { header, .. } => header,
        }
    }
}

impl TxnMeta {
    /// Reads and validates the transaction headers (`http::HeaderMap` is the same
    /// type as `reqwest::header::HeaderMap`).
    ///
    /// Id, step, op and attempt are required; `traceparent` is optional. Values must
    /// be visible ASCII; id and step must not be empty; attempt is a positive integer.
    pub fn from_headers(headers: &HeaderMap) -> Result<TxnMeta, MetaError> {
        let txn_id = non_empty(headers, TXN_ID_HEADER)?;
        let step = non_empty(headers, TXN_STEP_HEADER)?;
        let op_text = required(headers, TXN_OP_HEADER)?;
        let op =
            TxnOp::parse(op_text).ok_or_else(|| invalid(TXN_OP_HEADER, unknown_op(op_text)))?;
        let attempt_text = required(headers, TXN_ATTEMPT_HEADER)?;
        let attempt = match attempt_text.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                let reason = format!("expected a positive integer, got {attempt_text:?}");
                return Err(invalid(TXN_ATTEMPT_HEADER, reason));
            }
        };
        let traceparent = optional(headers, TRACEPARENT_HEADER)?.map(str::to_owned);
        Ok(TxnMeta {
            txn_id: txn_id.to_owned(),
            step: step.to_owned(),
            op,
            attempt,
            traceparent,
        })
    }
}

fn optional<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, MetaError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| invalid(name, "value is not visible ASCII".to_owned())),
    }
}

fn required<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, MetaError> {
    optional(headers, name)?.ok_or(MetaError::Missing { header: name })
}

fn non_empty<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, MetaError> {
    let value = required(headers, name)?;
    if value.trim().is_empty() {
        return Err(invalid(name, "value is empty".to_owned()));
    }
    Ok(value)
}

fn invalid(header: &'static str, reason: String) -> MetaError {
    MetaError::Invalid { header, reason }
}

fn unknown_op(text: &str) -> String {
    let known: Vec<&str> = TxnOp::ALL.iter().map(|op| op.as_str()).collect();
    format!("unknown op {text:?}, expected one of {}", known.join("|"))
}

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::FromRequestParts;
    use axum::response::{IntoResponse, Response};
    use concord_api::{ErrorBody, ErrorCode};
    use http::StatusCode;
    use http::request::Parts;

    use super::{MetaError, TxnMeta};

    /// Lets a participant handler take `meta: TxnMeta` as an argument; a request
    /// without valid transaction headers never reaches the business code.
    impl<S: Send + Sync> FromRequestParts<S> for TxnMeta {
        type Rejection = MetaError;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            TxnMeta::from_headers(&parts.headers)
        }
    }

    /// 400 with the project's JSON error shape, `field` naming the header, so the
    /// coordinator records a permanent (non-retryable) client error.
    impl IntoResponse for MetaError {
        fn into_response(self) -> Response {
            let mut body = ErrorBody::new(ErrorCode::InvalidArgument, self.to_string());
            body.error.field = Some(self.header().to_owned());
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}
