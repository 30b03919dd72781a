//! Lease wire types. Lease ids travel as 16-digit lowercase hex strings.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/leases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseGrantRequest {
    pub ttl_secs: u32,
}

/// Answer to a grant or keepalive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub id: String,
    pub ttl_secs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// `GET /v1/leases/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub id: String,
    pub ttl_secs: u32,
    pub remaining_ms: u64,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Renders a lease id the way the API shows it.
pub fn format_lease_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Parses a lease id from the API's hex form; `None` when malformed or zero.
pub fn parse_lease_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|id| *id != 0)
}
