//! A circuit breaker per call target (a gateway route's endpoint, an SDK
//! service instance), with Resilience4j's semantics.
//!
//! Shared by the gateway and the SDK so a service called through either one
//! trips on the same rules.
//!
//! **Closed**: calls go through and their outcomes are counted in a sliding
//! time window of `window_secs` one-second buckets. Once the window holds at
//! least `min_requests` calls and the failure rate (5xx, connect failure,
//! reset, timeout) reaches `failure_rate`, or the rate of calls slower than
//! `slow_call_ms` reaches `slow_call_rate`, the breaker **opens**: calls are
//! refused without contacting the service for `open_secs`. Then it is
//! **half-open**: `half_open_requests` trial calls go through (others are
//! refused); if every trial succeeds (and is not slow) it closes with an empty
//! window, and the first trial that fails opens it again.
//!
//! Separately, `max_concurrent` caps the calls in flight to the target.
//!
//! Each transition starts a new generation; an outcome from a call admitted
//! in an earlier generation is ignored, so a slow call admitted while closed
//! cannot decide a half-open trial.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failure rate that opens the breaker when a route does not say.
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Slow-call rate that opens the breaker when `slow_call_ms` is set.
pub const DEFAULT_SLOW_CALL_RATE: f64 = 0.8;
/// Calls the window must hold before rates count.
pub const DEFAULT_MIN_REQUESTS: u32 = 20;
/// Length of the sliding window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// How long the breaker stays open.
pub const DEFAULT_OPEN: Duration = Duration::from_secs(5);
/// Trial calls while half-open.
pub const DEFAULT_HALF_OPEN_REQUESTS: u32 = 3;

/// A route's breaker settings with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Failure rate (0..=1) that opens the breaker.
    pub failure_rate: f64,
    /// Calls at least this slow count as slow; `None`: no slow-call rule.
    pub slow_call: Option<Duration>,
    /// Slow-call rate (0..=1) that opens the breaker.
    pub slow_call_rate: f64,
    /// Calls the window must hold before rates count.
    pub min_requests: u32,
    /// Window length, whole seconds (at least 1).
    pub window_secs: u32,
    /// Time spent open before half-open.
    pub open_for: Duration,
    /// Trial calls while half-open (at least 1).
    pub half_open_requests: u32,
    /// Cap on calls in flight, if any.
    pub max_concurrent: Option<u32>,
}

impl BreakerConfig {
    /// From a route's `circuit_breaker`.
    pub fn from_spec(spec: &concord_api::gateway::CircuitBreaker) -> Self {
        BreakerConfig {
            failure_rate: spec.failure_rate.unwrap_or(DEFAULT_FAILURE_RATE),
            slow_call: spec
                .slow_call_ms
                .map(|ms| Duration::from_millis(u64::from(ms))),
            slow_call_rate: spec.slow_call_rate.unwrap_or(DEFAULT_SLOW_CALL_RATE),
            min_requests: spec.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS).max(1),
            window_secs: spec
                .window_secs
                .unwrap_or(DEFAULT_WINDOW.as_secs() as u32)
                .max(1),
            open_for: spec
                .open_secs
                .map_or(DEFAULT_OPEN, |s| Duration::from_secs(u64::from(s))),
            half_open_requests: spec
                .half_open_requests
                .unwrap_or(DEFAULT_HALF_OPEN_REQUESTS)
                .max(1),
            max_concurrent: spec.max_concurrent,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through and are counted.
    Closed,
    /// Calls are refused.
    Open,
    /// A few trial calls go through.
    HalfOpen,
}

impl BreakerState {
    /// The metric value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    /// The name shown by the admin listener.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The breaker is open (or half-open with its trials taken).
    Open,
    /// `max_concurrent` calls are in flight.
    Concurrency,
}

/// One second's outcomes.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    generation: u64,
    /// When the open state ends.
    open_until: Instant,
    buckets: Vec<Bucket>,
    trials_admitted: u32,
    trials_succeeded: u32,
}

/// The breaker of one route target.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// Origin of the window's seconds.
    epoch: Instant,
    inner: Mutex<Inner>,
    in_flight: AtomicU32,
}

