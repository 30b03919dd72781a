//! Wire types shared by the Concord server, the SDK and the CLI.
//!
//! Everything here is plain data (serde only, no I/O) so that the server and
//! every client agree on one definition of the HTTP/JSON contract.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod cluster;
pub mod config;
pub mod error;
pub mod expect_status;
pub mod gateway;
pub mod kv;
pub mod lease;
pub mod registry;
pub mod status;
pub mod transactions;
pub mod txn;
pub mod validate;
pub mod watch;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};

/// Header carrying the store revision a response reflects, on every response.
pub const INDEX_HEADER: &str = "X-Concord-Index";
/// Header carrying the key's mod revision on `?raw=true` KV reads.
pub const MOD_REVISION_HEADER: &str = "X-Concord-Mod-Revision";
/// Header naming the leader a stale read's node believes in.
pub const KNOWN_LEADER_HEADER: &str = "X-Concord-Known-Leader";
/// Header with milliseconds since a stale read's node last heard from the leader.
pub const LAST_CONTACT_HEADER: &str = "X-Concord-Last-Contact";

/// `host:port` or a URL, as a base URL without a trailing slash (`http://` when no
/// scheme is given): how the CLI, the SDK and joining nodes accept server addresses.
pub fn base_url(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base_urls() {
        assert_eq!(
            super::base_url("http://127.0.0.1:7610/"),
            "http://127.0.0.1:7610"
        );
        assert_eq!(super::base_url("127.0.0.1:7610"), "http://127.0.0.1:7610");
        assert_eq!(super::base_url(" https://h// "), "https://h");
    }
}
