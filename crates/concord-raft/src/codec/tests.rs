use std::collections::{BTreeMap, BTreeSet};

use concord_api::registry::InstanceSpec;
use concord_state::Command;
use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, SnapshotSegmentId, Vote};

use super::*;
use crate::type_config::{Entry, LogCommand, NodeInfo, SnapshotMeta, StoredMembership, TypeConfig};

fn register(ttl_secs: Option<u32>) -> Command {
    let checks = serde_json::from_str(
        r#"[{"id":"http","type":"http","url":"http://10.0.0.1:8080/health"},{"id":"ttl","type":"ttl","ttl_secs":5}]"#,
    )
    .expect("checks");
    Command::Register {
        at: concord_state::InstanceRef::new("default", "web", "web-1"),
        spec: InstanceSpec {
            address: "10.0.0.1".to_string(),
            port: 8080,
            tags: vec!["a".to_string()],
            meta: BTreeMap::new(),
            weight: 100,
            ttl_secs,
            checks,
            healthy_threshold: Some(2),
            unhealthy_threshold: None,
            deregister_critical_after_secs: None,
        },
    }
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload,
    }
}

/// Commands with optional fields the API types skip when absent (in JSON) must
/// survive the log encoding, including when more data follows them.
#[test]
fn append_request_with_commands_round_trips() {
    let req = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![
            entry(
                1,
                EntryPayload::Normal(LogCommand::Batch(vec![register(None), register(Some(10))])),
            ),
            entry(
                2,
                EntryPayload::Normal(LogCommand::Batch(vec![register(None)])),
            ),
            entry(3, EntryPayload::Blank),
            entry(
                4,
                EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([1, 2])],
                    BTreeMap::from([
                        (
                            1,
                            NodeInfo {
                                peer_addr: "p1".into(),
                                client_addr: "c1".into(),
                            },
                        ),
                        (
                            2,
                            NodeInfo {
                                peer_addr: "p2".into(),
                                client_addr: "c2".into(),
                            },
                        ),
                    ]),
                )),
            ),
        ],
    };
    let bytes = encode(&req).unwrap();
    let back: AppendEntriesRequest<TypeConfig> = decode(&bytes).unwrap();
    assert_eq!(back.vote, req.vote);
    assert_eq!(back.entries, req.entries);
}

#[test]
fn snapshot_chunk_and_error_round_trip() {
    let req = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        meta: SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 40)),
            last_membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 0)),
                Membership::new(
                    vec![BTreeSet::from([1])],
                    BTreeMap::from([(
                        1,
                        NodeInfo {
                            peer_addr: "p".into(),
                            client_addr: "c".into(),
                        },
                    )]),
                ),
            ),
            snapshot_id: "2-1-40-0".to_string(),
        },
        offset: 0,
        data: vec![0, 1, 2, 255],
        done: true,
    };
    let back: InstallSnapshotRequest<TypeConfig> = decode(&encode(&req).unwrap()).unwrap();
    assert_eq!(back, req);

    let err: Result<(), RaftError<u64, InstallSnapshotError>> = Err(RaftError::APIError(
        InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: "a".into(),
                offset: 0,
            },
            got: SnapshotSegmentId {
                id: "b".into(),
                offset: 9,
            },
        }),
    ));
    let back: Result<(), RaftError<u64, InstallSnapshotError>> =
        decode(&encode(&err).unwrap()).unwrap();
    assert_eq!(back, err);
}
