//! The bounded event history that watches and blocking queries read.

use concord_api::config::{ConfigEventKind, ConfigFormat, GraySelector};
use concord_api::gateway::RouteEventKind;
use concord_api::registry::Instance;
use concord_api::watch::{KvEventKind, ServiceEventKind};
use serde::{Deserialize, Serialize};

use crate::config::ConfigKey;
use crate::machine::StateMachine;

/// How much history a node keeps; older revisions answer `compacted`.
///
/// Both bounds apply; whole revisions are dropped, oldest first, until both hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most events kept.
    pub max_events: usize,
    /// Most bytes kept, by `Event::approx_size`.
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
    /// The revision of the command that made the change.
    pub revision: u64,
    /// The change.
    pub kind: EventKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A key was written or deleted.
    Kv {
        /// Put or delete.
        kind: KvEventKind,
        /// The key.
        key: String,
        /// The new value for puts; empty for deletes.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// An instance was registered, updated or removed.
    Service {
        /// Why it changed.
        kind: ServiceEventKind,
        /// The service's namespace.
        namespace: String,
        /// Service name.
        service: String,
        /// The new instance, or the removed one for removals.
        instance: Instance,
    },
    /// A config item was published, deleted, or its gray release changed.
    Config {
        /// What happened.
        kind: ConfigEventKind,
        /// The item.
        key: ConfigKey,
        /// Its published version (after a publish: the new one).
        version: u64,
        /// Its format.
        format: ConfigFormat,
        /// The content watchers should use (the candidate for `gray`).
        content: String,
        /// Its hex SHA-256.
        sha256: String,
        /// When the change was proposed (ms since the Unix epoch).
        at_ms: u64,
        /// For gray events: which instances they concern.
        selector: Option<GraySelector>,
    },
    /// A gateway route was put or deleted.
    Route {
        /// Put or delete.
        kind: RouteEventKind,
        /// The route's name.
        name: String,
        /// The route as JSON (empty for deletes).
        json: String,
    },
}

/// Fixed per-event overhead in the byte estimate (revision, tags, allocation).
const EVENT_OVERHEAD: usize = 64;

impl Event {
    /// A cheap estimate of the event's memory, used for `HistoryLimits::max_bytes`:
    /// the variable-length strings plus a fixed overhead.
    pub fn approx_size(&self) -> usize {
        let variable = match &self.kind {
            EventKind::Kv { key, value, .. } => key.len().saturating_add(value.len()),
            EventKind::Service {
                namespace,
                service,
                instance,
                ..
            } => namespace
                .len()
                .saturating_add(service.len())
                .saturating_add(instance.id.len())
                .saturating_add(instance.address.len())
                .saturating_add(
                    instance
                        .checks
                        .iter()
                        .map(|c| c.id.len().saturating_add(c.output.len()))
                        .sum(),
                ),
            EventKind::Route { name, json, .. } => name.len().saturating_add(json.len()),
            EventKind::Config { key, content, .. } => key
                .namespace
                .len()
                .saturating_add(key.group.len())
                .saturating_add(key.id.len())
                .saturating_add(content.len()),
        };
        variable.saturating_add(EVENT_OVERHEAD)
    }
}

impl StateMachine {
    /// Appends one revision's events, then trims history back within limits.
    pub(crate) fn record(&mut self, revision: u64, events: Vec<EventKind>) {
        for kind in events {
            let event = Event { revision, kind };
            self.history_bytes = self.history_bytes.saturating_add(event.approx_size());
            self.history.push_back(event);
        }
        self.trim_history();
    }

    /// Drops the oldest revisions, whole, until both limits hold; the last dropped
    /// revision becomes the compaction point. Never splits a revision, so a watcher
    /// either sees all of a transaction or is told it was compacted.
    fn trim_history(&mut self) {
        while self.history.len() > self.limits.max_events
            || self.history_bytes > self.limits.max_bytes
        {
            let Some(oldest) = self.history.front().map(|e| e.revision) else {
                break;
            };
            while self.history.front().is_some_and(|e| e.revision == oldest) {
                if let Some(event) = self.history.pop_front() {
                    self.history_bytes = self.history_bytes.saturating_sub(event.approx_size());
                }
            }
            self.compacted = self.compacted.max(oldest);
        }
    }
}

#[cfg(test)]
mod tests;
