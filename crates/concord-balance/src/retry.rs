//! When a failed attempt is tried again: the rules a gateway route and the
//! SDK's service client share.
//!
//! A retry needs all of: attempts left (default 1 retry); a failure the route
//! lists (default only `connect_failure`, which never reached the service);
//! an idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) unless
//! `non_idempotent`; a replayable body (none, or at most
//! [`MAX_REPLAY_BODY`] bytes of known size); and room in the retry budget.
//!
//! The budget keeps retries from multiplying load on a struggling service:
//! in any window of [`BUDGET_WINDOW`] a route may retry `budget_percent` %
//! (default 20) of its requests, plus [`BUDGET_MIN_RETRIES`] so that a quiet
//! route can still retry at all.
//!
//! Separately, hyper's pool always resends a request that failed on a reused
//! keep-alive connection before any byte was written (the keep-alive race),
//! whatever the method: the service never saw it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use concord_api::gateway::Retries;
use http::Method;
use rand::Rng;

/// How long a call may wait for a connection when nothing says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt may wait for response headers when nothing says otherwise.
pub const DEFAULT_PER_TRY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a call may take over all its attempts when nothing says otherwise.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries when a route has no `retries.attempts`.
pub const DEFAULT_ATTEMPTS: u32 = 1;
/// Percentage of requests that may be retried when a route does not say.
pub const DEFAULT_BUDGET_PERCENT: u32 = 20;
/// Bodies up to this size are buffered so they can be sent again.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;
/// The budget's accounting window.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Retries every window allows whatever the traffic.
pub const BUDGET_MIN_RETRIES: u64 = 10;
/// First backoff before a retry; doubles each retry up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(25);
/// Longest backoff before a retry.
pub const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the service never saw the request.
    ConnectFailure,
    /// The connection broke after the request was (perhaps partly) sent.
    Reset,
    /// No response headers within the per-try timeout.
    Timeout,
    /// The service answered with this status.
    Status(u16),
}

/// A condition a failed attempt is retried on (`retries.on` of a route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// `connect_failure`: no connection could be made (always safe to retry).
    ConnectFailure,
    /// `reset`: the connection broke after the request was (perhaps) sent.
    Reset,
    /// `timeout`: no response headers within the per-try timeout.
    Timeout,
    /// An HTTP status (4xx or 5xx) such as `503`.
    Status(u16),
}

/// A `retries.on` entry that names no condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a retry condition (connect_failure, reset, timeout or a 4xx/5xx status)")]
pub struct ParseRetryOnError(pub String);

impl std::str::FromStr for RetryOn {
    type Err = ParseRetryOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "connect_failure" => Ok(RetryOn::ConnectFailure),
            "reset" => Ok(RetryOn::Reset),
            "timeout" => Ok(RetryOn::Timeout),
            status => status
                .parse()
                .ok()
                .filter(|s| (400..600).contains(s))
                .map(RetryOn::Status)
                .ok_or_else(|| ParseRetryOnError(s.to_owned())),
        }
    }
}

impl std::fmt::Display for RetryOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryOn::ConnectFailure => f.write_str("connect_failure"),
            RetryOn::Reset => f.write_str("reset"),
            RetryOn::Timeout => f.write_str("timeout"),
            RetryOn::Status(s) => write!(f, "{s}"),
        }
    }
}

/// A route's retry settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    connect_failure: bool,
    reset: bool,
    timeout: bool,
    statuses: Vec<u16>,
    /// Retry POST, PATCH and the like too.
    pub non_idempotent: bool,
    /// Share of requests that may be retried.
    pub budget_percent: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_ATTEMPTS,
            connect_failure: true,
            reset: false,
            timeout: false,
            statuses: Vec::new(),
            non_idempotent: false,
            budget_percent: DEFAULT_BUDGET_PERCENT,
        }
    }
}

impl RetryPolicy {
    /// From a route's `retries`; an empty `on` keeps the default condition.
    pub fn from_spec(spec: Option<&Retries>) -> Result<Self, ParseRetryOnError> {
        let Some(spec) = spec else {
            return Ok(RetryPolicy::default());
        };
        let on = spec
            .on
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<RetryOn>, _>>()?;
        let mut policy = RetryPolicy::new(spec.attempts.unwrap_or(DEFAULT_ATTEMPTS), &on);
        policy.non_idempotent = spec.non_idempotent;
        policy.budget_percent = spec.budget_percent.unwrap_or(DEFAULT_BUDGET_PERCENT);
        Ok(policy)
    }

    /// `attempts` retries on the listed conditions (an empty list keeps the
    /// default, `connect_failure`), idempotent methods only, default budget.
    pub fn new(attempts: u32, on: &[RetryOn]) -> Self {
        let mut policy = RetryPolicy {
            attempts,
            ..RetryPolicy::default()
        };
        if !on.is_empty() {
            policy.connect_failure = false;
            for on in on {
                match *on {
                    RetryOn::ConnectFailure => policy.connect_failure = true,
                    RetryOn::Reset => policy.reset = true,
                    RetryOn::Timeout => policy.timeout = true,
                    RetryOn::Status(s) => policy.statuses.push(s),
                }
            }
        }
        policy
    }

