//! Gateway routes as stored in Concord and pushed to every gateway.
//!
//! Only `match` and one of `service` / `split` are required; every other part is
//! optional and the gateway applies the documented defaults (docs/gateway.md,
//! and `concord_gateway::route`).
//! Unknown fields are refused everywhere so a typo never silently changes routing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A route: which requests it takes and where they go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    /// Among equally specific matches, higher wins.
    #[serde(default)]
    pub priority: i32,
    /// The target service (or use `split`).
    #[serde(default)]
    pub service: Option<String>,
    /// Registry namespace of the targets (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only instances with all these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Weighted traffic split over several targets (instead of `service`).
    #[serde(default)]
    pub split: Vec<SplitTarget>,
    /// Remove the matched `path_prefix` before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the whole path before forwarding.
    #[serde(default)]
    pub rewrite_path: Option<String>,
    #[serde(default)]
    pub request_headers: Option<HeaderRules>,
    #[serde(default)]
    pub response_headers: Option<HeaderRules>,
    /// Balancing policy (default `p2c_ewma`).
    #[serde(default)]
    pub lb: Option<String>,
    /// What `ring_hash` / `maglev` hash: `header:NAME`, `cookie:NAME`, `source_ip`, `path`.
    #[serde(default)]
    pub hash_on: Option<String>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    #[serde(default)]
    pub retries: Option<Retries>,
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    #[serde(default)]
    pub outlier: Option<Outlier>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub fallback: Option<Fallback>,
}

/// Which requests a route takes: every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_exact: Option<String>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// One target of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitTarget {
    pub service: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub weight: u32,
}

/// Headers to add and remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Cookie-based stickiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    pub cookie: String,
    #[serde(default)]
    pub ttl_secs: Option<u32>,
}

/// Deadlines, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default)]
    pub connect_ms: Option<u32>,
    #[serde(default)]
    pub per_try_ms: Option<u32>,
    #[serde(default)]
    pub total_ms: Option<u32>,
}

/// Retry policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    #[serde(default)]
    pub attempts: Option<u32>,
    /// `connect_failure`, `reset`, `timeout`, or an HTTP status like `503`.
    #[serde(default)]
    pub on: Vec<String>,
    #[serde(default)]
    pub budget_percent: Option<u32>,
    #[serde(default)]
    pub non_idempotent: bool,
}

/// Error-rate and slow-call breaker with a concurrency cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default)]
    pub failure_rate: Option<f64>,
    #[serde(default)]
    pub slow_call_ms: Option<u32>,
    #[serde(default)]
    pub slow_call_rate: Option<f64>,
    #[serde(default)]
    pub min_requests: Option<u32>,
    #[serde(default)]
    pub window_secs: Option<u32>,
    #[serde(default)]
    pub open_secs: Option<u32>,
    #[serde(default)]
    pub half_open_requests: Option<u32>,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

/// Outlier ejection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    #[serde(default)]
    pub base_ejection_secs: Option<u32>,
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
}

/// Local token-bucket rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: f64,
    #[serde(default)]
    pub burst: Option<u32>,
    /// `route`, `source_ip` or `header:NAME` (default `route`).
    #[serde(default)]
    pub key: Option<String>,
}

/// What to answer when no endpoint can take the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The balancing policies a route may name.
pub const LB_POLICIES: [&str; 7] = [
    "p2c_ewma",
    "round_robin",
    "weighted_round_robin",
    "random",
    "least_request",
    "ring_hash",
    "maglev",
];

/// A stored route, as listing and the watch return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub name: String,
    pub route: RouteSpec,
    /// Revision of its last change.
    pub revision: u64,
}

/// `GET /v1/gateway/routes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteList {
    pub revision: u64,
    pub routes: Vec<StoredRoute>,
}

/// What happened to a route, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteEventKind {
    Put,
    Delete,
}

/// The `data` of a route watch event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteEvent {
    pub revision: u64,
    #[serde(rename = "type")]
    pub kind: RouteEventKind,
    pub name: String,
    /// The route as stored (absent for deletes).
    #[serde(default)]
    pub route: Option<RouteSpec>,
}
