//! The configuration center's server side: content validation, hashing, gray
//! matching; the endpoints are in `api/config.rs`.

pub(crate) mod format;
pub(crate) mod gray;

/// Milliseconds since the Unix epoch by this node's clock (0 if it is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 (UTC, milliseconds) of a time in ms since the Unix epoch.
pub(crate) fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
