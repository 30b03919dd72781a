use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, LogId, Membership};

use super::*;
use crate::type_config::{NodeInfo, StoredMembership};

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
        last_membership: StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(1, 1), 0)),
            Membership::new(
                vec![BTreeSet::from([1])],
                BTreeMap::from([(1, NodeInfo::default())]),
            ),
        ),
        snapshot_id: format!("s{index}"),
    }
}

#[test]
fn save_then_reopen_loads_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (files, loaded) = SnapshotFiles::open(dir.path()).unwrap();
    assert!(loaded.is_none());
    assert!(files.save(&meta(10), b"ten").unwrap());
    assert!(files.save(&meta(20), b"twenty").unwrap());
    drop(files);

    let (_files, loaded) = SnapshotFiles::open(dir.path()).unwrap();
    let loaded = loaded.expect("a snapshot");
    assert_eq!(loaded.meta, meta(20));
    assert_eq!(loaded.data, b"twenty");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from(FILE_NAME)],
        "only the newest is kept"
    );
}

#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = SnapshotFiles::open(dir.path()).unwrap();
    assert!(files.save(&meta(20), b"twenty").unwrap());
    assert!(!files.save(&meta(10), b"ten").unwrap());
    assert_eq!(files.load().unwrap().unwrap().data, b"twenty");
}

#[test]
fn leftovers_are_removed_and_torn_files_rejected() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(TMP_NAME), b"half a snapshot").unwrap();
    let (files, loaded) = SnapshotFiles::open(dir.path()).unwrap();
    assert!(loaded.is_none());
    assert!(!dir.path().join(TMP_NAME).exists());

    files.save(&meta(5), b"five").unwrap();
    let path = dir.path().join(FILE_NAME);
    let full = fs::read(&path).unwrap();
    fs::write(&path, &full[..full.len() - 1]).unwrap();
    let err = files.load().err().expect("truncated file must not load");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}
