//! Leases: what is bound to each. Deadlines are not here: they live in the leader's memory.

use std::collections::BTreeSet;

use concord_api::watch::ServiceEventKind;
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::machine::{Change, StateMachine};
use crate::registry::InstanceRef;

/// A granted lease and what it keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Handed out in order from 1, never reused.
    pub id: u64,
    /// Time to live the leader's timers use; not enforced here.
    pub ttl_secs: u32,
    /// Keys deleted when the lease ends.
    pub keys: BTreeSet<String>,
    /// Instances registered as ephemeral under this lease.
    pub instances: BTreeSet<InstanceRef>,
}

impl StateMachine {
    /// `Command::LeaseGrant`: a new lease with nothing bound, one revision.
    pub(crate) fn lease_grant(&mut self, ttl_secs: u32) -> Outcome {
        let mut change = self.begin();
        let id = self.grant_lease(&mut change, ttl_secs);
        Outcome::LeaseGranted {
            revision: self.commit(change),
            id,
            ttl_secs,
        }
    }

    /// `Command::LeaseRevoke` / `LeaseExpire`: everything bound goes under one
    /// revision; instances leave with `kind` (deregister or expire).
    pub(crate) fn lease_revoke(&mut self, id: u64, kind: ServiceEventKind) -> Outcome {
        if !self.leases.contains_key(&id) {
            return Outcome::Refused(StateError::LeaseNotFound(id));
        }
        let mut change = self.begin();
        self.release_lease(&mut change, id, kind);
        Outcome::LeaseRevoked {
            revision: self.commit(change),
        }
    }

    /// Creates a lease with the next id.
    ///
    /// Ids are handed out in order so every replica picks the same one. The counter
    /// saturates rather than overflow; 2^64 grants never happen.
    pub(crate) fn grant_lease(&mut self, change: &mut Change, ttl_secs: u32) -> u64 {
        let id = self.next_lease_id;
        self.next_lease_id = id.saturating_add(1);
        self.leases.insert(
            id,
            Lease {
                id,
                ttl_secs,
                keys: BTreeSet::new(),
                instances: BTreeSet::new(),
            },
        );
        change.touch();
        id
    }

    /// Removes a lease and deletes everything still bound to it: keys (as KV
    /// deletes) then instances (as `kind`). A lease never outlives its removal
    /// with things pointing at it. No-op if the lease is absent.
    pub(crate) fn release_lease(&mut self, change: &mut Change, id: u64, kind: ServiceEventKind) {
        let Some(lease) = self.leases.remove(&id) else {
            return;
        };
        change.touch();
        for key in lease.keys {
            self.kv_remove(change, key);
        }
        for at in lease.instances {
            self.remove_instance(change, &at, kind);
        }
    }
}

#[cfg(test)]
mod tests;
