//! openraft's storage conformance suite against the redb log store and the
//! state-machine adaptor.

use concord_state::HistoryLimits;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use crate::log_store::LogStore;
use crate::snapshot_files::SnapshotFiles;
use crate::state_machine::StateMachineStore;
use crate::type_config::TypeConfig;

/// Builds a fresh store pair in its own temporary directory (the guard keeps it alive).
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let io = |e: &dyn std::fmt::Display| {
            StorageError::from(openraft::StorageIOError::write(openraft::AnyError::error(
                e.to_string(),
            )))
        };
        let dir = tempfile::tempdir().map_err(|e| io(&e))?;
        let log = LogStore::open(&dir.path().join("raft.redb")).map_err(|e| io(&e))?;
        let (files, loaded) =
            SnapshotFiles::open(&dir.path().join("snapshots")).map_err(|e| io(&e))?;
        let (sm, _handles) = StateMachineStore::new(files, loaded, HistoryLimits::default(), None)
            .map_err(|e| io(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("storage conformance: {e}");
    }
}
