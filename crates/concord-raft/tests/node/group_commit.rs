//! Group commit: concurrent proposals share log entries and fsyncs.

use std::time::Instant;

use concord_raft::RaftNode;
use concord_state::Outcome;

use super::cluster::Cluster;
use super::support::*;

const PROPOSALS: u64 = 2000;
const TASKS: u64 = 64;

/// Proposes `PROPOSALS` puts from `TASKS` concurrent tasks; returns the elapsed time.
async fn drive(node: &RaftNode) -> std::time::Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (t..PROPOSALS).step_by(TASKS as usize) {
                match node.propose(put(&format!("k/{i}"), "v")).await {
                    Ok(Outcome::Put { revision }) => {
                        assert!(revision > last, "one task's writes apply in its order");
                        last = revision;
                    }
                    other => panic!("proposal {i}: {other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    started.elapsed()
}

/// Runs the load on `node` and reports how it mapped onto batches and fsyncs.
async fn measure(label: &str, node: &RaftNode) -> u64 {
    let before = node.write_stats();
    let elapsed = drive(node).await;
    let after = node.write_stats();
    let batches = after.proposal_batches - before.proposal_batches;
    eprintln!(
        "group commit ({label}): {PROPOSALS} proposals from {TASKS} tasks in {elapsed:.2?} = {:.0} writes/s; \
         {batches} batches ({:.1} commands/batch), {} appends of {} entries, {} fsyncs on this node",
        PROPOSALS as f64 / elapsed.as_secs_f64(),
        PROPOSALS as f64 / batches.max(1) as f64,
        after.log_appends - before.log_appends,
        after.log_entries_appended - before.log_entries_appended,
        after.log_syncs - before.log_syncs,
    );
    assert_eq!(after.proposals - before.proposals, PROPOSALS);
    // 64 writers keep the queue full: batches must carry several commands on average.
    assert!(
        batches * 4 <= PROPOSALS,
        "expected group commit, got {batches} batches for {PROPOSALS} proposals"
    );
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_share_appends() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_single(dir.path(), 10_000).await;
    measure("single node", &node).await;
    assert_eq!(revision_of(&node), PROPOSALS);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_share_appends_on_a_cluster() {
    init_tracing();
    let cluster = Cluster::start(10_000).await;
    let leader = cluster.agreed_leader().await;
    measure("3 nodes", cluster.node(leader)).await;
    cluster.converged(PROPOSALS).await;
    cluster.shutdown().await;
}
