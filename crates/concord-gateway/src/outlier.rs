//! Outlier ejection per route target, with Envoy's consecutive-failure
//! semantics.
//!
//! Each endpoint (by id) counts its consecutive failures (5xx, connect
//! failure, reset, per-try timeout); any other answer resets the count. At
//! `consecutive_failures` the endpoint is **ejected**: picks skip it for
//! `base_ejection_secs` × the number of times it has been ejected (capped at
//! [`MAX_EJECTION`], as Envoy's `max_ejection_time`), after which it returns
//! on its own. An ejection that would leave more than `max_ejection_percent`
//! of the target's endpoints ejected does not happen; the cap is rounded down
//! but is at least one endpoint when the percentage is above zero and the
//! target has two or more, so a small target can still shed a bad endpoint
//! while a one-endpoint target never loses its only one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Consecutive failures that eject an endpoint when a route does not say.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Base ejection time when a route does not say.
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
/// Largest share of a target's endpoints ejected at once, in percent.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Longest one ejection lasts, however often the endpoint was ejected.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

/// A route's outlier settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive failures that eject (at least 1).
    pub consecutive_failures: u32,
    /// Ejection time of a first ejection; later ones multiply it.
    pub base_ejection: Duration,
    /// Largest share of endpoints ejected at once, percent (0..=100).
    pub max_ejection_percent: u32,
}

impl OutlierConfig {
    /// From a route's `outlier`.
    pub fn from_spec(spec: &concord_api::gateway::Outlier) -> Self {
        OutlierConfig {
            consecutive_failures: spec
                .consecutive_failures
                .unwrap_or(DEFAULT_CONSECUTIVE_FAILURES)
                .max(1),
            base_ejection: spec
                .base_ejection_secs
                .map_or(DEFAULT_BASE_EJECTION, |s| Duration::from_secs(u64::from(s))),
            max_ejection_percent: spec
                .max_ejection_percent
                .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT)
                .min(100),
        }
    }

    /// How many of `endpoints` may be ejected at once.
    pub fn max_ejected(&self, endpoints: usize) -> usize {
        let cap = endpoints * self.max_ejection_percent as usize / 100;
        if self.max_ejection_percent > 0 && endpoints >= 2 {
            cap.max(1)
        } else {
            cap
        }
    }
}

/// One endpoint's record.
#[derive(Debug, Clone, Copy, Default)]
struct EndpointState {
    consecutive_failures: u32,
    times_ejected: u32,
    /// Set while ejected (or until the next look after it ends).
    ejected_until: Option<Instant>,
}

impl EndpointState {
    fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }
}

/// An endpoint ejected now, for the admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejection {
    /// Endpoint id.
    pub endpoint: String,
    /// Time left until it returns.
    pub remaining: Duration,
    /// Times it has been ejected, this one included.
    pub times_ejected: u32,
}

/// The outlier detector of one route target.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    endpoints: Mutex<HashMap<String, EndpointState>>,
}

impl OutlierDetector {
    /// A detector with nothing ejected.
    pub fn new(config: OutlierConfig) -> Self {
        OutlierDetector {
            config,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, EndpointState>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether picks should skip endpoint `id` now.
    pub fn is_ejected(&self, id: &str, now: Instant) -> bool {
        self.lock().get(id).is_some_and(|s| s.is_ejected(now))
    }

    /// Records how a call to endpoint `id` ended, in a target of `endpoints`
    /// choosable endpoints; returns whether this call ejected it.
    pub fn record(&self, id: &str, failed: bool, endpoints: usize, now: Instant) -> bool {
        let mut all = self.lock();
        if !failed {
            if let Some(state) = all.get_mut(id) {
                state.consecutive_failures = 0;
            }
            return false;
        }
        let ejected_now = all.values().filter(|s| s.is_ejected(now)).count();
        let state = all.entry(id.to_owned()).or_default();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        // A call admitted before the ejection may still fail afterwards; it
        // must not extend the ejection.
        if state.is_ejected(now)
            || state.consecutive_failures < self.config.consecutive_failures
            || ejected_now + 1 > self.config.max_ejected(endpoints)
        {
            return false;
        }
        state.times_ejected = state.times_ejected.saturating_add(1);
        state.consecutive_failures = 0;
        let time = self
            .config
            .base_ejection
            .saturating_mul(state.times_ejected)
            .min(MAX_EJECTION);
        state.ejected_until = Some(now + time);
        true
    }

    /// The endpoints ejected now, by id.
    pub fn ejections(&self, now: Instant) -> Vec<Ejection> {
        let mut out: Vec<Ejection> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.is_ejected(now))
            .map(|(id, s)| Ejection {
                endpoint: id.clone(),
                remaining: s.ejected_until.map_or(Duration::ZERO, |u| u - now),
                times_ejected: s.times_ejected,
            })
            .collect();
        out.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        out
    }
}

#[cfg(test)]
mod tests;
