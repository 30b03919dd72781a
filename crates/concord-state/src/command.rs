//! What can be proposed to the log, and what applying it answers.

use concord_api::registry::{Instance, InstanceSpec};
use concord_api::txn::{CompareOp, CompareTarget};
use serde::{Deserialize, Serialize};

use crate::kv::KvEntry;

/// A change to replicated state. Inputs are already validated by the server;
/// `apply` still refuses what would break an invariant (missing lease, failed CAS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Register or replace an instance. With `spec.ttl_secs` a fresh private lease is
    /// granted and bound to it (any previous private lease of the instance is dropped).
    Register {
        service: String,
        id: String,
        spec: InstanceSpec,
    },
    /// Remove an instance (and its private lease).
    Deregister { service: String, id: String },
    /// Write a key. `cas`: the mod_revision that must be current (0 = must not exist).
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<u64>,
        cas: Option<u64>,
    },
    /// Delete a key, or every key under a prefix. `cas` only applies to single keys.
    Delete {
        key: String,
        prefix: bool,
        cas: Option<u64>,
    },
    /// Compares, then one branch, atomically, under one revision.
    Txn {
        compare: Vec<Compare>,
        success: Vec<TxnOp>,
        failure: Vec<TxnOp>,
    },
    /// Grant a lease; the state machine picks the id.
    LeaseGrant { ttl_secs: u32 },
    /// Revoke a lease: everything bound to it is deleted (instances as `deregister`).
    LeaseRevoke { id: u64 },
    /// The leader saw a lease run out: like revoke, but instances go as `expire`.
    LeaseExpire { id: u64 },
}

/// One guard of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: String,
    pub target: CompareTarget,
    pub op: CompareOp,
    pub value: CompareValue,
}

/// The value side of a compare: bytes for `value`, a number for the revision targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareValue {
    Bytes(Vec<u8>),
    Number(u64),
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<u64>,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
        prefix: bool,
    },
}

/// What one transaction operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpOutcome {
    Put { key: String },
    Get { key: String, entry: Option<KvEntry> },
    Delete { key: String, deleted: u64 },
}

/// What applying a command produced. `revision` is the store revision after it
/// (unchanged when nothing changed, e.g. a transaction whose branch only reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Registered {
        revision: u64,
        instance: Instance,
        lease: Option<u64>,
    },
    Deregistered {
        revision: u64,
    },
    Put {
        revision: u64,
    },
    Deleted {
        revision: u64,
        deleted: u64,
    },
    Txn {
        revision: u64,
        succeeded: bool,
        results: Vec<TxnOpOutcome>,
    },
    LeaseGranted {
        revision: u64,
        id: u64,
        ttl_secs: u32,
    },
    LeaseRevoked {
        revision: u64,
    },
    /// The command was refused; nothing changed. Refusals are replicated results, not faults.
    Refused(StateError),
}

/// Why a command was refused. Deterministic, so every replica refuses alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StateError {
    #[error("compare-and-swap failed: the key's mod_revision is {current}")]
    CasFailed { current: u64 },
    #[error("lease {0:016x} not found")]
    LeaseNotFound(u64),
    #[error("instance {service}/{id} not found")]
    InstanceNotFound { service: String, id: String },
}
