//! Errors of the gateway as a component (starting it, compiling routes), and
//! the JSON error answers it gives clients.

use concord_api::{ErrorBody, ErrorDetail};
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The proxy or admin address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Why a stored route cannot be served by this gateway (the server validates
/// routes, so this means a gateway older than the server, or a header name the
/// server let through). The route is skipped and the error logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A header name or value that HTTP does not allow.
    #[error("{field}: {reason}")]
    Invalid {
        /// The route field, as the server names fields (`request_headers.add`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RouteError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl ToString) -> Self {
        RouteError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// A response in Concord's error shape: `{"error":{"code":..,"message":..}}`.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> Response<Body> {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
            oldest_revision: None,
            field: None,
            line: None,
            column: None,
        },
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(full(json));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
