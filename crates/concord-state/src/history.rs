//! The bounded event history that watches and blocking queries read.

use concord_api::registry::Instance;
use concord_api::watch::{KvEventKind, ServiceEventKind};
use serde::{Deserialize, Serialize};

/// How much history a node keeps; older revisions answer `compacted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_events: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

/// One change, stamped with the revision that made it. Several events may share a
/// revision (a transaction, a prefix delete, a lease revoke).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: u64,
    pub kind: EventKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Kv {
        kind: KvEventKind,
        key: String,
        /// The new value for puts; empty for deletes.
        value: Vec<u8>,
    },
    Service {
        kind: ServiceEventKind,
        service: String,
        instance: Instance,
    },
}
