//! Lease deadlines, held in the leader's memory so keepalives never touch the log.
//!
//! Only grant, revoke and expiry are logged. A node that becomes leader gives every
//! lease its full TTL before it expires any (as etcd does), so a failover never
//! mass-expires instances whose heartbeats were going to the old leader.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use concord_state::Command;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::node::SharedNode;

/// How often the leader looks for expired leases.
const TICK: Duration = Duration::from_millis(100);

/// In-memory deadlines of every lease, meaningful only on the leader.
#[derive(Default)]
pub struct LeaseKeeper {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The term this node leads in; `None` when not leader.
    leading_term: Option<u64>,
    deadlines: HashMap<u64, Instant>,
    /// Expiries proposed and not yet applied, so a slow commit is not proposed twice.
    expiring: HashSet<u64>,
    /// The state revision of the last full pass: until it moves, the set of leases
    /// is the same and only deadlines can come due.
    synced_revision: Option<u64>,
    /// The earliest deadline seen in the last full pass. Keepalives only push
    /// deadlines later, so nothing can be due before it.
    next_due: Option<Instant>,
}

impl Inner {
    /// On a change of leadership every deadline is forgotten: a new leader starts each
    /// lease's TTL afresh when it first sees it.
    fn observe(&mut self, leading: Option<u64>) {
        if self.leading_term != leading {
            self.deadlines.clear();
            self.expiring.clear();
            self.synced_revision = None;
            self.next_due = None;
            self.leading_term = leading;
            if let Some(term) = leading {
                info!(term, "leading: every lease gets its full TTL from now");
            }
        }
    }
}

/// What a keepalive found.
#[derive(Debug, PartialEq, Eq)]
pub enum Keepalive {
    /// Extended to now + TTL.
    Renewed,
    /// Its deadline passed; the expiry is (or is about to be) in the log.
    Expired,
    /// This node is not the leader and cannot renew.
    NotLeader,
}

impl LeaseKeeper {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Renews a lease that exists in state with `ttl_secs`. `leading` is the term this
    /// node leads in right now (from Raft), so a fresh leader need not wait for a tick.
    pub fn keepalive(
        &self,
        leading: Option<u64>,
        id: u64,
        ttl_secs: u32,
        now: Instant,
    ) -> Keepalive {
        let mut inner = self.lock();
        inner.observe(leading);
        if inner.leading_term.is_none() {
            return Keepalive::NotLeader;
        }
        if inner.expiring.contains(&id) {
            return Keepalive::Expired;
        }
        let ttl = Duration::from_secs(u64::from(ttl_secs));
        match inner.deadlines.get(&id) {
            Some(deadline) if *deadline <= now => Keepalive::Expired,
            _ => {
                inner.deadlines.insert(id, now + ttl);
                Keepalive::Renewed
            }
        }
    }

    /// Starts tracking a freshly granted lease (the grant's response is back).
    pub fn granted(&self, leading: Option<u64>, id: u64, ttl_secs: u32, now: Instant) {
        let mut inner = self.lock();
        inner.observe(leading);
        if inner.leading_term.is_some() {
            inner
                .deadlines
                .entry(id)
                .or_insert(now + Duration::from_secs(u64::from(ttl_secs)));
        }
    }

    /// Time left, when this node is leader and tracks the lease.
    /// A lease not yet tracked by a fresh leader has its whole TTL ahead of it.
    pub fn remaining(
        &self,
        leading: Option<u64>,
        id: u64,
        ttl_secs: u32,
        now: Instant,
    ) -> Option<Duration> {
        let mut inner = self.lock();
        inner.observe(leading);
        inner.leading_term?;
        Some(
            inner
                .deadlines
                .get(&id)
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(u64::from(ttl_secs))),
        )
    }

    /// Brings the deadlines in line with state and leadership; returns leases to expire.
    ///
    /// `leases` is every (id, ttl) in state at `revision`. On gaining leadership every
    /// lease gets its full TTL from now; afterwards new leases get their TTL from when
    /// first seen. Walks every lease only when the state moved or a deadline came
    /// due: with tens of thousands of heart-beating instances and no writes, a tick
    /// costs nothing.
    fn sync(
        &self,
        leading_term: Option<u64>,
        revision: u64,
        leases: impl IntoIterator<Item = (u64, u32)>,
        now: Instant,
    ) -> Vec<u64> {
        let mut inner = self.lock();
        inner.observe(leading_term);
        if inner.leading_term.is_none() {
            return Vec::new();
        }
        if inner.synced_revision == Some(revision) && inner.next_due.is_some_and(|d| d > now) {
            return Vec::new();
        }
        let leases: Vec<(u64, u32)> = leases.into_iter().collect();
        if inner.deadlines.len() > leases.len() || !inner.expiring.is_empty() {
            let live: HashSet<u64> = leases.iter().map(|(id, _)| *id).collect();
            inner.deadlines.retain(|id, _| live.contains(id));
            inner.expiring.retain(|id| live.contains(id));
        }
        let mut expired = Vec::new();
        let mut next_due: Option<Instant> = None;
        for (id, ttl) in &leases {
            let deadline = *inner
                .deadlines
                .entry(*id)
                .or_insert(now + Duration::from_secs(u64::from(*ttl)));
            if inner.expiring.contains(id) {
                continue;
            }
            if deadline <= now {
                expired.push(*id);
            } else {
                next_due = Some(next_due.map_or(deadline, |d| d.min(deadline)));
            }
        }
        for id in &expired {
            inner.expiring.insert(*id);
        }
        inner.synced_revision = Some(revision);
        inner.next_due = next_due;
        expired
    }

    /// Forgets an expiry that failed to commit so it is tried again.
    fn expiry_failed(&self, id: u64) {
        let mut inner = self.lock();
        inner.expiring.remove(&id);
        inner.next_due = None;
    }
}

