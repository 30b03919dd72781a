//! Membership: static bootstrap on every node, client addresses through
//! `/raft/info`, learners promoted automatically, removal, dial overrides.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use concord_raft::{MembershipError, NodeInfo, ProposeError, RaftNode};
use tempfile::TempDir;

use super::support::*;

/// Nodes started in this process, by id, with their data directories.
#[derive(Default)]
struct Nodes {
    dirs: Vec<TempDir>,
    nodes: BTreeMap<u64, RaftNode>,
    peer_addrs: BTreeMap<u64, String>,
}

impl Nodes {
    /// Starts node `id` on a fresh directory and port, uninitialized.
    async fn start(&mut self, id: u64, routes: HashMap<u64, String>) -> &RaftNode {
        let dir = tempfile::tempdir().unwrap();
        let listener = bind(0).await;
        self.peer_addrs
            .insert(id, listener.local_addr().unwrap().to_string());
        let mut opts = options(id, dir.path(), listener, 10_000);
        opts.peer_routes = routes;
        let node = RaftNode::start(opts).await.expect("start");
        self.dirs.push(dir);
        self.nodes.insert(id, node);
        &self.nodes[&id]
    }

    fn node(&self, id: u64) -> &RaftNode {
        &self.nodes[&id]
    }

    fn info(&self, id: u64) -> NodeInfo {
        NodeInfo {
            peer_addr: self.peer_addrs[&id].clone(),
            client_addr: client_addr(id),
        }
    }

    /// Bootstraps every started node with the same map, concurrently, as
    /// `--initial-cluster` does.
    async fn bootstrap_all(&self, members: BTreeMap<u64, NodeInfo>) {
        let inits = self
            .nodes
            .values()
            .map(|n| {
                let (n, members) = (n.clone(), members.clone());
                async move { n.initialize_static(members).await }
            })
            .collect::<Vec<_>>();
        for r in futures_join_all(inits).await {
            r.expect("initialize");
        }
    }

    async fn agreed_leader(&self) -> u64 {
        let mut leader = None;
        wait_for("the nodes to agree on a leader", || {
            let seen: Vec<Option<u64>> =
                self.nodes.values().map(|n| n.status().leader_id).collect();
            leader = seen[0].filter(|l| seen.iter().all(|s| *s == Some(*l)));
            leader.is_some_and(|l| self.nodes.get(&l).is_some_and(|n| n.is_leader()))
        })
        .await;
        leader.expect("leader")
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).expect("running");
        node.shutdown().await.expect("shutdown");
    }

    async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Awaits all futures concurrently (no extra dependency for `join_all`).
async fn futures_join_all<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

fn voters(node: &RaftNode) -> Vec<u64> {
    node.status()
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect()
}

