//! Request parsing that answers in the project's error shape: query parameters,
//! raw bodies with the size limit, and JSON bodies that name the offending field.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use concord_api::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string as ordered pairs; repeated names (like `tag`) are kept.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query().unwrap_or("")))
    }
}

impl Params {
    /// Parses `a=1&b=2`; `+` and percent escapes are decoded.
    pub fn parse(query: &str) -> Params {
        Params(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A flag: absent = false; present with no value, `true` or `1` = true.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("{name} must be true or false, got {other:?}"),
            )),
        }
    }

    /// An optional unsigned number.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("{name} must be a non-negative integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// An optional duration such as `30s`, `500ms`, `10m` (a bare number is seconds).
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        self.get(name)
            .map(|v| {
                if let Ok(secs) = v.parse::<u64>() {
                    return Ok(Duration::from_secs(secs));
                }
                humantime::parse_duration(v).map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("{name} must be a duration like 30s, 500ms or 5m, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// `?namespace=`, validated; `default` when absent.
    pub fn namespace(&self) -> Result<String, ApiError> {
        match self.get("namespace") {
            None | Some("") => Ok(concord_api::registry::DEFAULT_NAMESPACE.to_owned()),
            Some(ns) => {
                concord_api::validate::namespace(ns)?;
                Ok(ns.to_owned())
            }
        }
    }

    /// Whether the read may be served from local state (`consistency=stale`).
    pub fn stale(&self) -> Result<bool, ApiError> {
        match self.get("consistency") {
            None | Some("linearizable") | Some("default") => Ok(false),
            Some("stale") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                "consistency",
                format!("consistency must be linearizable or stale, got {other:?}"),
            )),
        }
    }
}

/// A raw request body, bounded by the server's body limit (413 past it).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status().as_u16() == 413 => Err(ApiError::new(
                ErrorCode::TooLarge,
                "the request body is larger than the server accepts (see max_body_bytes)",
            )),
            Err(e) => Err(ApiError::invalid("body", e.body_text())),
        }
    }
}

/// A JSON body; unknown fields and bad values are rejected naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, reporting the path of the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            backticked(&inner.to_string()).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        ApiError::invalid(&field, format!("invalid request body at {field}: {inner}"))
    })
}

/// serde names unknown and missing fields in backticks: `unknown field `x``.
fn backticked(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_api::registry::InstanceSpec;

    #[test]
    fn params_repeat_and_flags() {
        let p = Params::parse("tag=a&tag=b&prefix&raw=false&index=7&wait=30s");
        assert_eq!(p.all("tag"), vec!["a", "b"]);
        assert!(p.flag("prefix").unwrap());
        assert!(!p.flag("raw").unwrap());
        assert!(!p.flag("absent").unwrap());
        assert_eq!(p.u64("index").unwrap(), Some(7));
        assert_eq!(p.duration("wait").unwrap(), Some(Duration::from_secs(30)));
        assert!(Params::parse("index=-1").u64("index").is_err());
        assert!(Params::parse("wait=soon").duration("wait").is_err());
        assert!(Params::parse("prefix=maybe").flag("prefix").is_err());
        assert!(Params::parse("consistency=weird").stale().is_err());
        assert!(Params::parse("consistency=stale").stale().unwrap());
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<InstanceSpec>(br#"{"address":"a","port":"x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("port"));
        let e = parse_json::<InstanceSpec>(br#"{"address":"a","port":1,"bogus":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("bogus"));
        let e = parse_json::<InstanceSpec>(br#"{"address":"a"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("port"));
        let e = parse_json::<InstanceSpec>(b"{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        let e = parse_json::<InstanceSpec>(br#"{"address":"a","port":70000}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("port"));
    }
}