/// The leader's expiry loop; runs until `shutdown` flips.
pub async fn run(node: SharedNode, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let leading = node.leading_term();
        let expired = {
            let state = node.state();
            node.leases.sync(
                leading,
                state.revision(),
                state.leases().map(|l| (l.id, l.ttl_secs)),
                Instant::now(),
            )
        };
        for id in expired {
            let node = node.clone();
            tokio::spawn(async move {
                match node.write(Command::LeaseExpire { id }).await {
                    Ok(_) => {
                        node.metrics.lease_expiries.inc();
                        debug!(lease = id, "lease expired");
                    }
                    Err(e) => {
                        node.leases.expiry_failed(id);
                        if node.ready.load(Ordering::Relaxed) {
                            warn!(lease = id, error = %e.message, "could not expire lease");
                        }
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_tracks_nothing() {
        let k = LeaseKeeper::default();
        let now = Instant::now();
        assert!(k.sync(None, 1, [(1, 10)], now).is_empty());
        assert_eq!(k.keepalive(None, 1, 10, now), Keepalive::NotLeader);
        assert_eq!(k.remaining(None, 1, 10, now), None);
    }

    #[test]
    fn new_leader_extends_every_lease_by_its_ttl() {
        let k = LeaseKeeper::default();
        let t0 = Instant::now();
        assert!(k.sync(Some(1), 1, [(1, 1), (2, 5)], t0).is_empty());
        // After one second only the 1 s lease is due.
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(k.sync(Some(1), 1, [(1, 1), (2, 5)], t1), vec![1]);
        // Proposed once, not again while it is in flight.
        assert!(k.sync(Some(1), 1, [(1, 1), (2, 5)], t1).is_empty());
        // A new term (failover to this node again) restarts every TTL.
        assert!(k.sync(Some(2), 1, [(1, 1), (2, 5)], t1).is_empty());
        assert_eq!(k.remaining(Some(2), 2, 5, t1), Some(Duration::from_secs(5)));
    }

    #[test]
    fn keepalive_extends_and_expired_stays_expired() {
        let k = LeaseKeeper::default();
        let t0 = Instant::now();
        k.sync(Some(1), 1, [(7, 2)], t0);
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(k.keepalive(Some(1), 7, 2, t1), Keepalive::Renewed);
        assert!(
            k.sync(Some(1), 1, [(7, 2)], t0 + Duration::from_millis(3000))
                .is_empty()
        );
        let late = t1 + Duration::from_millis(2001);
        assert_eq!(k.keepalive(Some(1), 7, 2, late), Keepalive::Expired);
        assert_eq!(k.sync(Some(1), 1, [(7, 2)], late), vec![7]);
        assert_eq!(k.keepalive(Some(1), 7, 2, late), Keepalive::Expired);
        k.expiry_failed(7);
        assert_eq!(k.sync(Some(1), 1, [(7, 2)], late), vec![7]);
    }

    #[test]
    fn a_fresh_leader_renews_before_its_first_tick() {
        let k = LeaseKeeper::default();
        let now = Instant::now();
        assert_eq!(k.keepalive(Some(3), 9, 5, now), Keepalive::Renewed);
        assert_eq!(
            k.remaining(Some(3), 9, 5, now),
            Some(Duration::from_secs(5))
        );
        // Losing leadership forgets everything.
        assert_eq!(k.keepalive(None, 9, 5, now), Keepalive::NotLeader);
    }

    #[test]
    fn quiet_ticks_do_not_walk_the_leases() {
        let k = LeaseKeeper::default();
        let t0 = Instant::now();
        k.sync(Some(1), 1, [(1, 10)], t0);
        // Same revision, nothing due: the (deliberately wrong) list is not looked at.
        assert!(
            k.sync(Some(1), 1, [], t0 + Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(
            k.remaining(Some(1), 1, 10, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(9)),
            "still tracked"
        );
        // Once due, the leases are walked even at the same revision.
        assert_eq!(
            k.sync(Some(1), 1, [(1, 10)], t0 + Duration::from_secs(10)),
            vec![1]
        );
    }

    #[test]
    fn revoked_leases_are_forgotten() {
        let k = LeaseKeeper::default();
        let t0 = Instant::now();
        k.sync(Some(1), 1, [(1, 1)], t0);
        assert!(
            k.sync(Some(1), 2, [], t0 + Duration::from_secs(5))
                .is_empty()
        );
        assert_eq!(
            k.remaining(Some(1), 1, 1, t0),
            Some(Duration::from_secs(1)),
            "untracked: full TTL"
        );
    }
}