fn member_ids(node: &RaftNode) -> Vec<u64> {
    node.status().members.iter().map(|m| m.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_bootstrap_join_promote_remove() {
    init_tracing();
    let mut nodes = Nodes::default();
    for id in 1..=3 {
        nodes.start(id, HashMap::new()).await;
    }
    // What `--initial-cluster` gives every node: peer addresses only.
    let members: BTreeMap<u64, NodeInfo> = (1..=3)
        .map(|id| {
            let info = NodeInfo {
                peer_addr: nodes.peer_addrs[&id].clone(),
                client_addr: String::new(),
            };
            (id, info)
        })
        .collect();
    nodes.bootstrap_all(members.clone()).await;
    let leader = nodes.agreed_leader().await;
    // Initializing again (a restart with the same flags) is a no-op.
    nodes.node(leader).initialize(members).await.expect("again");

    // Client addresses are not in the membership; /raft/info supplies them.
    for n in nodes.nodes.values() {
        for id in 1..=3 {
            assert_eq!(n.client_addr_of(id).await, Some(client_addr(id)), "{id}");
        }
        assert_eq!(n.leader_client_addr().await, Some(client_addr(leader)));
        assert_eq!(n.client_addr_of(99).await, None);
    }
    for n in nodes.nodes.values() {
        let st = n.status();
        assert_eq!(st.membership_index, Some(0));
        for m in &st.members {
            assert_eq!(m.client_addr, client_addr(m.id), "status uses the cache");
        }
    }
    nodes
        .node(leader)
        .propose(put("k", "1"))
        .await
        .expect("propose");
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert!(
        nodes.node(follower).propose(put("k", "2")).await.is_ok(),
        "a follower relays proposals to the leader"
    );

    // Refusals.
    let l = nodes.node(leader).clone();
    let invalid = |r: Result<(), MembershipError>| matches!(r, Err(MembershipError::Invalid(_)));
    assert!(invalid(l.add_learner(0, nodes.info(1), false).await));
    let mut moved = nodes.info(1);
    moved.peer_addr = "127.0.0.1:9".to_owned();
    assert!(invalid(l.add_learner(1, moved, false).await));
    let mut taken = nodes.info(1);
    taken.client_addr = client_addr(9);
    let err = l.add_learner(9, taken, false).await.unwrap_err();
    assert!(
        err.to_string().contains("already belongs to node 1"),
        "{err}"
    );
    assert_eq!(
        l.remove_member(9).await,
        Err(MembershipError::UnknownMember(9))
    );
    assert_eq!(l.promote(9).await, Err(MembershipError::UnknownMember(9)));
    assert!(matches!(
        nodes.node(follower).remove_member(leader).await,
        Err(MembershipError::Raft(ProposeError::NotLeader { leader_id: Some(id), .. })) if id == leader
    ));

    // Join: an uninitialized node added as a learner is promoted once caught up.
    nodes.start(4, HashMap::new()).await;
    assert!(!nodes.node(4).is_initialized().await.unwrap());
    l.add_learner(4, nodes.info(4), false)
        .await
        .expect("add learner");
    wait_for("node 4 to be promoted to voter", || voters(&l).contains(&4)).await;
    wait_for("node 4 to apply the writes so far", || {
        value_of(nodes.node(4), "k").as_deref() == Some("2")
    })
    .await;
    assert!(nodes.node(4).is_initialized().await.unwrap());
    // Re-adding at the same address is accepted without a change (retried joins).
    l.add_learner(4, nodes.info(4), true).await.expect("re-add");

    // Blocking add, then explicit promotion.
    nodes.start(5, HashMap::new()).await;
    tokio::time::timeout(DEADLINE, l.add_learner(5, nodes.info(5), true))
        .await
        .expect("caught up in time")
        .expect("add learner 5");
    l.promote(5).await.expect("promote");
    assert!(voters(&l).contains(&5));
    assert_eq!(voters(&l).len(), 5);

    // A learner that never catches up stays a learner and can be removed.
    let ghost = NodeInfo {
        peer_addr: "127.0.0.1:9".to_owned(),
        client_addr: client_addr(6),
    };
    l.add_learner(6, ghost, false).await.expect("add ghost");
    assert!(member_ids(&l).contains(&6) && !voters(&l).contains(&6));
    l.remove_member(6).await.expect("remove learner");

    // Remove two voters; the three left keep committing.
    l.remove_member(5).await.expect("remove 5");
    nodes.stop(5).await;
    l.remove_member(4).await.expect("remove 4");
    nodes.stop(4).await;
    for n in nodes.nodes.values() {
        wait_for("the removal to reach every node", || {
            member_ids(n) == vec![1, 2, 3]
        })
        .await;
    }
    l.propose(put("after", "removal")).await.expect("propose");
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_routes_override_membership_addresses() {
    init_tracing();
    // Reserve the real ports first so every node can be given routes to all.
    let listeners = vec![bind(0).await, bind(0).await, bind(0).await];
    let real: HashMap<u64, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap().to_string()))
        .collect();
    // The membership names addresses where nothing listens; only the routes work.
    let members: BTreeMap<u64, NodeInfo> = (1..=3)
        .map(|id| {
            let info = NodeInfo {
                peer_addr: format!("127.0.0.1:{id}"),
                client_addr: String::new(),
            };
            (id, info)
        })
        .collect();
    let mut nodes = Nodes::default();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(id, dir.path(), listener, 10_000);
        opts.advertise_peer_addr = members[&id].peer_addr.clone();
        opts.peer_routes = real.clone();
        nodes
            .nodes
            .insert(id, RaftNode::start(opts).await.expect("start"));
        nodes.dirs.push(dir);
    }
    nodes.bootstrap_all(members).await;
    let leader = nodes.agreed_leader().await;
    nodes
        .node(leader)
        .propose(put("routed", "yes"))
        .await
        .expect("propose");
    for n in nodes.nodes.values() {
        wait_for("the write to replicate over the routes", || {
            value_of(n, "routed").is_some()
        })
        .await;
        for id in 1..=3 {
            assert_eq!(n.client_addr_of(id).await, Some(client_addr(id)));
        }
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_keeps_its_last_voter() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_single(dir.path(), 10_000).await;
    assert_eq!(
        node.remove_member(1).await,
        Err(MembershipError::Invalid(
            "node 1 is the last voter; a cluster cannot remove its last voter".to_owned()
        ))
    );
    // An unreachable learner does not count toward the quorum.
    let ghost = NodeInfo {
        peer_addr: "127.0.0.1:9".to_owned(),
        client_addr: client_addr(2),
    };
    node.add_learner(2, ghost, false).await.expect("add");
    tokio::time::timeout(Duration::from_secs(10), node.propose(put("k", "v")))
        .await
        .expect("commits without the learner")
        .expect("propose");
    assert_eq!(voters(&node), vec![1]);
    node.remove_member(2).await.expect("remove learner");
    assert_eq!(member_ids(&node), vec![1]);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_static_member_does_not_disrupt_the_leader() {
    init_tracing();
    // Node 3's port is known but nothing listens there yet.
    let listeners = vec![bind(0).await, bind(0).await, bind(0).await];
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let members: BTreeMap<u64, NodeInfo> = (1..=3u64)
        .map(|id| {
            let info = NodeInfo {
                peer_addr: addrs[id as usize - 1].clone(),
                client_addr: String::new(),
            };
            (id, info)
        })
        .collect();
    let mut listeners = listeners.into_iter();
    let mut nodes = Nodes::default();
    for id in 1..=2u64 {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(id, dir.path(), listeners.next().unwrap(), 10_000);
        nodes
            .nodes
            .insert(id, RaftNode::start(opts).await.expect("start"));
        nodes.dirs.push(dir);
    }
    drop(listeners);
    nodes.bootstrap_all(members.clone()).await;
    let leader = nodes.agreed_leader().await;
    let before = nodes.node(leader).status().term;
    nodes
        .node(leader)
        .propose(put("early", "1"))
        .await
        .expect("propose");

    // Node 3 comes up later with the same list: it finds the cluster formed and
    // waits for the leader rather than campaigning with an empty log.
    let dir = tempfile::tempdir().unwrap();
    let port: u16 = addrs[2].rsplit(':').next().unwrap().parse().unwrap();
    let opts = options(3, dir.path(), bind(port).await, 10_000);
    let late = RaftNode::start(opts).await.expect("start 3");
    late.initialize_static(members).await.expect("initialize");
    nodes.dirs.push(dir);
    nodes.nodes.insert(3, late);
    wait_for("node 3 to catch up", || {
        value_of(nodes.node(3), "early").is_some()
    })
    .await;
    assert_eq!(nodes.agreed_leader().await, leader);
    assert_eq!(nodes.node(leader).status().term, before, "no election");
    nodes.shutdown().await;
}
