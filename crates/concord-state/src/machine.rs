//! The state machine: apply, queries, history.

use std::collections::{BTreeMap, VecDeque};

use crate::command::{Command, Outcome};
use crate::history::{Event, EventKind, HistoryLimits};
use crate::kv::KvEntry;
use crate::lease::Lease;
use crate::registry::{InstanceRecord, InstanceRef, Service};

/// All replicated state of one node.
///
/// Equality compares the replicated data only (not the local event history), which
/// is what `restore(snapshot(s)) == s` and replica agreement are about.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) revision: u64,
    pub(crate) kv: BTreeMap<String, KvEntry>,
    /// Services by (namespace, name).
    pub(crate) services: BTreeMap<(String, String), Service>,
    pub(crate) leases: BTreeMap<u64, Lease>,
    /// Config items by key.
    pub(crate) configs: crate::config::Configs,
    /// Gateway routes by name.
    pub(crate) routes: BTreeMap<String, crate::routes::RouteEntry>,
    pub(crate) next_lease_id: u64,
    /// Distributed transactions by id.
    pub(crate) txns: crate::transactions::Txns,
    /// Derived from `txns`; rebuilt on restore.
    pub(crate) txn_index: crate::transactions::TxnIndex,
    /// Term of the leader that appended the entry being applied, and its log index
    /// (set by the Raft glue before each entry; part of the log, so every replica
    /// sees the same).
    pub(crate) log_term: u64,
    pub(crate) log_index: u64,
    pub(crate) history: VecDeque<Event>,
    pub(crate) history_bytes: usize,
    /// Events with revision <= this are gone; watches from before it get `compacted`.
    pub(crate) compacted: u64,
    pub(crate) limits: HistoryLimits,
}

/// The change one command is building: the revision it will get if it changes
/// anything, and the events it has emitted so far.
///
/// Handlers validate first, then mutate through this, then `commit` it; so a
/// refusal never leaves half a change behind.
#[derive(Debug)]
pub(crate) struct Change {
    /// The revision every mutation of this command is stamped with.
    pub(crate) rev: u64,
    events: Vec<EventKind>,
    changed: bool,
}

impl Change {
    /// Records an event; emitting anything means the command changed state.
    pub(crate) fn emit(&mut self, kind: EventKind) {
        self.events.push(kind);
        self.changed = true;
    }

    /// Marks a change that has no event of its own (a lease grant or removal).
    pub(crate) fn touch(&mut self) {
        self.changed = true;
    }
}

impl StateMachine {
    /// An empty store at revision 0.
    pub fn new(limits: HistoryLimits) -> Self {
        StateMachine {
            revision: 0,
            kv: BTreeMap::new(),
            services: BTreeMap::new(),
            leases: BTreeMap::new(),
            configs: BTreeMap::new(),
            routes: BTreeMap::new(),
            next_lease_id: 1,
            txns: BTreeMap::new(),
            txn_index: Default::default(),
            log_term: 0,
            log_index: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            compacted: 0,
            limits,
        }
    }

