//! Health checking across the cluster: who probes what, TTL checks, and reaping
//! instances that stay critical.
//!
//! Probed checks (http, tcp, grpc) are spread over the live members by
//! rendezvous hashing (`owner.rs`); each owner damps its probe results and
//! proposes only status changes. TTL checks and reaping are timed by the leader
//! (`leader.rs`), in memory, restarting every clock when leadership changes, so a
//! failover never fails a check or reaps an instance early.

pub(crate) mod clock;
pub(crate) mod leader;
pub(crate) mod owner;

use std::time::Duration;

use concord_state::InstanceRef;

use self::clock::LeaderClock;

/// A check, named by its instance and id.
pub(crate) type CheckKey = (InstanceRef, String);

/// The leader's clocks, shared with the TTL update handler.
#[derive(Default)]
pub struct HealthClocks {
    /// When each TTL check was last told it is fine.
    pub(crate) ttl: LeaderClock<CheckKey>,
    /// Since when each instance has been critical, keyed with the revision the
    /// spell began at, so a recovery starts a new spell.
    pub(crate) critical: LeaderClock<(InstanceRef, u64)>,
}

/// How long a TTL check or a reaping delay lasts.
pub(crate) fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
