//! Which members are up, as this node sees them: a ping of each member's
//! `/raft/info` every second.
//!
//! Used to spread work over live members (health checks are owned by one live
//! node each, by rendezvous hashing). Raft's own view is no use here: only the
//! leader knows when it last heard from each follower, and followers must agree
//! on ownership without asking it. Views can differ for a moment after a node
//! dies or returns; the work placed this way tolerates that (a check probed twice
//! or skipped for a few seconds).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client_addrs::ClientAddrs;
use crate::type_config::Raft;

/// How often every member is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A member that has not answered for this long is down.
const DOWN_AFTER: Duration = Duration::from_secs(3);

/// Last successful ping per member.
#[derive(Default)]
pub(crate) struct Liveness {
    last_seen: Mutex<HashMap<u64, Instant>>,
}

impl Liveness {
    /// Members (voters and learners) that answered recently, plus `self_id`.
    pub(crate) fn live(&self, self_id: u64, members: impl Iterator<Item = u64>) -> BTreeSet<u64> {
        let seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        members
            .filter(|id| *id == self_id || seen.get(id).is_some_and(|t| t.elapsed() < DOWN_AFTER))
            .chain(std::iter::once(self_id))
            .collect()
    }

    fn seen(&self, id: u64) {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Instant::now());
    }
}

/// Pings every other member each second until aborted.
pub(crate) async fn run(
    self_id: u64,
    raft: Raft,
    addrs: Arc<ClientAddrs>,
    liveness: Arc<Liveness>,
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let members: Vec<(u64, String)> = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self_id)
                .map(|(id, n)| (*id, n.peer_addr.clone()))
                .collect()
        };
        let mut pings = tokio::task::JoinSet::new();
        for (id, peer_addr) in members {
            let addrs = addrs.clone();
            let liveness = liveness.clone();
            pings.spawn(async move {
                if addrs.info(id, &peer_addr).await.is_ok() {
                    liveness.seen(id);
                }
            });
        }
        while pings.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_always_live_and_unseen_members_are_not() {
        let l = Liveness::default();
        assert_eq!(l.live(1, [1, 2, 3].into_iter()), BTreeSet::from([1]));
        l.seen(2);
        assert_eq!(l.live(1, [1, 2, 3].into_iter()), BTreeSet::from([1, 2]));
        assert_eq!(l.live(1, [2].into_iter()), BTreeSet::from([1, 2]));
    }
}
