//! One node: writes are applied, acknowledged, and survive a restart.

use concord_raft::{Leadership, RaftNode};
use concord_state::Outcome;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_apply_and_survive_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_single(dir.path(), 10_000).await;

    let mut acknowledged = Vec::new();
    for i in 1..=50u64 {
        let key = format!("k/{i:03}");
        let outcome = node
            .propose(put(&key, &format!("v{i}")))
            .await
            .expect("propose");
        assert_eq!(
            outcome,
            Outcome::Put { revision: i },
            "one revision per write, in order"
        );
        acknowledged.push((key, format!("v{i}")));
    }
    node.read_barrier().await.expect("read barrier");
    for (key, value) in &acknowledged {
        assert_eq!(value_of(&node, key).as_deref(), Some(value.as_str()));
    }
    assert_eq!(revision_of(&node), 50);
    assert_eq!(*node.applied().borrow(), 50);

    // Index 0 is the initial membership, 1 the leader's blank entry, 2..=51 the writes.
    // Metrics trail the responses by a moment.
    wait_for("status to show the last write applied", || {
        node.status().applied_index == 51
    })
    .await;
    let status = node.status();
    assert_eq!(status.node_id, 1);
    assert_eq!(status.leader_id, Some(1));
    assert!(status.term >= 1);
    assert!(status.commit_index >= status.applied_index);
    assert_eq!(status.last_log_index, status.applied_index);
    assert_eq!(status.millis_since_leader_contact, Some(0));
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.members[0].id, 1);
    assert_eq!(status.members[0].client_addr, client_addr(1));
    assert!(status.members[0].voter);
    assert_eq!(
        *node.leadership().borrow(),
        Leadership {
            leader_id: Some(1),
            term: status.term
        }
    );
    let stats = node.write_stats();
    assert_eq!(stats.proposals, 50);
    assert_eq!(
        stats.proposal_batches, 50,
        "sequential proposals each get their own entry"
    );
    assert!(
        stats.log_appends >= 51 && stats.log_entries_appended >= 52,
        "{stats:?}"
    );

    node.shutdown().await.expect("shutdown");
    node.shutdown().await.expect("a second shutdown is a no-op");

    // Same data directory, fresh process state.
    let node = RaftNode::start(options(1, dir.path(), bind(0).await, 10_000))
        .await
        .expect("restart");
    node.initialize_single()
        .await
        .expect("initialize on an initialized node is a no-op");
    wait_for("the restarted node to lead", || node.is_leader()).await;
    node.read_barrier()
        .await
        .expect("read barrier after restart");
    for (key, value) in &acknowledged {
        assert_eq!(
            value_of(&node, key).as_deref(),
            Some(value.as_str()),
            "{key} lost"
        );
    }
    assert_eq!(
        revision_of(&node),
        50,
        "replay must not apply a write twice"
    );
    assert_eq!(
        node.propose(put("after", "restart"))
            .await
            .expect("propose"),
        Outcome::Put { revision: 51 }
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_watch_follows_the_revision() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_single(dir.path(), 10_000).await;
    let mut applied = node.applied();
    let start = *applied.borrow_and_update();

    let writer = node.clone();
    let write = tokio::spawn(async move { writer.propose(put("watched", "1")).await });
    let seen = tokio::time::timeout(DEADLINE, applied.wait_for(|rev| *rev > start))
        .await
        .expect("applied watch did not fire")
        .map(|rev| *rev)
        .expect("applied watch closed");
    assert_eq!(seen, start + 1);
    write.await.unwrap().expect("propose");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1, dir.path(), bind(0).await, 0);
    let err = RaftNode::start(opts)
        .await
        .err()
        .expect("snapshot_every = 0 must be refused");
    assert!(err.to_string().contains("snapshot_every"), "{err}");

    opts = options(1, dir.path(), bind(0).await, 10);
    opts.election_timeout = (opts.heartbeat_interval, opts.heartbeat_interval * 2);
    assert!(
        RaftNode::start(opts).await.is_err(),
        "election timeout must exceed the heartbeat"
    );
}
