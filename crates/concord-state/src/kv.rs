//! The key-value store.

use std::collections::btree_map;
use std::ops::Bound;

use concord_api::watch::KvEventKind;
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::history::EventKind;
use crate::machine::{Change, StateMachine};

/// A stored key, with the etcd-style bookkeeping clients use for CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The stored bytes. Encoded as one byte string: postcard writes the same bytes
    /// as for a sequence of u8, element by element, in a fraction of the time.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Revision that created the key (kept across overwrites, reset by delete).
    pub create_revision: u64,
    /// Revision of the last write; what CAS compares against.
    pub mod_revision: u64,
    /// Writes since creation, starting at 1.
    pub version: u64,
    /// The lease whose end deletes the key, if any.
    pub lease: Option<u64>,
}

impl StateMachine {
    /// Keys starting with `prefix`, in order, without scanning the keys before it.
    pub(crate) fn prefix_range<'a, 'p>(
        &'a self,
        prefix: &'p str,
    ) -> impl Iterator<Item = (&'a String, &'a KvEntry)> + use<'a, 'p> {
        let range: btree_map::Range<'a, String, KvEntry> = self
            .kv
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        range.take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// The CAS rule shared by put and delete: `Some(0)` means "must not exist",
    /// `Some(r)` means "must exist with mod_revision r".
    pub(crate) fn check_cas(&self, key: &str, cas: Option<u64>) -> Result<(), StateError> {
        let Some(expected) = cas else {
            return Ok(());
        };
        let current = self.kv.get(key).map_or(0, |e| e.mod_revision);
        if current == expected {
            Ok(())
        } else {
            Err(StateError::CasFailed { current })
        }
    }

    /// Refuses a binding to a lease that does not exist.
    pub(crate) fn check_lease(&self, lease: Option<u64>) -> Result<(), StateError> {
        match lease {
            Some(id) if !self.leases.contains_key(&id) => Err(StateError::LeaseNotFound(id)),
            _ => Ok(()),
        }
    }

    /// `Command::Put`: CAS, then lease, then the write.
    pub(crate) fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        lease: Option<u64>,
        cas: Option<u64>,
    ) -> Outcome {
        if let Err(e) = self
            .check_cas(&key, cas)
            .and_then(|()| self.check_lease(lease))
        {
            return Outcome::Refused(e);
        }
        let mut change = self.begin();
        self.kv_write(&mut change, key, value, lease);
        Outcome::Put {
            revision: self.commit(change),
        }
    }

    /// `Command::Delete`: one key (with optional CAS) or a whole prefix (CAS ignored).
    pub(crate) fn delete(&mut self, key: String, prefix: bool, cas: Option<u64>) -> Outcome {
        if !prefix && let Err(e) = self.check_cas(&key, cas) {
            return Outcome::Refused(e);
        }
        let mut change = self.begin();
        let deleted = self.kv_delete(&mut change, &key, prefix);
        Outcome::Deleted {
            revision: self.commit(change),
            deleted,
        }
    }

    /// Writes a key at `change.rev`, moving its lease binding. The lease must exist.
    pub(crate) fn kv_write(
        &mut self,
        change: &mut Change,
        key: String,
        value: Vec<u8>,
        lease: Option<u64>,
    ) {
        let rev = change.rev;
        let (create_revision, version, old_lease) = match self.kv.get(&key) {
            Some(old) => (
                old.create_revision,
                old.version.saturating_add(1),
                old.lease,
            ),
            None => (rev, 1, None),
        };
        if old_lease != lease {
            if let Some(old) = old_lease.and_then(|id| self.leases.get_mut(&id)) {
                old.keys.remove(&key);
            }
            if let Some(new) = lease.and_then(|id| self.leases.get_mut(&id)) {
                new.keys.insert(key.clone());
            }
        }
        change.emit(EventKind::Kv {
            kind: KvEventKind::Put,
            key: key.clone(),
            value: value.clone(),
        });
        self.kv.insert(
            key,
            KvEntry {
                value,
                create_revision,
                mod_revision: rev,
                version,
                lease,
            },
        );
    }

    /// Deletes `key`, or every key under it when `prefix`; returns how many went.
    pub(crate) fn kv_delete(&mut self, change: &mut Change, key: &str, prefix: bool) -> u64 {
        let keys: Vec<String> = if prefix {
            self.prefix_range(key).map(|(k, _)| k.clone()).collect()
        } else {
            vec![key.to_owned()]
        };
        let mut deleted = 0;
        for k in keys {
            if self.kv_remove(change, k) {
                deleted += 1;
            }
        }
        deleted
    }

    /// Removes one key and its lease binding; false if it was absent.
    pub(crate) fn kv_remove(&mut self, change: &mut Change, key: String) -> bool {
        let Some(entry) = self.kv.remove(&key) else {
            return false;
        };
        if let Some(lease) = entry.lease.and_then(|id| self.leases.get_mut(&id)) {
            lease.keys.remove(&key);
        }
        change.emit(EventKind::Kv {
            kind: KvEventKind::Delete,
            key,
            value: Vec::new(),
        });
        true
    }
}

#[cfg(test)]
mod tests;