/// An admitted call: holds its concurrency slot until dropped; report its
/// outcome with [`CircuitBreaker::record`].
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        let now = Instant::now();
        CircuitBreaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                open_until: now,
                buckets: vec![Bucket::default(); config.window_secs as usize],
                trials_admitted: 0,
                trials_succeeded: 0,
            }),
            config,
            epoch: now,
            in_flight: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state as of `now` (an open breaker whose time is up reads as
    /// half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        inner.state
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits a call or says why not.
    pub fn admit(&self, now: Instant) -> Result<Permit<'_>, Refused> {
        let generation = {
            let mut inner = self.lock();
            self.advance(&mut inner, now);
            match inner.state {
                BreakerState::Closed => {}
                BreakerState::Open => return Err(Refused::Open),
                BreakerState::HalfOpen => {
                    if inner.trials_admitted >= self.config.half_open_requests {
                        return Err(Refused::Open);
                    }
                }
            }
            if !self.take_slot() {
                return Err(Refused::Concurrency);
            }
            if inner.state == BreakerState::HalfOpen {
                inner.trials_admitted += 1;
            }
            inner.generation
        };
        Ok(Permit {
            breaker: self,
            generation,
        })
    }

    fn take_slot(&self) -> bool {
        let max = self.config.max_concurrent.unwrap_or(u32::MAX);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Records how an admitted call ended; returns the state afterwards.
    pub fn record(
        &self,
        permit: Permit<'_>,
        failed: bool,
        latency: Duration,
        now: Instant,
    ) -> BreakerState {
        let slow = self.config.slow_call.is_some_and(|s| latency >= s);
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        if permit.generation != inner.generation {
            return inner.state;
        }
        match inner.state {
            BreakerState::Closed => {
                self.count(&mut inner, now, failed, slow);
                if self.trips(&inner, now) {
                    self.open(&mut inner, now);
                }
            }
            BreakerState::HalfOpen if failed || slow => self.open(&mut inner, now),
            BreakerState::HalfOpen => {
                inner.trials_succeeded += 1;
                if inner.trials_succeeded >= self.config.half_open_requests {
                    self.transition(&mut inner, BreakerState::Closed);
                    inner.buckets.fill(Bucket::default());
                }
            }
            BreakerState::Open => {}
        }
        inner.state
    }

    /// Open → half-open once the open time is up.
    fn advance(&self, inner: &mut Inner, now: Instant) {
        if inner.state == BreakerState::Open && now >= inner.open_until {
            self.transition(inner, BreakerState::HalfOpen);
            inner.trials_admitted = 0;
            inner.trials_succeeded = 0;
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        self.transition(inner, BreakerState::Open);
        inner.open_until = now + self.config.open_for;
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        inner.state = to;
        inner.generation += 1;
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn count(&self, inner: &mut Inner, now: Instant, failed: bool, slow: bool) {
        let second = self.second(now);
        let len = inner.buckets.len() as u64;
        let bucket = &mut inner.buckets[(second % len) as usize];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                ..Bucket::default()
            };
        }
        bucket.calls += 1;
        bucket.failures += u32::from(failed);
        bucket.slow += u32::from(slow);
    }

    /// Whether the window's rates open the breaker.
    fn trips(&self, inner: &Inner, now: Instant) -> bool {
        let second = self.second(now);
        let len = inner.buckets.len() as u64;
        let (mut calls, mut failures, mut slow) = (0u64, 0u64, 0u64);
        for b in inner
            .buckets
            .iter()
            .filter(|b| b.second + len > second && b.calls > 0)
        {
            calls += u64::from(b.calls);
            failures += u64::from(b.failures);
            slow += u64::from(b.slow);
        }
        if calls < u64::from(self.config.min_requests) {
            return false;
        }
        let rate = |n: u64| n as f64 / calls as f64;
        rate(failures) >= self.config.failure_rate
            || (self.config.slow_call.is_some() && rate(slow) >= self.config.slow_call_rate)
    }
}

#[cfg(test)]
mod tests;