    /// Applies one command deterministically. Refusals change nothing and return `Outcome::Refused`.
    ///
    /// A command that changes anything moves the revision up by exactly one, however
    /// many keys or instances it touches, and all its events carry that revision. A
    /// command that changes nothing leaves the revision where it was.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Register { at, spec } => self.register(at, spec),
            Command::Deregister { at } => self.deregister(at),
            Command::CheckStatus {
                at,
                check,
                status,
                output,
                expected,
            } => self.check_status(at, check, status, output, expected),
            Command::Maintenance { at, reason } => self.maintenance(at, reason),
            Command::ReapCritical { at, since } => self.reap_critical(at, since),
            Command::Put {
                key,
                value,
                lease,
                cas,
            } => self.put(key, value, lease, cas),
            Command::Delete { key, prefix, cas } => self.delete(key, prefix, cas),
            Command::Txn {
                compare,
                success,
                failure,
            } => self.txn(&compare, success, failure),
            Command::LeaseGrant { ttl_secs } => self.lease_grant(ttl_secs),
            Command::LeaseRevoke { id } => {
                self.lease_revoke(id, concord_api::watch::ServiceEventKind::Deregister)
            }
            Command::LeaseExpire { id } => {
                self.lease_revoke(id, concord_api::watch::ServiceEventKind::Expire)
            }
            Command::ConfigPublish {
                key,
                format,
                content,
                sha256,
                cas,
                meta,
            } => self.config_publish(key, format, content, sha256, cas, meta),
            Command::ConfigDelete { key, at_ms } => self.config_delete(key, at_ms),
            Command::ConfigRollback { key, version, meta } => {
                self.config_rollback(key, version, meta)
            }
            Command::ConfigGray {
                key,
                content,
                sha256,
                selector,
                at_ms,
            } => self.config_gray(key, content, sha256, selector, at_ms),
            Command::ConfigGrayPromote { key, meta } => self.config_gray_promote(key, meta),
            Command::ConfigGrayCancel { key, at_ms } => self.config_gray_cancel(key, at_ms),
            Command::RoutePut { name, json } => self.route_put(name, json),
            Command::RouteDelete { name } => self.route_delete(name),
            Command::Restore { snapshot } => self.restore_from(&snapshot),
            Command::TxnCreate { txn, at_ms } => self.txn_create(txn, at_ms),
            Command::TxnAdvance {
                id,
                term,
                at_ms,
                elapsed_ms,
                events,
            } => self.txn_advance(&id, term, at_ms, elapsed_ms, events),
            Command::TxnBranch { id, step, at_ms } => self.txn_branch(&id, step, at_ms),
            Command::TxnDecide {
                id,
                decision,
                at_ms,
            } => self.txn_decide(&id, decision, at_ms),
            Command::TxnForget { ids } => self.txn_forget(ids),
        }
    }

    /// Tells the machine where the entry about to be applied sits in the log: the
    /// term of the leader that appended it, and its index.
    ///
    /// Transactions use both: whatever a command starts belongs to the leader that
    /// put the command in the log (whichever node first received it), and a call
    /// marked running at an index the current leader did not append may already
    /// have been sent, so the leader's driver makes the next attempt instead.
    pub fn set_log_position(&mut self, term: u64, index: u64) {
        self.log_term = term;
        self.log_index = index;
    }

    /// Starts a change stamped with the next revision.
    ///
    /// Saturates at `u64::MAX`, which 2^64 commands never reach; it keeps a crafted
    /// snapshot from making `apply` overflow.
    pub(crate) fn begin(&self) -> Change {
        Change {
            rev: self.revision.saturating_add(1),
            events: Vec::new(),
            changed: false,
        }
    }

    /// Ends a change: if it changed anything the revision moves to `change.rev` and
    /// its events enter history. Returns the revision the command's outcome reports.
    pub(crate) fn commit(&mut self, change: Change) -> u64 {
        if change.changed {
            self.revision = change.rev;
            self.record(change.rev, change.events);
        }
        self.revision
    }

    /// The current store revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One key.
    pub fn kv_get(&self, key: &str) -> Option<&KvEntry> {
        self.kv.get(key)
    }

    /// Keys starting with `prefix`, sorted, at most `limit` of them.
    ///
    /// Walks the ordered map from `prefix` onwards, so the cost follows the answer,
    /// not the store size.
    pub fn kv_range(&self, prefix: &str, limit: Option<usize>) -> Vec<(&str, &KvEntry)> {
        self.prefix_range(prefix)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(k, e)| (k.as_str(), e))
            .collect()
    }

    /// Number of keys.
    pub fn kv_len(&self) -> usize {
        self.kv.len()
    }

    /// Namespaces with at least one instance, and `default` always, sorted.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .services
            .iter()
            .filter(|(_, s)| !s.instances.is_empty())
            .map(|((ns, _), _)| ns.as_str())
            .collect();
        names.push(concord_api::registry::DEFAULT_NAMESPACE);
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether `namespace` has any service record, even an emptied one.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespace_range(namespace).next().is_some()
    }

    /// Every service of `namespace` with at least one instance, sorted by name.
    ///
    /// Emptied services are kept internally (for `service_mod_revision`) but not listed.
    pub fn services<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Service)> + 'a {
        self.namespace_range(namespace)
            .filter(|(_, s)| !s.instances.is_empty())
            .map(|((_, name), s)| (name.as_str(), s))
    }

    fn namespace_range<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Service)> + 'a {
        self.services
            .range((namespace.to_owned(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
    }

    /// One service, if it has instances.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .get(&(namespace.to_owned(), name.to_owned()))
            .filter(|s| !s.instances.is_empty())
    }

    /// One instance, with the private lease keeping it alive if it is ephemeral.
    pub fn instance(&self, namespace: &str, service: &str, id: &str) -> Option<&InstanceRecord> {
        self.services
            .get(&(namespace.to_owned(), service.to_owned()))?
            .instances
            .get(id)
    }

    /// Instances with health checks or a reaping delay, for the health checkers and
    /// the reaper; skips the others without allocating.
    pub fn instances_with_health(&self) -> impl Iterator<Item = (InstanceRef, &InstanceRecord)> {
        self.services.iter().flat_map(|((ns, name), s)| {
            s.instances
                .iter()
                .filter(|(_, r)| {
                    !r.health.checks.is_empty() || r.health.deregister_critical_after_secs.is_some()
                })
                .map(move |(id, r)| (InstanceRef::new(ns, name, id), r))
        })
    }

    /// Every instance everywhere.
    pub fn all_instances(&self) -> impl Iterator<Item = (InstanceRef, &InstanceRecord)> {
        self.services.iter().flat_map(|((ns, name), s)| {
            s.instances
                .iter()
                .map(move |(id, r)| (InstanceRef::new(ns, name, id), r))
        })
    }

    /// The revision of the service's last change (0 if never changed).
    ///
    /// Still answers after the last instance is gone, so a blocking query on the
    /// service wakes up for its removal.
    pub fn service_mod_revision(&self, namespace: &str, name: &str) -> u64 {
        self.services
            .get(&(namespace.to_owned(), name.to_owned()))
            .map_or(0, |s| s.mod_revision)
    }

    /// Total instances across namespaces and services.
    pub fn instance_count(&self) -> usize {
        self.services.values().map(|s| s.instances.len()).sum()
    }

    /// Services with at least one instance, across namespaces.
    pub fn service_count(&self) -> usize {
        self.services
            .values()
            .filter(|s| !s.instances.is_empty())
            .count()
    }

    /// One lease.
    pub fn lease(&self, id: u64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// All leases, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Events with revision > `after`, oldest first.
    ///
    /// `Err(compacted)` when some of those events have been dropped from history:
    /// `compacted` is the lowest `after` that can still be answered, so a watcher
    /// must resync (re-read state) and resume from there.
    pub fn events_after(&self, after: u64) -> Result<impl Iterator<Item = &Event>, u64> {
        if after < self.compacted {
            return Err(self.compacted);
        }
        // History is ordered by revision: skip the old part without scanning it.
        let start = self.history.partition_point(|e| e.revision <= after);
        Ok(self.history.range(start..))
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
            && self.configs == other.configs
            && self.routes == other.routes
            && self.next_lease_id == other.next_lease_id
            && self.txns == other.txns
    }
}
