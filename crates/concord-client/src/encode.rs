//! Percent-encoding of keys, path segments and query values.
//!
//! Keys are arbitrary strings that travel as the tail of the URL path, so every
//! byte except RFC 3986 "unreserved" characters (and `/`, which keeps keys
//! readable in logs) is percent-encoded; the server decodes them back.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters: safe for a single path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// As [`SEGMENT`], but `/` stays literal so hierarchical keys stay readable.
const KEY: &AsciiSet = &SEGMENT.remove(b'/');

/// Encodes one path segment (service name, instance id, lease id): `/` is encoded too,
/// so a value can never reach a different route.
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Encodes a KV key for the tail of `/v1/kv/{key}`.
///
/// Every byte except `A-Z a-z 0-9 - . _ ~ /` is percent-encoded. URL parsers
/// collapse `.` and `..` path segments (even percent-encoded ones), so a key
/// containing such a segment (`a/../b`) has all its `/` encoded as `%2F`
/// instead, which keeps it one literal segment that the server decodes back to
/// the same key. A key that is exactly `.` or `..` cannot be sent in a URL at all.
pub fn encode_key(key: &str) -> String {
    let has_dot_segment = key.split('/').any(|s| s == "." || s == "..");
    let set = if has_dot_segment { SEGMENT } else { KEY };
    utf8_percent_encode(key, set).to_string()
}

/// Encodes a query-string value. `/` stays literal (legal in a query); `+`, `&`,
/// `=`, `#` and spaces are encoded so form decoding on the server gets the exact value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, KEY).to_string()
}

/// A query string built pair by pair, with values encoded.
///
/// reqwest's own `.query()` sits behind a cargo feature; building the string
/// here keeps the dependency small and the encoding rules in one place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query(String);

impl Query {
    /// Appends `name=value` (value percent-encoded). Names are fixed ASCII identifiers.
    pub(crate) fn push(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        let _ = write!(self.0, "{name}={}", encode_query_value(&value.to_string()));
        self
    }

    /// Appends `name=value` only when a value is present.
    pub(crate) fn push_opt(
        &mut self,
        name: &str,
        value: Option<impl std::fmt::Display>,
    ) -> &mut Self {
        if let Some(v) = value {
            self.push(name, v);
        }
        self
    }

    /// The query including its leading `?`, or an empty string when there are no pairs.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_unreserved() {
        assert_eq!(encode_key("app/config/db"), "app/config/db");
        assert_eq!(encode_key("A-z_0.9~/x"), "A-z_0.9~/x");
    }

    #[test]
    fn keys_encode_everything_else() {
        assert_eq!(encode_key("a b"), "a%20b");
        assert_eq!(encode_key("a?b#c"), "a%3Fb%23c");
        assert_eq!(encode_key("100%"), "100%25");
        assert_eq!(encode_key("a+b=c&d"), "a%2Bb%3Dc%26d");
        assert_eq!(encode_key("dir\\file"), "dir%5Cfile");
        assert_eq!(encode_key("ключ"), "%D0%BA%D0%BB%D1%8E%D1%87");
        assert_eq!(encode_key("emoji/😀"), "emoji/%F0%9F%98%80");
        assert_eq!(encode_key(":@!$'()*,;"), "%3A%40%21%24%27%28%29%2A%2C%3B");
    }

    #[test]
    fn keys_with_dot_segments_become_one_segment() {
        assert_eq!(encode_key("a/../b"), "a%2F..%2Fb");
        assert_eq!(encode_key("a/./b"), "a%2F.%2Fb");
        assert_eq!(encode_key("a/.hidden/b"), "a/.hidden/b");
        assert_eq!(encode_key("a/.../b"), "a/.../b");
    }

    #[test]
    fn encoded_keys_survive_url_parsing() {
        for key in [
            "a/../b",
            "a/./b",
            "x y/z",
            "trailing/",
            "/leading",
            "a//b",
            "%2e%2e/x",
        ] {
            let url = reqwest::Url::parse(&format!("http://h/v1/kv/{}", encode_key(key))).unwrap();
            let tail = url.path().strip_prefix("/v1/kv/").unwrap();
            let decoded = percent_encoding::percent_decode_str(tail)
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, key, "url {url}");
        }
    }

    #[test]
    fn segments_encode_slashes() {
        assert_eq!(encode_segment("orders"), "orders");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert_eq!(encode_segment("host:8080"), "host%3A8080");
    }

    #[test]
    fn query_building() {
        let mut q = Query::default();
        assert_eq!(q.as_str(), "");
        q.push("prefix", "app/x y+z")
            .push("from_revision", 7u64)
            .push_opt("limit", None::<u64>)
            .push_opt("tag", Some("v2&x=1"));
        assert_eq!(
            q.as_str(),
            "?prefix=app/x%20y%2Bz&from_revision=7&tag=v2%26x%3D1"
        );
    }
}
