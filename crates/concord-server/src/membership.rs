//! How a node comes into a cluster: the checks on the bootstrap flags and the
//! start-up decision between single-node bootstrap, a static member list, joining
//! a running cluster, or resuming from the data directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use concord_api::cluster::AddMemberRequest;
use concord_api::validate;
use concord_raft::{NodeInfo, RaftNode, RaftStatus};
use tracing::{info, warn};

use crate::ServerError;
use crate::config::ServerConfig;
use crate::join::JoinPlan;

/// Rejects contradictory or malformed cluster flags before anything is opened.
pub(crate) fn check(config: &ServerConfig) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::Config(m));
    let given = [
        (config.bootstrap, "bootstrap"),
        (config.initial_cluster.is_some(), "initial_cluster"),
        (config.join.is_some(), "join"),
    ];
    let set: Vec<&str> = given.iter().filter(|g| g.0).map(|g| g.1).collect();
    if set.len() > 1 {
        return bad(format!(
            "{} are mutually exclusive: bootstrap starts a one-node cluster, initial_cluster a static multi-node one, join enters a running one",
            set.join(" and ")
        ));
    }
    if let Some(members) = &config.initial_cluster {
        if !members.contains_key(&config.node_id) {
            return bad(format!(
                "initial_cluster must list this node (id {}); it lists {:?}",
                config.node_id,
                members.keys().collect::<Vec<_>>()
            ));
        }
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, addr) in members {
            validate::node_id("initial_cluster", *id)
                .map_err(|e| ServerError::Config(e.message))?;
            validate::host_port(&format!("initial_cluster[{id}]"), addr)
                .map_err(|e| ServerError::Config(e.message))?;
            if let Some(other) = seen.insert(addr, *id) {
                return bad(format!(
                    "initial_cluster gives nodes {other} and {id} the same peer address {addr}"
                ));
            }
        }
    }
    for (id, addr) in &config.peer_routes {
        validate::host_port(&format!("peer_route[{id}]"), addr)
            .map_err(|e| ServerError::Config(e.message))?;
    }
    if let Some(addr) = &config.advertise_peer_addr {
        validate::host_port("advertise_peer_addr", addr)
            .map_err(|e| ServerError::Config(e.message))?;
    }
    if let Some(url) = &config.join
        && url.trim().is_empty()
    {
        return bad("join needs the client URL of a cluster member".to_owned());
    }
    Ok(())
}

/// The peer address stored in the membership for this node: the explicit
/// advertise address, else this node's entry in the initial cluster, else the
/// bound peer address.
pub(crate) fn advertised_peer_addr(config: &ServerConfig, bound: SocketAddr) -> String {
    let listed = config
        .initial_cluster
        .as_ref()
        .and_then(|m| m.get(&config.node_id));
    match (&config.advertise_peer_addr, listed) {
        (Some(adv), Some(listed)) if adv != listed => {
            warn!(advertise = %adv, listed = %listed, "the advertised peer address differs from this node's initial_cluster entry; peers will dial the listed one");
            adv.clone()
        }
        (Some(adv), _) => adv.clone(),
        (None, Some(listed)) => listed.clone(),
        (None, None) => bound.to_string(),
    }
}

/// Initializes the cluster as the flags say, or returns what joining needs.
/// A data directory that already holds state ignores every bootstrap flag.
pub(crate) async fn initialize(
    raft: &RaftNode,
    config: &ServerConfig,
    advertised_peer_addr: &str,
    client_addr: SocketAddr,
) -> Result<Option<JoinPlan>, ServerError> {
    let raft_err = |e: concord_raft::RaftError| ServerError::Raft(e.to_string());
    if config.bootstrap {
        raft.initialize_single().await.map_err(raft_err)?;
        return Ok(None);
    }
    if let Some(list) = &config.initial_cluster {
        // Identical on every node (no client addresses: a node knows only its
        // own), so all of them write the same first log entry. A node started
        // after the others formed the cluster skips it and waits for the leader.
        let members: BTreeMap<u64, NodeInfo> = list
            .iter()
            .map(|(id, addr)| {
                let info = NodeInfo {
                    peer_addr: addr.clone(),
                    client_addr: String::new(),
                };
                (*id, info)
            })
            .collect();
        raft.initialize_static(members).await.map_err(raft_err)?;
        return Ok(None);
    }
    let initialized = raft.is_initialized().await.map_err(raft_err)?;
    match &config.join {
        Some(url) if initialized => {
            info!(join = %url, "the data directory already holds cluster state; --join ignored");
            Ok(None)
        }
        Some(url) => {
            if client_addr.ip().is_unspecified() {
                warn!(%client_addr, "joining with a wildcard client address; other members cannot reach it for forwarding");
            }
            Ok(Some(JoinPlan {
                url: url.clone(),
                request: AddMemberRequest {
                    id: config.node_id,
                    peer_addr: advertised_peer_addr.to_owned(),
                    client_addr: client_addr.to_string(),
                    voter: false,
                },
            }))
        }
        None if !initialized => {
            info!(
                "no cluster state yet: waiting to be added by a leader (POST /v1/cluster/members), \
                 or restart with --bootstrap, --initial-cluster or --join"
            );
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Whether this node is in the membership it follows and has applied the entry
/// that made it so: a joining node is not ready before it has joined and caught
/// up to its own admission.
pub(crate) fn is_settled_member(st: &RaftStatus) -> bool {
    st.members.iter().any(|m| m.id == st.node_id)
        && st
            .membership_index
            .is_some_and(|index| st.applied_index >= index)
}
