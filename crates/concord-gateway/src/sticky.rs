//! Sticky sessions by cookie, as Envoy's cookie-based stateful sessions.
//!
//! A route with `sticky: {cookie, ttl_secs}` answers a request that carries
//! no valid cookie with `Set-Cookie: NAME=TOKEN; Path=/; Max-Age=TTL;
//! HttpOnly` (no `Max-Age` without `ttl_secs`: a session cookie), where
//! TOKEN stands for the endpoint that answered. A later request carrying it
//! goes to that endpoint while it is among its target's passing endpoints
//! (with a weight above zero, and not ejected by outlier detection);
//! otherwise it is picked as usual and gets a new cookie.
//!
//! The token is the endpoint id's XXH64 in hex: stable across gateways and
//! restarts, and it does not show instance ids to clients. It is not a
//! secret: a client can aim at any passing endpoint, as it could by trying.

use std::time::Duration;

use concord_balance::hash_key;
use http::HeaderValue;

/// A route's sticky-session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyConfig {
    /// The cookie's name.
    pub cookie: String,
    /// The cookie's lifetime; `None`: until the browser session ends.
    pub ttl: Option<Duration>,
}

impl StickyConfig {
    /// From a route's `sticky`.
    pub fn from_spec(spec: &concord_api::gateway::Sticky) -> Self {
        StickyConfig {
            cookie: spec.cookie.clone(),
            ttl: spec.ttl_secs.map(|s| Duration::from_secs(u64::from(s))),
        }
    }

    /// The `Set-Cookie` value pinning a client to the endpoint with `token`;
    /// `None` if the cookie name makes no valid header.
    pub fn set_cookie(&self, token: &str) -> Option<HeaderValue> {
        let max_age = self
            .ttl
            .map(|ttl| format!("; Max-Age={}", ttl.as_secs()))
            .unwrap_or_default();
        let value = format!("{}={token}; Path=/{max_age}; HttpOnly", self.cookie);
        HeaderValue::from_str(&value).ok()
    }
}

/// The cookie token standing for endpoint `id`.
pub fn token(id: &str) -> String {
    format!("{:016x}", hash_key(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_hex_and_differ_by_endpoint() {
        assert_eq!(token("a1"), token("a1"));
        assert_ne!(token("a1"), token("a2"));
        assert_eq!(token("a1").len(), 16);
        assert!(token("a1").bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn set_cookie_carries_path_max_age_and_http_only() {
        let spec = concord_api::gateway::Sticky {
            cookie: "srv".to_owned(),
            ttl_secs: Some(60),
        };
        let c = StickyConfig::from_spec(&spec);
        assert_eq!(
            c.set_cookie("00ff").unwrap(),
            "srv=00ff; Path=/; Max-Age=60; HttpOnly"
        );
        let session = StickyConfig { ttl: None, ..c };
        assert_eq!(
            session.set_cookie("00ff").unwrap(),
            "srv=00ff; Path=/; HttpOnly"
        );
    }
}