    /// Whether requests with this method may be retried at all.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.non_idempotent || is_idempotent(method)
    }

    /// Whether this failure is one the route retries.
    pub fn retries_on(&self, failure: Failure) -> bool {
        match failure {
            Failure::ConnectFailure => self.connect_failure,
            Failure::Reset => self.reset,
            Failure::Timeout => self.timeout,
            Failure::Status(s) => self.statuses.contains(&s),
        }
    }

    /// Whether a retry may follow an attempt that reached the service (a
    /// reset, a timeout or a status is retried), so a request must be kept
    /// after it was sent; retrying only on connect failures needs no copy.
    pub fn retries_after_sending(&self) -> bool {
        self.attempts > 0 && (self.reset || self.timeout || !self.statuses.is_empty())
    }

    /// Whether a response status is one to retry on.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }
}

/// RFC 9110 §9.2.2 idempotent methods.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The delay before retry number `retry` (1-based): exponential with equal
/// jitter (half fixed, half random), so retries of many requests spread out.
pub fn backoff(retry: u32) -> Duration {
    backoff_between(retry, BACKOFF_BASE, BACKOFF_MAX)
}

/// [`backoff`] with another first delay and cap (e.g. the SDK's failover
/// between server nodes, which waits out a leader election).
pub fn backoff_between(retry: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1 << retry.saturating_sub(1).min(16));
    let cap = exp.min(max);
    let half = cap / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// Counts requests and retries per window; see the module docs.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    /// A budget of `percent` % of requests.
    pub fn new(percent: u32) -> Self {
        RetryBudget {
            percent,
            window: Mutex::new(Window {
                started: Instant::now(),
                requests: 0,
                retries: 0,
            }),
        }
    }

    fn current(&self, now: Instant) -> std::sync::MutexGuard<'_, Window> {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(w.started) >= BUDGET_WINDOW {
            *w = Window {
                started: now,
                requests: 0,
                retries: 0,
            };
        }
        w
    }

    /// Counts one request.
    pub fn record_request(&self, now: Instant) {
        self.current(now).requests += 1;
    }

    /// Takes a retry from the budget if there is room.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.current(now);
        let allowed = BUDGET_MIN_RETRIES + w.requests * u64::from(self.percent) / 100;
        if w.retries < allowed {
            w.retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(on: &[&str], attempts: Option<u32>) -> Retries {
        Retries {
            attempts,
            on: on.iter().map(|s| s.to_string()).collect(),
            budget_percent: None,
            non_idempotent: false,
        }
    }

    #[test]
    fn default_is_one_retry_on_connect_failure_for_idempotent_methods() {
        let p = RetryPolicy::from_spec(None).unwrap();
        assert_eq!(p.attempts, 1);
        assert!(p.retries_on(Failure::ConnectFailure));
        assert!(!p.retries_on(Failure::Reset));
        assert!(!p.retries_on(Failure::Timeout));
        assert!(!p.retries_on(Failure::Status(503)));
        assert!(p.allows_method(&Method::GET));
        assert!(p.allows_method(&Method::PUT));
        assert!(!p.allows_method(&Method::POST));
        assert!(!p.allows_method(&Method::PATCH));
        assert_eq!(p.budget_percent, 20);
    }

    #[test]
    fn listed_conditions_replace_the_default() {
        let p = RetryPolicy::from_spec(Some(&spec(&["503", "reset", "timeout"], Some(3)))).unwrap();
        assert_eq!(p.attempts, 3);
        assert!(!p.retries_on(Failure::ConnectFailure));
        assert!(p.retries_on(Failure::Reset));
        assert!(p.retries_on(Failure::Timeout));
        assert!(p.retries_on(Failure::Status(503)));
        assert!(!p.retries_on(Failure::Status(502)));
        assert!(p.retries_status(503));
        // An empty list keeps the default.
        let p = RetryPolicy::from_spec(Some(&spec(&[], None))).unwrap();
        assert!(p.retries_on(Failure::ConnectFailure));
        assert!(RetryPolicy::from_spec(Some(&spec(&["200"], None))).is_err());
        assert!(RetryPolicy::from_spec(Some(&spec(&["sometimes"], None))).is_err());
    }

    #[test]
    fn conditions_parse_and_print() {
        for s in ["connect_failure", "reset", "timeout", "503"] {
            assert_eq!(s.parse::<RetryOn>().unwrap().to_string(), s);
        }
        assert!("200".parse::<RetryOn>().is_err());
    }

    #[test]
    fn non_idempotent_opens_every_method() {
        let mut s = spec(&[], None);
        s.non_idempotent = true;
        let p = RetryPolicy::from_spec(Some(&s)).unwrap();
        assert!(p.allows_method(&Method::POST));
    }

    #[test]
    fn budget_allows_a_floor_plus_a_share() {
        let b = RetryBudget::new(20);
        let t = Instant::now();
        for _ in 0..100 {
            b.record_request(t);
        }
        let granted = (0..100).filter(|_| b.try_retry(t)).count();
        assert_eq!(granted as u64, BUDGET_MIN_RETRIES + 20);
        // A new window starts afresh.
        let later = t + BUDGET_WINDOW;
        assert!(b.try_retry(later));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for retry in 1..=10 {
            let d = backoff(retry);
            let cap = BACKOFF_BASE
                .saturating_mul(1 << (retry - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(d >= cap / 2 && d <= cap, "retry {retry}: {d:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(3)).collect();
        assert!(samples.len() > 1, "jitter");
    }
}
