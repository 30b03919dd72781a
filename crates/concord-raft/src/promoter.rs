//! The membership background task every node runs, as two loops.
//!
//! Promotion (leader only): every learner that has caught up becomes a voter.
//! That is every learner, not only those added through this node: a set of
//! "learners to promote" would live in one leader's memory and be lost on
//! failover, and Concord has no use for permanent learners (removal drops a node
//! in one change, it never leaves it behind as a learner). It also finishes a
//! joint membership that a previous leader left half done (it crashed between
//! the two steps).
//!
//! Address warming (every node): members bootstrapped by an initial-cluster list
//! have no client address in the membership, so their `/raft/info` is asked in
//! the background, the leader first and at once after an election. `NotLeader`
//! answers, request forwarding and `status()` then name addresses without
//! waiting on the network. It runs apart from promotion so an unreachable member
//! never delays a promotion.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::{ChangeMembers, ServerState};

use crate::membership::caught_up;
use crate::node::RaftNode;

/// How often promotion looks at the metrics.
const PROMOTE_TICK: Duration = Duration::from_millis(200);
/// How often addresses are warmed when no election wakes the loop sooner.
const WARM_TICK: Duration = Duration::from_secs(1);
/// A committed joint membership older than this was abandoned by a crashed leader.
const JOINT_GRACE: Duration = Duration::from_secs(2);

/// What one look at the metrics calls for, on the leader.
enum Plan {
    Promote(Vec<u64>),
    /// Leave the joint config for its last half; the index identifies the config.
    FinishJoint(BTreeSet<u64>, u64),
    Nothing,
}

/// Runs both loops until aborted by `RaftNode::shutdown` (or openraft stops).
pub(crate) async fn run(node: RaftNode) {
    tokio::join!(promote(node.clone()), warm(node));
}

async fn promote(node: RaftNode) {
    let mut tick = tokio::time::interval(PROMOTE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut joint_since: Option<(u64, Instant)> = None;
    loop {
        tick.tick().await;
        let plan = {
            // The borrow ends before any await (openraft #1238).
            let metrics = node.raft().metrics();
            let m = metrics.borrow();
            if m.running_state.is_err() {
                return;
            }
            let membership = m.membership_config.membership();
            let applied = m.last_applied.map_or(0, |l| l.index);
            let membership_index = m.membership_config.log_id().map_or(0, |l| l.index);
            let joint = membership.get_joint_config();
            if m.state != ServerState::Leader {
                Plan::Nothing
            } else if joint.len() > 1 {
                if applied >= membership_index {
                    Plan::FinishJoint(joint.last().cloned().unwrap_or_default(), membership_index)
                } else {
                    Plan::Nothing
                }
            } else {
                let ready: Vec<u64> = membership
                    .learner_ids()
                    .filter(|id| caught_up(&m, *id))
                    .collect();
                if ready.is_empty() {
                    Plan::Nothing
                } else {
                    Plan::Promote(ready)
                }
            }
        };
        if !matches!(plan, Plan::FinishJoint(..)) {
            joint_since = None;
        }
        match plan {
            Plan::Promote(ids) => {
                for id in ids {
                    if let Err(e) = node.promote(id).await {
                        tracing::debug!(node_id = id, error = %e, "promotion not done yet");
                    }
                }
            }
            Plan::FinishJoint(voters, index) => {
                let since = match joint_since {
                    Some((i, t)) if i == index => t,
                    _ => {
                        joint_since = Some((index, Instant::now()));
                        continue;
                    }
                };
                if since.elapsed() < JOINT_GRACE {
                    continue;
                }
                tracing::warn!(
                    ?voters,
                    "finishing a joint membership left by an earlier leader"
                );
                if let Err(e) = node
                    .raft()
                    .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
                    .await
                {
                    tracing::warn!(error = %e, "could not finish the joint membership");
                }
                joint_since = None;
            }
            Plan::Nothing => {}
        }
    }
}

async fn warm(node: RaftNode) {
    let mut tick = tokio::time::interval(WARM_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leadership = node.leadership();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = leadership.changed() => if changed.is_err() {
                return;
            },
        }
        let (leader, others) = {
            let metrics = node.raft().metrics();
            let m = metrics.borrow();
            let me = node.node_id();
            let lacking: Vec<u64> = m
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, n)| **id != me && n.client_addr.is_empty())
                .map(|(id, _)| *id)
                .collect();
            let leader = m.current_leader.filter(|l| lacking.contains(l));
            let others: Vec<u64> = lacking
                .into_iter()
                .filter(|id| Some(*id) != leader)
                .collect();
            (leader, others)
        };
        if let Some(l) = leader {
            let _ = node.client_addr_of(l).await;
        }
        // Concurrently, so one unreachable member costs one lookup timeout in all.
        let mut lookups = tokio::task::JoinSet::new();
        for id in others {
            let node = node.clone();
            lookups.spawn(async move {
                let _ = node.client_addr_of(id).await;
            });
        }
        while lookups.join_next().await.is_some() {}
    }
}
