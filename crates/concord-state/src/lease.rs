//! Leases: what is bound to each. Deadlines are not here: they live in the leader's memory.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A granted lease and what it keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: u64,
    pub ttl_secs: u32,
    pub keys: BTreeSet<String>,
    /// (service, instance id) pairs registered as ephemeral under this lease.
    pub instances: BTreeSet<(String, String)>,
}
