//! Per-endpoint load: requests in flight and the peak-EWMA latency.
//!
//! Stats live behind their own `Arc`, outside any endpoint set, so a swap keeps
//! them for ids that remain and a [`Pick`](crate::Pick) of an endpoint that was
//! since removed still settles its own counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The load of one endpoint as the balancer sees it, for metrics and debugging.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndpointStats {
    /// Picks of this endpoint not yet finished or dropped.
    pub in_flight: u64,
    /// The peak-EWMA latency estimate, decayed to now. Only policy `p2c_ewma`
    /// feeds it; under other policies it is the decaying prior.
    pub latency_ewma: Duration,
}

/// How finished requests feed the latency estimate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EwmaParams {
    /// The decay time constant, in nanoseconds.
    pub(crate) decay_ns: f64,
    /// The least latency a failed request counts as, in nanoseconds.
    pub(crate) failure_penalty_ns: f64,
}

/// Shared counters of one endpoint.
#[derive(Debug)]
pub(crate) struct Stats {
    in_flight: AtomicU64,
    /// A short lock: the estimate and its timestamp must change together, and
    /// it is taken only to read two candidates or to record one response.
    ewma: Mutex<PeakEwma>,
}

impl Stats {
    /// Fresh stats with the latency prior `prior`, as of `now`.
    pub(crate) fn new(prior: Duration, now: Instant) -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            ewma: Mutex::new(PeakEwma::new(nanos(prior), now)),
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Peak-EWMA cost: expected latency times the queue a new request joins.
    pub(crate) fn cost(&self, now: Instant, decay_ns: f64) -> f64 {
        self.latency_ns(now, decay_ns) * (self.in_flight() as f64 + 1.0)
    }

    /// Records one finished request.
    pub(crate) fn observe(&self, latency: Duration, success: bool, now: Instant, p: EwmaParams) {
        let mut rtt = nanos(latency);
        if !success {
            rtt = rtt.max(p.failure_penalty_ns);
        }
        self.lock().observe(rtt, now, p.decay_ns);
    }

    pub(crate) fn snapshot(&self, now: Instant, decay_ns: f64) -> EndpointStats {
        EndpointStats {
            in_flight: self.in_flight(),
            latency_ewma: Duration::from_nanos(self.latency_ns(now, decay_ns) as u64),
        }
    }

    fn latency_ns(&self, now: Instant, decay_ns: f64) -> f64 {
        self.lock().at(now, decay_ns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeakEwma> {
        // Nothing panics while the lock is held, and the value is plain data.
        self.ewma.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Finagle's peak-sensitive, time-decayed moving average of latency.
///
/// A slower observation than the current estimate replaces it at once (peak),
/// so one slow response steers traffic away immediately; faster ones blend in
/// with a weight that grows with the time since the last update, so the
/// average forgets at the same rate whatever the request rate. Between
/// observations the estimate decays towards zero, which makes an avoided
/// endpoint attractive again after a while and gets it re-measured.
#[derive(Debug)]
pub(crate) struct PeakEwma {
    estimate_ns: f64,
    updated: Instant,
}

/// The least estimate: after a long idle period the decay underflows to 0,
/// and a zero would erase the in-flight factor of the cost.
const MIN_ESTIMATE_NS: f64 = 1.0;

impl PeakEwma {
    pub(crate) fn new(prior_ns: f64, now: Instant) -> Self {
        Self {
            estimate_ns: prior_ns,
            updated: now,
        }
    }

    /// The estimate as of `now`, decayed since the last observation.
    pub(crate) fn at(&self, now: Instant, decay_ns: f64) -> f64 {
        (self.estimate_ns * self.weight(now, decay_ns)).max(MIN_ESTIMATE_NS)
    }

    pub(crate) fn observe(&mut self, rtt_ns: f64, now: Instant, decay_ns: f64) {
        let w = self.weight(now, decay_ns);
        let decayed = self.estimate_ns * w;
        self.estimate_ns = if rtt_ns > decayed {
            rtt_ns
        } else {
            decayed + rtt_ns * (1.0 - w)
        };
        self.updated = self.updated.max(now);
    }

    fn weight(&self, now: Instant, decay_ns: f64) -> f64 {
        let elapsed = nanos(now.saturating_duration_since(self.updated));
        (-elapsed / decay_ns).exp()
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests;
