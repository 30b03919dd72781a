//! Watch event wire types (the `data` of each SSE event).

use serde::{Deserialize, Serialize};

use crate::registry::Instance;

/// A change to a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEvent {
    pub revision: u64,
    #[serde(rename = "type")]
    pub kind: KvEventKind,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

/// Whether a key was written or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvEventKind {
    Put,
    Delete,
}

/// A change to a service's instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub revision: u64,
    #[serde(rename = "type")]
    pub kind: ServiceEventKind,
    #[serde(default = "crate::registry::default_namespace_name")]
    pub namespace: String,
    pub service: String,
    pub instance: Instance,
}

/// Why an instance changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceEventKind {
    Register,
    Update,
    Deregister,
    Expire,
}

/// Sent on idle streams so a watcher's revision stays current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub revision: u64,
    /// The serving node's own revision, present only when it is behind
    /// `revision` (the point the stream resumed from): a lagging node, or a
    /// store restored from an older backup, whose history is not the one the
    /// watcher followed. Watchers then re-read the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
}
