//! The Raft log and vote in redb.
//!
//! Durability contract (openraft's, and ours): `save_vote`, `truncate` and `purge`
//! commit with `Durability::Immediate` before they return; `append` writes all of
//! its entries in one write transaction, commits it (one fsync) and only then
//! reports `LogFlushed`. The committed pointer is only remembered by
//! `save_committed` and written inside the next append's transaction: openraft
//! treats it as an optional hint, and a redb transaction of its own per applied
//! batch cost as much CPU as the append itself (measured under `bench/kv`).
//!
//! redb is blocking, so every call runs on tokio's blocking pool.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::codec;
use crate::type_config::{Entry, LogId, StorageError, TypeConfig};

/// Log entries by index; values are [`codec::encode`] of the entry.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// Small named records (vote, committed, last purged), postcard encoded.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// Counters of the log's disk work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogCounters {
    /// `append` calls, each one write transaction and one fsync.
    pub(crate) appends: u64,
    /// Entries written by those appends.
    pub(crate) entries: u64,
    /// Durable (fsynced) commits of any kind: appends, votes, truncations, purges.
    pub(crate) syncs: u64,
}

/// What the node reads from the store without touching redb.
#[derive(Debug, Default)]
pub(crate) struct LogShared {
    appends: AtomicU64,
    entries: AtomicU64,
    syncs: AtomicU64,
    /// Index of the last committed entry + 1 (0 = nothing committed yet).
    committed_next: AtomicU64,
}

impl LogShared {
    pub(crate) fn counters(&self) -> LogCounters {
        LogCounters {
            appends: self.appends.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    /// The index of the last committed entry this node knows of, if any.
    pub(crate) fn committed_index(&self) -> Option<u64> {
        self.committed_next.load(Ordering::Relaxed).checked_sub(1)
    }

    fn set_committed(&self, committed: Option<&LogId>) {
        let next = committed.map_or(0, |id| id.index + 1);
        self.committed_next.store(next, Ordering::Relaxed);
    }
}

/// The redb-backed `RaftLogStorage`; clones share the database (readers for replication).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    shared: Arc<LogShared>,
    /// The latest committed log id openraft reported, persisted with the next append.
    committed: Arc<std::sync::Mutex<Option<LogId>>>,
}

/// Why the log store could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Redb(#[from] redb::Error),
    #[error("stored committed log id is unreadable: {0}")]
    Decode(#[from] codec::CodecError),
}

impl LogStore {
    /// Opens (or creates) the redb file. Blocking: call from a blocking context.
    pub(crate) fn open(path: &Path) -> Result<LogStore, OpenError> {
        let db = Database::create(path).map_err(redb::Error::from)?;
        // Create the tables up front so read transactions never miss them.
        let txn = db.begin_write().map_err(redb::Error::from)?;
        txn.open_table(LOG).map_err(redb::Error::from)?;
        txn.open_table(META).map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;

        let mut store = LogStore {
            db: Arc::new(db),
            shared: Arc::new(LogShared::default()),
            committed: Default::default(),
        };
        let committed: Option<Option<LogId>> = store.read_meta_blocking(KEY_COMMITTED)?;
        let committed = committed.flatten();
        store.shared.set_committed(committed.as_ref());
        store.committed = Arc::new(std::sync::Mutex::new(committed));
        Ok(store)
    }

    /// Counters and the commit index, shared with the node.
    pub(crate) fn shared(&self) -> Arc<LogShared> {
        self.shared.clone()
    }

    /// Lets the node wait until every user of the database is gone (the file lock released).
    pub(crate) fn db_weak(&self) -> Weak<Database> {
        Arc::downgrade(&self.db)
    }

    fn read_meta_blocking<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, OpenError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(META).map_err(redb::Error::from)?;
        let Some(raw) = table.get(key).map_err(redb::Error::from)? else {
            return Ok(None);
        };
        Ok(Some(codec::decode(raw.value())?))
    }

