//! Three nodes on loopback: election, replication, redirects, failover, snapshot catch-up.

use std::collections::BTreeMap;
use std::path::Path;

use concord_raft::{NodeInfo, RaftNode};
use concord_state::Outcome;
use tempfile::TempDir;

use super::support::*;

/// Three nodes in one process, each with its own data directory and loopback port.
pub struct Cluster {
    dirs: Vec<TempDir>,
    addrs: Vec<String>,
    nodes: Vec<Option<RaftNode>>,
    snapshot_every: u64,
}

impl Cluster {
    /// Starts nodes 1..=3 and initializes the cluster through node 1.
    pub async fn start(snapshot_every: u64) -> Cluster {
        let mut dirs = Vec::new();
        let mut addrs = Vec::new();
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let dir = tempfile::tempdir().unwrap();
            let listener = bind(0).await;
            addrs.push(listener.local_addr().unwrap().to_string());
            let node = RaftNode::start(options(id, dir.path(), listener, snapshot_every))
                .await
                .expect("start");
            dirs.push(dir);
            nodes.push(Some(node));
        }
        let members: BTreeMap<u64, NodeInfo> = (1..=3u64)
            .map(|id| {
                let info = NodeInfo {
                    peer_addr: addrs[id as usize - 1].clone(),
                    client_addr: client_addr(id),
                };
                (id, info)
            })
            .collect();
        let cluster = Cluster {
            dirs,
            addrs,
            nodes,
            snapshot_every,
        };
        cluster
            .node(1)
            .initialize(members)
            .await
            .expect("initialize");
        cluster
    }

    pub fn node(&self, id: u64) -> &RaftNode {
        self.nodes[id as usize - 1]
            .as_ref()
            .expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &RaftNode> {
        self.nodes.iter().flatten()
    }

    /// Waits until every running node names the same leader, and returns it.
    pub async fn agreed_leader(&self) -> u64 {
        let mut leader = None;
        wait_for("the running nodes to agree on a leader", || {
            let seen: Vec<Option<u64>> = self.running().map(|n| n.status().leader_id).collect();
            leader = seen[0].filter(|l| seen.iter().all(|s| *s == Some(*l)));
            leader.is_some_and(|l| {
                self.nodes[l as usize - 1]
                    .as_ref()
                    .is_some_and(|n| n.is_leader())
            })
        })
        .await;
        leader.expect("leader")
    }

    /// Waits until every running node has applied revision `rev` and holds the same state.
    pub async fn converged(&self, rev: u64) {
        wait_for(&format!("every node to apply revision {rev}"), || {
            self.running().all(|n| revision_of(n) >= rev)
        })
        .await;
        let states: Vec<_> = self
            .running()
            .map(|n| n.state().read().expect("state lock").clone())
            .collect();
        assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas diverged");
    }

    pub async fn stop(&mut self, id: u64) {
        let node = self.nodes[id as usize - 1].take().expect("node is running");
        node.shutdown().await.expect("shutdown");
    }

    /// Restarts a stopped node on its data directory and its old peer address.
    pub async fn restart(&mut self, id: u64) {
        let idx = id as usize - 1;
        let port: u16 = self.addrs[idx].rsplit(':').next().unwrap().parse().unwrap();
        let listener = bind(port).await;
        let dir: &Path = self.dirs[idx].path();
        let node = RaftNode::start(options(id, dir, listener, self.snapshot_every))
            .await
            .expect("restart");
        self.nodes[idx] = Some(node);
    }

    pub async fn shutdown(mut self) {
        for id in 1..=3 {
            if self.nodes[id as usize - 1].is_some() {
                self.stop(id).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_redirect_and_fail_over() {
    init_tracing();
    let mut cluster = Cluster::start(10_000).await;
    let leader = cluster.agreed_leader().await;

    for i in 1..=20u64 {
        let outcome = cluster
            .node(leader)
            .propose(put(&format!("k/{i}"), "v"))
            .await
            .expect("propose");
        assert_eq!(outcome, Outcome::Put { revision: i });
    }
    cluster.converged(20).await;
    for n in cluster.running() {
        let status = n.status();
        assert_eq!(status.members.len(), 3);
        assert!(status.members.iter().all(|m| m.voter));
        assert_eq!(status.leader_id, Some(leader));
    }

    // A follower relays proposals to the leader and answers the leader's outcome.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let outcome = cluster
        .node(follower)
        .propose(put("relayed", "x"))
        .await
        .expect("a follower relays the proposal");
    assert_eq!(outcome, Outcome::Put { revision: 21 });
    assert!(
        cluster
            .node(leader)
            .state()
            .read()
            .unwrap()
            .kv_get("relayed")
            .is_some(),
        "applied on the leader"
    );
    // A follower's read barrier gets a read index from the leader and waits to
    // apply it: a write acknowledged by the leader just before is then visible locally.
    cluster
        .node(leader)
        .propose(put("fresh", "seen"))
        .await
        .expect("propose on the leader");
    cluster
        .node(follower)
        .read_barrier()
        .await
        .expect("follower read barrier");
    assert!(
        cluster
            .node(follower)
            .state()
            .read()
            .expect("state lock")
            .kv_get("fresh")
            .is_some(),
        "a linearizable read on the follower sees the acknowledged write"
    );
    wait_for("the follower to hear from the leader", || {
        cluster
            .node(follower)
            .status()
            .millis_since_leader_contact
            .is_some_and(|ms| ms < 5_000)
    })
    .await;
    assert!(value_of(cluster.node(follower), "nope").is_none());

    // Failover: the two survivors elect a new leader and keep every acknowledged write.
    let old_term = cluster.node(leader).status().term;
    cluster.stop(leader).await;
    let new_leader = cluster.agreed_leader().await;
    assert_ne!(new_leader, leader);
    assert!(cluster.node(new_leader).status().term > old_term);
    let outcome = cluster
        .node(new_leader)
        .propose(put("after", "failover"))
        .await
        .expect("propose");
    // 20 writes, "relayed", "fresh", then this one.
    assert_eq!(outcome, Outcome::Put { revision: 23 });
    cluster.converged(23).await;
    cluster
        .node(new_leader)
        .read_barrier()
        .await
        .expect("read barrier");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_by_snapshot() {
    init_tracing();
    let mut cluster = Cluster::start(10).await;
    let leader = cluster.agreed_leader().await;
    cluster
        .node(leader)
        .propose(put("first", "1"))
        .await
        .expect("propose");
    cluster.converged(1).await;

    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    cluster.stop(lagging).await;
    for i in 2..=120u64 {
        cluster
            .node(leader)
            .propose(put(&format!("k/{i}"), "v"))
            .await
            .expect("propose");
    }
    wait_for("the leader to purge past the lagging node's log", || {
        cluster
            .node(leader)
            .status()
            .purged_index
            .is_some_and(|p| p > 20)
    })
    .await;

    cluster.restart(lagging).await;
    cluster.converged(120).await;
    let status = cluster.node(lagging).status();
    assert!(
        status.snapshot_index.is_some(),
        "caught up through a snapshot: {status:?}"
    );
    assert_eq!(
        value_of(cluster.node(lagging), "k/120").as_deref(),
        Some("v")
    );
    cluster.shutdown().await;
}
