//! The state machine: apply, queries, history.

use std::collections::BTreeMap;

use crate::command::{Command, Outcome};
use crate::history::{Event, HistoryLimits};
use crate::kv::KvEntry;
use crate::lease::Lease;
use crate::registry::Service;

/// All replicated state of one node.
///
/// Equality compares the replicated data only (not the local event history), which
/// is what `restore(snapshot(s)) == s` and replica agreement are about.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) revision: u64,
    pub(crate) kv: BTreeMap<String, KvEntry>,
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) leases: BTreeMap<u64, Lease>,
    pub(crate) next_lease_id: u64,
    pub(crate) history: std::collections::VecDeque<Event>,
    pub(crate) history_bytes: usize,
    /// Events with revision <= this are gone; watches from before it get `compacted`.
    pub(crate) compacted: u64,
    pub(crate) limits: HistoryLimits,
}

impl StateMachine {
    /// An empty store at revision 0.
    pub fn new(limits: HistoryLimits) -> Self {
        todo!()
    }

    /// Applies one command deterministically. Refusals change nothing and return `Outcome::Refused`.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        todo!()
    }

    /// The current store revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One key.
    pub fn kv_get(&self, key: &str) -> Option<&KvEntry> {
        todo!()
    }

    /// Keys starting with `prefix`, sorted, at most `limit` of them.
    pub fn kv_range(&self, prefix: &str, limit: Option<usize>) -> Vec<(&str, &KvEntry)> {
        todo!()
    }

    /// Number of keys.
    pub fn kv_len(&self) -> usize {
        todo!()
    }

    /// Every service with at least one instance, sorted by name.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Service)> {
        std::iter::empty() // todo
    }

    /// One service, if it has instances.
    pub fn service(&self, name: &str) -> Option<&Service> {
        todo!()
    }

    /// The revision of the service's last change (0 if never changed).
    pub fn service_mod_revision(&self, name: &str) -> u64 {
        todo!()
    }

    /// Total instances across services.
    pub fn instance_count(&self) -> usize {
        todo!()
    }

    /// One lease.
    pub fn lease(&self, id: u64) -> Option<&Lease> {
        todo!()
    }

    /// All leases, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Events with revision > `after`, oldest first. `Err(oldest)` when events after
    /// `after` have been dropped from history; `oldest` is the oldest revision a
    /// watcher can still resume from (pass `from_revision = oldest - 1`... see docs).
    pub fn events_after(&self, after: u64) -> Result<impl Iterator<Item = &Event>, u64> {
        if after < self.compacted {
            return Err(self.compacted);
        }
        Ok(self.history.iter().filter(move |e| e.revision > after))
    }

    /// The compaction point: events at or below it are no longer retained.
    pub fn compacted_revision(&self) -> u64 {
        self.compacted
    }
}

impl PartialEq for StateMachine {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.kv == other.kv
            && self.services == other.services
            && self.leases == other.leases
            && self.next_lease_id == other.next_lease_id
    }
}