    /// Runs `f` with the database on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, AnyError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, AnyError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| AnyError::error(format!("redb task failed: {e}")))?
    }

    async fn read_meta<T>(&self, key: &'static str) -> Result<Option<T>, AnyError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(any)?;
            let table = txn.open_table(META).map_err(any)?;
            let Some(raw) = table.get(key).map_err(any)? else {
                return Ok(None);
            };
            codec::decode(raw.value()).map(Some).map_err(any)
        })
        .await
    }

    /// Writes one META record in its own transaction.
    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: Durability,
    ) -> Result<(), AnyError> {
        let bytes = codec::encode(value).map_err(any)?;
        let shared = self.shared.clone();
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(any)?;
            txn.set_durability(durability).map_err(any)?;
            {
                let mut table = txn.open_table(META).map_err(any)?;
                table.insert(key, bytes.as_slice()).map_err(any)?;
            }
            txn.commit().map_err(any)?;
            if matches!(durability, Durability::Immediate) {
                shared.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .await
    }
}

fn any<E: std::error::Error + 'static>(e: E) -> AnyError {
    AnyError::new(&e)
}

fn owned_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = owned_bounds(&range);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(any)?;
            let table = txn.open_table(LOG).map_err(any)?;
            let mut entries = Vec::new();
            for item in table.range::<u64>(bounds).map_err(any)? {
                let (_, value) = item.map_err(any)?;
                entries.push(codec::decode::<Entry>(value.value()).map_err(any)?);
            }
            Ok(entries)
        })
        .await
        .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(any)?;
            let meta = txn.open_table(META).map_err(any)?;
            let last_purged_log_id: Option<LogId> = match meta.get(KEY_LAST_PURGED).map_err(any)? {
                Some(raw) => Some(codec::decode(raw.value()).map_err(any)?),
                None => None,
            };
            let log = txn.open_table(LOG).map_err(any)?;
            let last_log_id = match log.last().map_err(any)? {
                Some((_, raw)) => Some(codec::decode::<Entry>(raw.value()).map_err(any)?.log_id),
                None => last_purged_log_id,
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote, Durability::Immediate)
            .await
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(KEY_VOTE)
            .await
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Remembered only; the next append writes it (see the module docs).
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = committed;
        self.shared.set_committed(committed.as_ref());
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        // Loaded from disk at open, then kept current by `save_committed`.
        Ok(*self.committed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Encode on the async side; the blocking closure only touches redb.
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, any(e)))?;
            encoded.push((entry.log_id.index, bytes));
        }
        let count = encoded.len() as u64;
        let committed = *self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let committed = codec::encode(&committed).map_err(|e| StorageIOError::write(any(e)))?;
        self.blocking(move |db| {
            // One transaction for the whole batch: one fsync, and no hole if it fails.
            let txn = db.begin_write().map_err(any)?;
            {
                let mut table = txn.open_table(LOG).map_err(any)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice()).map_err(any)?;
                }
                let mut meta = txn.open_table(META).map_err(any)?;
                meta.insert(KEY_COMMITTED, committed.as_slice())
                    .map_err(any)?;
            }
            txn.commit().map_err(any)
        })
        .await
        .map_err(StorageIOError::write_logs)?;

        self.shared.appends.fetch_add(1, Ordering::Relaxed);
        self.shared.entries.fetch_add(count, Ordering::Relaxed);
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        // Only now is the batch on disk.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let shared = self.shared.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(any)?;
            {
                let mut table = txn.open_table(LOG).map_err(any)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(any)?;
            }
            txn.commit().map_err(any)?;
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let purged = codec::encode(&log_id).map_err(|e| StorageIOError::write_logs(any(e)))?;
        let shared = self.shared.clone();
        self.blocking(move |db| {
            // The purge pointer and the deletion commit together: a crash never leaves
            // entries missing below a pointer that does not cover them.
            let txn = db.begin_write().map_err(any)?;
            {
                let mut meta = txn.open_table(META).map_err(any)?;
                meta.insert(KEY_LAST_PURGED, purged.as_slice())
                    .map_err(any)?;
                let mut table = txn.open_table(LOG).map_err(any)?;
                table
                    .retain_in(..=log_id.index, |_, _| false)
                    .map_err(any)?;
            }
            txn.commit().map_err(any)?;
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(e).into())
    }
}
