//! Versioned binary snapshots of the replicated state.

use crate::history::HistoryLimits;
use crate::machine::StateMachine;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is empty or truncated")]
    Truncated,
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u8),
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

impl StateMachine {
    /// Serializes the replicated state (not the local event history): a format
    /// version byte, then the postcard encoding.
    pub fn snapshot(&self) -> Vec<u8> {
        todo!()
    }

    /// Rebuilds a state machine from `snapshot`; its history starts empty and
    /// compacted at the snapshot's revision.
    pub fn restore(bytes: &[u8], limits: HistoryLimits) -> Result<StateMachine, SnapshotError> {
        todo!()
    }
}
