//! The result of a pick: the endpoint, and the in-flight slot it holds.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use crate::stats::{EwmaParams, Stats};

/// An endpoint chosen for one request.
///
/// The pick counts as in flight on its endpoint until it is finished or
/// dropped, which is what least-request and P2C EWMA balance on. Call
/// [`Pick::finish`] when the response arrives so P2C EWMA learns the latency;
/// dropping it instead (a cancelled request) only releases the slot, since a
/// cancellation says nothing reliable about the endpoint.
pub struct Pick {
    /// The chosen endpoint.
    pub endpoint: Arc<Endpoint>,
    guard: InFlight,
}

impl Pick {
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        stats: Arc<Stats>,
        ewma: Option<EwmaParams>,
    ) -> Self {
        stats.begin();
        Self {
            endpoint,
            guard: InFlight { stats, ewma },
        }
    }

    /// Ends the request: releases the in-flight slot and, under P2C EWMA,
    /// records `latency` (a failure counts as at least
    /// [`Config::failure_penalty`](crate::Config::failure_penalty)).
    pub fn finish(self, latency: Duration, success: bool) {
        if let Some(params) = self.guard.ewma {
            self.guard
                .stats
                .observe(latency, success, Instant::now(), params);
        }
        // Dropping `self` releases the in-flight slot.
    }
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Holds one in-flight slot on an endpoint's stats until dropped.
struct InFlight {
    stats: Arc<Stats>,
    /// Set when finished requests should feed the latency estimate.
    ewma: Option<EwmaParams>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.end();
    }
}
