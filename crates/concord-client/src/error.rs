//! The one error type every client call returns, and parsing of the server's error JSON.

use concord_api::{ErrorBody, ErrorCode};

/// Why a client call failed.
///
/// Split three ways because callers react differently: an [`ClientError::Api`]
/// error is a definite answer from the server (retrying will not help unless the
/// code says so), a [`ClientError::Transport`] error means the request may not
/// have arrived at all, and a [`ClientError::Decode`] error means client and
/// server disagree about the contract.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status and (usually) its JSON error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status of the answer.
        status: u16,
        /// The stable snake_case error code (`not_found`, `cas_failed`, `compacted`, ...),
        /// or `unknown` when the body was not Concord's error JSON.
        code: String,
        /// The human-readable explanation.
        message: String,
        /// On `compacted` errors: the oldest revision the server still has, to resync from.
        oldest_revision: Option<u64>,
    },
    /// The request could not be sent or its answer not received (connect, I/O, bad URL).
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    /// The server answered 2xx but the body was not what the contract says.
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),
}

/// Code used when an error answer carries no Concord error JSON (a proxy, a wrong URL).
pub(crate) const UNKNOWN_CODE: &str = "unknown";

/// Every code the API documents, so errors sent inside a watch stream can be given a status.
const KNOWN_CODES: [ErrorCode; 9] = [
    ErrorCode::InvalidArgument,
    ErrorCode::NotFound,
    ErrorCode::CasFailed,
    ErrorCode::Conflict,
    ErrorCode::Compacted,
    ErrorCode::TooLarge,
    ErrorCode::NoLeader,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

impl ClientError {
    /// Builds the error for a non-2xx answer from its status and body.
    ///
    /// Falls back to code `unknown` and the body text (or the status reason)
    /// when the body is not Concord's error JSON, so nothing the server said is lost.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            return Self::from_body(status, parsed);
        }
        let text = String::from_utf8_lossy(body).trim().to_owned();
        let message = if text.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map_or_else(|| format!("HTTP status {status}"), str::to_owned)
        } else {
            text
        };
        ClientError::Api {
            status,
            code: UNKNOWN_CODE.to_owned(),
            message,
            oldest_revision: None,
        }
    }

    /// Builds the error from an already parsed error body.
    pub fn from_body(status: u16, body: ErrorBody) -> Self {
        ClientError::Api {
            status,
            code: body.error.code,
            message: body.error.message,
            oldest_revision: body.error.oldest_revision,
        }
    }

    /// The documented HTTP status of an error code; used where no status travels
    /// with the error (errors sent inside a watch stream).
    pub(crate) fn status_for_code(code: &str) -> u16 {
        KNOWN_CODES
            .iter()
            .find(|c| c.as_str() == code)
            .map_or(500, |c| c.status())
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's message for API errors, else the full display text.
    ///
    /// What a CLI shows a person: the server already words its messages for humans.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// True when the server said the thing asked about does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("not_found")
    }

    /// True when a compare-and-swap (`?cas=R`) lost against a concurrent write.
    pub fn is_cas_failed(&self) -> bool {
        self.code() == Some("cas_failed")
    }

    /// True when the requested revision was compacted away; see `oldest_revision`.
    pub fn is_compacted(&self) -> bool {
        self.code() == Some("compacted")
    }

    /// True when the node had no leader or was otherwise temporarily unable to serve.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.code(), Some("no_leader" | "unavailable"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_error_json() {
        let body = br#"{"error":{"code":"compacted","message":"revision 3 was compacted","oldest_revision":42}}"#;
        match ClientError::from_response(410, body) {
            ClientError::Api {
                status,
                code,
                message,
                oldest_revision,
            } => {
                assert_eq!(status, 410);
                assert_eq!(code, "compacted");
                assert_eq!(message, "revision 3 was compacted");
                assert_eq!(oldest_revision, Some(42));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_error_json_with_field_and_predicates() {
        let body =
            br#"{"error":{"code":"cas_failed","message":"mod revision is 7","field":"cas"}}"#;
        let err = ClientError::from_response(409, body);
        assert!(err.is_cas_failed());
        assert!(!err.is_not_found());
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.message(), "mod revision is 7");
        assert_eq!(err.to_string(), "mod revision is 7 (cas_failed, HTTP 409)");
    }

    #[test]
    fn falls_back_on_non_json_bodies() {
        let err = ClientError::from_response(502, b"  bad gateway from proxy\n");
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.message(), "bad gateway from proxy");
        assert!(!err.is_not_found());

        let err = ClientError::from_response(404, b"");
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.message(), "Not Found");

        // JSON, but not the error shape.
        let err = ClientError::from_response(400, br#"{"oops":1}"#);
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.message(), r#"{"oops":1}"#);
    }

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(ClientError::status_for_code("compacted"), 410);
        assert_eq!(ClientError::status_for_code("no_leader"), 503);
        assert_eq!(ClientError::status_for_code("something_new"), 500);
        let err =
            ClientError::from_response(503, br#"{"error":{"code":"no_leader","message":"x"}}"#);
        assert!(err.is_unavailable());
    }
}
