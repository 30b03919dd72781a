//! Snapshots: taken every N entries, the log purged behind them, reloaded on restart.

use concord_raft::RaftNode;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_purges_the_log_and_restores_on_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_single(dir.path(), 10).await;

    for i in 1..=100u64 {
        node.propose(put(&format!("k/{i:03}"), &format!("v{i}")))
            .await
            .expect("propose");
    }
    let snapshot_file = dir.path().join("snapshots").join("current.snapshot");
    wait_for("a snapshot and a purge past index 50", || {
        let s = node.status();
        snapshot_file.exists()
            && s.snapshot_index.is_some_and(|i| i >= 90)
            && s.purged_index.is_some_and(|i| i >= 50)
    })
    .await;
    let before = node.status();
    node.shutdown().await.expect("shutdown");

    let node = RaftNode::start(options(1, dir.path(), bind(0).await, 10))
        .await
        .expect("restart");
    // Before any election, the snapshot is already loaded (index 99 holds write 98).
    assert!(
        revision_of(&node) >= 98,
        "restart must start from the snapshot: revision {} vs {before:?}",
        revision_of(&node)
    );
    node.initialize_single().await.expect("no-op initialize");
    wait_for("the restarted node to lead", || node.is_leader()).await;
    node.read_barrier().await.expect("read barrier");
    for i in 1..=100u64 {
        assert_eq!(
            value_of(&node, &format!("k/{i:03}")),
            Some(format!("v{i}")),
            "k/{i:03}"
        );
    }
    assert_eq!(revision_of(&node), 100);
    node.shutdown().await.expect("shutdown");
}
