//! The openraft type configuration: what the log carries and how members are addressed.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// How to reach a cluster member. Stored in the Raft membership, so every node
/// knows every peer's Raft address and, for forwarding writes, its client API address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Where the member serves Raft traffic, e.g. `127.0.0.1:7601`.
    pub peer_addr: String,
    /// Where the member serves the client API, e.g. `127.0.0.1:7600`.
    pub client_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={} client={}", self.peer_addr, self.client_addr)
    }
}

/// What one normal log entry carries.
///
/// openraft 0.9 appends (and fsyncs) each client write as its own entry, so the
/// proposer groups concurrent proposals into one `Batch`: one entry, one fsync, many
/// commands. The commands are applied in order, each with its own revision, exactly
/// as if they were consecutive entries. An enum so the log format can grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LogCommand {
    Batch(Vec<concord_state::Command>),
}

impl fmt::Display for LogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogCommand::Batch(cmds) => write!(f, "batch of {} commands", cmds.len()),
        }
    }
}

openraft::declare_raft_types!(
    /// Concord's Raft: an entry carries a batch of commands and answers with their
    /// outcomes, one per command (none for blank and membership entries).
    pub(crate) TypeConfig:
        D = LogCommand,
        R = Vec<concord_state::Outcome>,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log position (term, leader, index).
pub(crate) type LogId = openraft::LogId<u64>;
/// One log entry.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// A membership together with the log id that introduced it.
pub(crate) type StoredMembership = openraft::StoredMembership<u64, NodeInfo>;
/// Metadata openraft keeps with a snapshot.
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<u64, NodeInfo>;
/// A snapshot with its data.
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
/// The error type every storage method returns.
pub(crate) type StorageError = openraft::StorageError<u64>;
/// The running openraft instance.
pub(crate) type Raft = openraft::Raft<TypeConfig>;
