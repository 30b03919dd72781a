//! Membership changes on the leader: add a learner, promote it to voter, remove
//! a member; and finding a member's client address.
//!
//! Every change is checked against this node's view of the membership first, so
//! the caller gets a precise error (unknown id, address taken, last voter)
//! rather than openraft's. Changes go through openraft's joint consensus; one
//! that finds another change in flight waits for it (bounded).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, ForwardToLeader};
use openraft::{ChangeMembers, RaftMetrics, ServerState};

use crate::error::{MembershipError, ProposeError, RaftError};
use crate::node::{RaftNode, fatal_to_propose, not_leader};
use crate::type_config::NodeInfo;

/// A learner whose replicated log is within this many entries of the leader's
/// last log index counts as caught up (entries are proposal batches, so this
/// is a few milliseconds of writes).
pub(crate) const PROMOTE_MAX_LAG: u64 = 16;
/// How long a change waits for an earlier membership change to finish.
const IN_PROGRESS_WAIT: Duration = Duration::from_secs(10);
/// Longest pause between two looks while waiting (metrics changes wake it sooner).
const POLL: Duration = Duration::from_millis(100);

/// Where a member stands in this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Voter,
    Learner,
}

impl RaftNode {
    /// Adds node `id` at `info.peer_addr` as a learner: it receives the log but
    /// does not vote. The leader's background task promotes every caught-up
    /// learner to voter; with `blocking` this also waits until `id` has caught
    /// up (no deadline inside: wrap it in a timeout).
    ///
    /// Idempotent: re-adding a member at the same peer address succeeds without
    /// a change, so a joining node can retry after a lost answer.
    pub async fn add_learner(
        &self,
        id: u64,
        info: NodeInfo,
        blocking: bool,
    ) -> Result<(), MembershipError> {
        if id == 0 {
            return Err(MembershipError::Invalid(
                "node id must be greater than 0".to_owned(),
            ));
        }
        if info.peer_addr.trim().is_empty() {
            return Err(MembershipError::Invalid(
                "peer address must not be empty".to_owned(),
            ));
        }
        self.ensure_leader()?;
        let (existing, same_addr) = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let existing = membership.get_node(&id).cloned();
            let same_addr = membership
                .nodes()
                .find(|(other, n)| **other != id && n.peer_addr == info.peer_addr)
                .map(|(other, _)| *other);
            (existing, same_addr)
        };
        match existing {
            Some(n) if n.peer_addr == info.peer_addr => {
                tracing::debug!(node_id = id, "already a member at this address");
            }
            Some(n) => {
                return Err(MembershipError::Invalid(format!(
                    "node {id} is already a member at peer address {}; remove it first to change its address",
                    n.peer_addr
                )));
            }
            None => {
                if let Some(other) = same_addr {
                    return Err(MembershipError::Invalid(format!(
                        "peer address {} already belongs to node {other}; remove node {other} first (a node that lost its data rejoins under a new id)",
                        info.peer_addr
                    )));
                }
                let peer_addr = info.peer_addr.clone();
                self.change(ChangeMembers::AddNodes(BTreeMap::from([(id, info)])), true)
                    .await?;
                tracing::info!(node_id = id, peer_addr, "added a learner");
            }
        }
        if blocking {
            self.wait_caught_up(id).await?;
        }
        Ok(())
    }

    /// Makes learner `id` a voter. `Ok` without effect if it already is one.
    /// Promoting a learner that has not caught up is allowed but stalls commits
    /// until it has, so callers normally wait with `add_learner(.., true)` first.
    pub async fn promote(&self, id: u64) -> Result<(), MembershipError> {
        self.ensure_leader()?;
        match self.role_of(id) {
            None => Err(MembershipError::UnknownMember(id)),
            Some(Role::Voter) => Ok(()),
            Some(Role::Learner) => {
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await?;
                tracing::info!(node_id = id, "promoted a learner to voter");
                Ok(())
            }
        }
    }

    /// Removes member `id` from the cluster: a voter stops voting and is dropped
    /// in the same change (it is not kept as a learner); a learner is dropped.
    /// The last voter cannot be removed. Removing the leader itself is allowed:
    /// it steps down once the change is committed.
    pub async fn remove_member(&self, id: u64) -> Result<(), MembershipError> {
        self.ensure_leader()?;
        let voters = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            m.membership_config.membership().voter_ids().count()
        };
        match self.role_of(id) {
            None => return Err(MembershipError::UnknownMember(id)),
            Some(Role::Voter) if voters <= 1 => {
                return Err(MembershipError::Invalid(format!(
                    "node {id} is the last voter; a cluster cannot remove its last voter"
                )));
            }
            Some(Role::Voter) => {
                self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await?;
            }
            Some(Role::Learner) => {
                self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await?;
            }
        }
        self.addrs().forget(id);
        tracing::info!(node_id = id, "removed a member");
        Ok(())
    }

    /// Static bootstrap (`--initial-cluster`): initializes with `members`, the
    /// same map on every node, unless this node or one of the other listed
    /// members already holds cluster state. A node started after the others
    /// formed the cluster then waits for their leader to replicate to it, instead
    /// of campaigning with an empty log and disrupting the fresh leader.
    pub async fn initialize_static(
        &self,
        members: BTreeMap<u64, NodeInfo>,
    ) -> Result<(), RaftError> {
        if self.is_initialized().await? {
            return Ok(());
        }
        let mut probes = tokio::task::JoinSet::new();
        for (id, n) in members.iter().filter(|(id, _)| **id != self.node_id()) {
            let (node, id, peer_addr) = (self.clone(), *id, n.peer_addr.clone());
            probes.spawn(async move { (id, node.addrs().info(id, &peer_addr).await) });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok((id, Ok(info))) = done
                && info.initialized
            {
                tracing::info!(
                    peer = id,
                    "the cluster is already formed; waiting for its leader instead of initializing"
                );
                return Ok(());
            }
        }
        self.initialize(members).await
    }

    /// Member `id`'s client API address: this node's own, the one stored in the
    /// membership, or (for members bootstrapped without one) the answer of that
    /// node's `/raft/info`, cached. `None` if `id` is not a member, or its address
    /// is not in the membership and the node has never been reachable.
    pub async fn client_addr_of(&self, id: u64) -> Option<String> {
        if id == self.node_id() {
            return Some(self.self_info().client_addr.clone());
        }
        let node = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            m.membership_config.membership().get_node(&id).cloned()
        }?;
        if !node.client_addr.is_empty() {
            return Some(node.client_addr);
        }
        self.addrs().resolve(id, &node.peer_addr).await
    }

    /// The current leader's client API address, if a leader is known and its address can be found.
    pub async fn leader_client_addr(&self) -> Option<String> {
        let leader = self.status().leader_id?;
        self.client_addr_of(leader).await
    }

    fn role_of(&self, id: u64) -> Option<Role> {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        membership.get_node(&id)?;
        Some(if membership.voter_ids().any(|v| v == id) {
            Role::Voter
        } else {
            Role::Learner
        })
    }

    /// `NotLeader` (with the leader's address when known) unless this node leads.
    fn ensure_leader(&self) -> Result<(), MembershipError> {
        let leader_id = {
            let metrics = self.raft().metrics();
            let m = metrics.borrow();
            if m.state == ServerState::Leader {
                return Ok(());
            }
            m.current_leader
        };
        let f = ForwardToLeader {
            leader_id,
            leader_node: None,
        };
        Err(not_leader(self.raft(), self.addrs(), f).into())
    }

    /// Proposes one membership change, waiting (bounded) while another is in flight.
    async fn change(
        &self,
        changes: ChangeMembers<u64, NodeInfo>,
        retain: bool,
    ) -> Result<(), MembershipError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let err = match self.raft().change_membership(changes.clone(), retain).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let api = match err {
                openraft::error::RaftError::APIError(api) => api,
                openraft::error::RaftError::Fatal(f) => return Err(fatal_to_propose(f).into()),
            };
            match api {
                ClientWriteError::ForwardToLeader(f) => {
                    return Err(not_leader(self.raft(), self.addrs(), f).into());
                }
                ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e)) => {
                    if started.elapsed() > IN_PROGRESS_WAIT {
                        return Err(ProposeError::Unavailable(format!(
                            "another membership change is still in progress ({e}); retry later"
                        ))
                        .into());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::LearnerNotFound(e),
                ) => return Err(MembershipError::UnknownMember(e.node_id)),
                ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::EmptyMembership(e),
                ) => return Err(MembershipError::Invalid(e.to_string())),
            }
        }
    }

    /// Waits until learner `id` has caught up with this leader (or is already a voter).
    async fn wait_caught_up(&self, id: u64) -> Result<(), MembershipError> {
        let mut metrics = self.raft().metrics();
        loop {
            let (leading, member, done) = {
                let m = metrics.borrow_and_update();
                let member = m.membership_config.membership().get_node(&id).is_some();
                let voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == id);
                (
                    m.state == ServerState::Leader,
                    member,
                    voter || caught_up(&m, id),
                )
            };
            if !member {
                return Err(MembershipError::UnknownMember(id));
            }
            if done {
                return Ok(());
            }
            if !leading {
                self.ensure_leader()?;
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() {
                    return Err(ProposeError::Unavailable("the raft node is shutting down".to_owned()).into());
                },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Whether the leader has replicated to `id` up to [`PROMOTE_MAX_LAG`] entries
/// behind its last log index. Only meaningful on the leader.
pub(crate) fn caught_up(m: &RaftMetrics<u64, NodeInfo>, id: u64) -> bool {
    let Some(Some(Some(matched))) = m.replication.as_ref().map(|r| r.get(&id)) else {
        return false;
    };
    let last = m.last_log_index.unwrap_or(0);
    last.saturating_sub(matched.index) <= PROMOTE_MAX_LAG
}
