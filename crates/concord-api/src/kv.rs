//! Key-value wire types.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// A key as `GET /v1/kv/{key}` returns it.
///
/// `value` holds UTF-8 values; anything else comes as `value_base64` so JSON stays valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvItem {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
    pub lease: Option<String>,
}

impl KvItem {
    /// The value bytes, whichever field carried them.
    pub fn value_bytes(&self) -> Vec<u8> {
        match (&self.value, &self.value_base64) {
            (Some(v), _) => v.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// Splits value bytes into the (`value`, `value_base64`) pair used on the wire.
pub fn encode_value(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

/// `GET /v1/kv/{prefix}?prefix=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvList {
    pub revision: u64,
    pub items: Vec<KvItem>,
}

/// `GET /v1/kv/{prefix}?prefix=true&keys=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvKeys {
    pub revision: u64,
    pub keys: Vec<String>,
}

/// `DELETE /v1/kv/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub revision: u64,
    pub deleted: u64,
}
