//! The key-value store.

use serde::{Deserialize, Serialize};

/// A stored key, with the etcd-style bookkeeping clients use for CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// Writes since creation, starting at 1.
    pub version: u64,
    pub lease: Option<u64>,
}
