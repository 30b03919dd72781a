//! A stored route compiled for the request path, with its defaults.
//!
//! Defaults, for whatever a route leaves out:
//!
//! | setting | default |
//! |---|---|
//! | `namespace` | `default` |
//! | `lb` | `p2c_ewma` |
//! | `timeouts.connect_ms` | 1000 ([`DEFAULT_CONNECT_TIMEOUT`]) |
//! | `timeouts.per_try_ms` | 15000 ([`DEFAULT_PER_TRY_TIMEOUT`]) |
//! | `timeouts.total_ms` | 30000 ([`DEFAULT_TOTAL_TIMEOUT`]) |
//! | `retries` | 1 retry, on `connect_failure`, idempotent methods, 20 % budget (see [`crate::retry`]) |
//! | `rate_limit.burst` | the rate, rounded up (at least 1) |
//! | `rate_limit.key` | `route` |
//! | `fallback.content_type` | `text/plain` |
//! | `circuit_breaker.*` | see [`crate::circuit_breaker`] |
//! | `outlier.*` | see [`crate::outlier`] |
//! | `sticky.ttl_secs` | none: a session cookie (see [`crate::sticky`]) |

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_api::gateway::{Fallback, RouteSpec, StoredRoute};
use concord_balance::{Balancer, Endpoint, Pick, Policy, hash_key};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use rand::Rng;

use crate::body::{Body, full};
use crate::circuit_breaker::{BreakerConfig, CircuitBreaker};
use crate::error::RouteError;
use crate::headers::HeaderRules;
use crate::matching::{Matcher, PathMatch, RequestView};
use crate::metrics::TargetMetrics;
use crate::outlier::{OutlierConfig, OutlierDetector};
use crate::rate_limit::RateLimiter;
use crate::retry::{RetryBudget, RetryPolicy};
use crate::sticky::{self, StickyConfig};

/// Time to establish a TCP connection to an endpoint (shared with the SDK).
pub use crate::retry::DEFAULT_CONNECT_TIMEOUT;
/// Time one attempt may take to get response headers (shared with the SDK).
pub use crate::retry::DEFAULT_PER_TRY_TIMEOUT;
/// Time all attempts together may take to get response headers (shared with the SDK).
pub use crate::retry::DEFAULT_TOTAL_TIMEOUT;
/// Registry namespace of targets that do not name one.
pub const DEFAULT_NAMESPACE: &str = concord_api::registry::DEFAULT_NAMESPACE;

/// One set of instances a route sends traffic to: a service in a namespace,
/// restricted to instances carrying every tag. Tags are sorted so equal sets
/// share one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    /// Registry namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Required tags, sorted and deduplicated.
    pub tags: Vec<String>,
}

impl TargetKey {
    /// A key with its tags normalised.
    pub fn new(namespace: &str, service: &str, tags: &[String]) -> Self {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        TargetKey {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            tags,
        }
    }
}

impl std::fmt::Display for TargetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service)?;
        if !self.tags.is_empty() {
            write!(f, "[{}]", self.tags.join(","))?;
        }
        Ok(())
    }
}

/// The endpoint list a target's balancers were last given, for choosing an
/// endpoint by id (sticky sessions) rather than by policy.
pub trait EndpointSource: std::fmt::Debug + Send + Sync {
    /// The target's passing endpoints now.
    fn endpoints(&self) -> Arc<Vec<Endpoint>>;
}

/// What discovery supplies for each target of a compiled route.
#[derive(Debug)]
pub struct TargetSource {
    /// The balancer for the route's policy.
    pub balancer: Arc<Balancer>,
    /// The endpoints the balancer chooses among.
    pub endpoints: Arc<dyn EndpointSource>,
}

/// A split target with its balancer.
#[derive(Debug)]
pub struct RouteTarget {
    /// Which instances.
    pub key: TargetKey,
    /// Share of the route's traffic.
    pub weight: u32,
    /// Chooses among the target's passing instances.
    pub balancer: Arc<Balancer>,
    /// The same instances, by id.
    pub endpoints: Arc<dyn EndpointSource>,
    /// The route's circuit breaker for this target, when the route has one.
    /// It lives as long as the compiled route: a route change starts it closed.
    pub breaker: Option<CircuitBreaker>,
    /// The route's outlier detector for this target, when the route has one;
    /// like the breaker, a route change starts it with nothing ejected.
    pub outlier: Option<OutlierDetector>,
    /// Its request and latency metric handles.
    pub metrics: TargetMetrics,
}

impl RouteTarget {
    /// Whether picks should skip endpoint `id` now.
    fn is_ejected(&self, id: &str, now: Instant) -> bool {
        self.outlier.as_ref().is_some_and(|o| o.is_ejected(id, now))
    }

    /// The passing, non-ejected endpoint whose sticky token is `token`.
    fn sticky_endpoint(&self, token: &str, now: Instant) -> Option<Chosen> {
        let endpoints = self.endpoints.endpoints();
        let index = endpoints.iter().position(|e| {
            e.weight > 0 && sticky::token(&e.id) == token && !self.is_ejected(&e.id, now)
        })?;
        Some(Chosen::Pinned { endpoints, index })
    }
}

/// The endpoint an attempt goes to.
#[derive(Debug)]
pub enum Chosen {
    /// Picked by the target's balancer, which counts it in flight.
    Balanced(Pick),
    /// Named by a sticky cookie; the balancer does not see it.
    Pinned {
        /// The target's endpoints when it was chosen.
        endpoints: Arc<Vec<Endpoint>>,
        /// Which one.
        index: usize,
    },
}

impl Chosen {
    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Chosen::Balanced(pick) => &pick.endpoint,
            Chosen::Pinned { endpoints, index } => &endpoints[*index],
        }
    }

    /// Ends the attempt; a balanced pick learns its latency (see
    /// [`Pick::finish`]).
    pub fn finish(self, latency: Duration, success: bool) {
        if let Chosen::Balanced(pick) = self {
            pick.finish(latency, success);
        }
    }
}

/// What the hash policies hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// The client's IP address.
    SourceIp,
    /// The request path.
    Path,
}

impl HashOn {
    /// Parses `header:NAME`, `cookie:NAME`, `source_ip` or `path`.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        let bad = |reason: &str| RouteError::invalid("hash_on", reason);
        match s.split_once(':') {
            Some(("header", name)) => HeaderName::from_bytes(name.as_bytes())
                .map(HashOn::Header)
                .map_err(|_| bad("not a valid header name")),
            Some(("cookie", name)) if !name.is_empty() => Ok(HashOn::Cookie(name.to_owned())),
            None if s == "source_ip" => Ok(HashOn::SourceIp),
            None if s == "path" => Ok(HashOn::Path),
            _ => Err(bad("expected header:NAME, cookie:NAME, source_ip or path")),
        }
    }

    /// The request's key, or `None` when the attribute is absent (the hash
    /// policies then pick at random).
    pub fn key(&self, req: &RequestView<'_>, client: IpAddr) -> Option<u64> {
        match self {
            HashOn::Header(name) => req.headers.get(name).map(|v| hash_key(v.as_bytes())),
            HashOn::Cookie(name) => cookie(req.headers, name).map(|v| hash_key(v.as_bytes())),
            HashOn::SourceIp => Some(hash_key(client.to_string().as_bytes())),
            HashOn::Path => Some(hash_key(req.path.as_bytes())),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the path changes on the way upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Unchanged.
    Keep,
    /// Remove the matched prefix (the result always starts with `/`).
    StripPrefix(String),
    /// Replace the whole path; the query is kept.
    Replace(String),
}

impl Rewrite {
    /// The upstream path and query.
    pub fn apply(&self, path: &str, query: Option<&str>) -> String {
        let path = match self {
            Rewrite::Keep => path.to_owned(),
            Rewrite::Replace(p) => p.clone(),
            Rewrite::StripPrefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str()).unwrap_or(path);
                if rest.starts_with('/') {
                    rest.to_owned()
                } else {
                    format!("/{rest}")
                }
            }
        };
        match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    }
}

/// The three deadlines of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// One attempt, until response headers.
    pub per_try: Duration,
    /// All attempts together, until response headers.
    pub total: Duration,
}

/// A route ready to serve.
#[derive(Debug)]
pub struct Route {
    /// Its name in Concord.
    pub name: String,
    /// Revision of its last change.
    pub revision: u64,
    /// As stored, for the admin listing and change detection.
    pub spec: RouteSpec,
    /// Tie-breaker among equally specific matches.
    pub priority: i32,
    /// Which requests it takes.
    pub matcher: Matcher,
    /// Where they go, with weights above zero.
    pub targets: Vec<RouteTarget>,
    total_weight: u64,
    /// The balancing policy of every target.
    pub policy: Policy,
    /// What hash policies hash.
    pub hash_on: Option<HashOn>,
    /// Path rewriting.
    pub rewrite: Rewrite,
    /// Header changes on the way to the service.
    pub request_headers: HeaderRules,
    /// Header changes on the way back.
    pub response_headers: HeaderRules,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// When to retry.
    pub retry: RetryPolicy,
    /// How many retries recent traffic allows.
    pub budget: RetryBudget,
    /// The local rate limit, if any.
    pub rate_limit: Option<RateLimiter>,
    /// The answer when no endpoint is available.
    pub fallback: Option<Fallback>,
    /// Sticky sessions by cookie, if any.
    pub sticky: Option<StickyConfig>,
}

/// The targets of a spec with their weights (zero weights included).
pub fn targets_of(spec: &RouteSpec) -> Vec<(TargetKey, u32)> {
    let route_ns = spec.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    if spec.split.is_empty() {
        return spec
            .service
            .iter()
            .map(|service| (TargetKey::new(route_ns, service, &spec.tags), 1))
            .collect();
    }
    spec.split
        .iter()
        .map(|t| {
            let ns = t.namespace.as_deref().unwrap_or(route_ns);
            (TargetKey::new(ns, &t.service, &t.tags), t.weight)
        })
        .collect()
}

fn millis(ms: Option<u32>, default: Duration) -> Duration {
    ms.map_or(default, |ms| Duration::from_millis(u64::from(ms)))
}

impl Route {
    /// Compiles a stored route; `source_for` supplies (and starts
    /// discovery for) the balancer and endpoints of each target.
    pub fn compile(
        stored: &StoredRoute,
        source_for: &mut dyn FnMut(&TargetKey, Policy) -> TargetSource,
    ) -> Result<Route, RouteError> {
        let spec = &stored.route;
        let policy = match &spec.lb {
            Some(name) => name
                .parse::<Policy>()
                .map_err(|e| RouteError::invalid("lb", e))?,
            None => Policy::default(),
        };
        let breaker = spec.circuit_breaker.as_ref().map(BreakerConfig::from_spec);
        let outlier = spec.outlier.as_ref().map(OutlierConfig::from_spec);
        let targets: Vec<RouteTarget> = targets_of(spec)
            .into_iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(key, weight)| {
                let source = source_for(&key, policy);
                RouteTarget {
                    balancer: source.balancer,
                    endpoints: source.endpoints,
                    breaker: breaker.clone().map(CircuitBreaker::new),
                    outlier: outlier.clone().map(OutlierDetector::new),
                    metrics: TargetMetrics::default(),
                    key,
                    weight,
                }
            })
            .collect();
        let total_weight = targets.iter().map(|t| u64::from(t.weight)).sum();
        let matcher = Matcher::compile(&spec.matches)?;
        let rewrite = match (&spec.rewrite_path, matcher.path()) {
            (Some(p), _) => Rewrite::Replace(p.clone()),
            (None, PathMatch::Prefix(prefix)) if spec.strip_prefix => {
                Rewrite::StripPrefix(prefix.clone())
            }
            _ => Rewrite::Keep,
        };
        let t = spec.timeouts.clone().unwrap_or_default();
        let retry = RetryPolicy::from_spec(spec.retries.as_ref())
            .map_err(|e| RouteError::invalid("retries.on", e.to_string()))?;
        Ok(Route {
            name: stored.name.clone(),
            revision: stored.revision,
            priority: spec.priority,
            matcher,
            targets,
            total_weight,
            policy,
            hash_on: spec.hash_on.as_deref().map(HashOn::parse).transpose()?,
            rewrite,
            request_headers: HeaderRules::compile(
                "request_headers",
                spec.request_headers.as_ref(),
            )?,
            response_headers: HeaderRules::compile(
                "response_headers",
                spec.response_headers.as_ref(),
            )?,
            timeouts: Timeouts {
                connect: millis(t.connect_ms, DEFAULT_CONNECT_TIMEOUT),
                per_try: millis(t.per_try_ms, DEFAULT_PER_TRY_TIMEOUT),
                total: millis(t.total_ms, DEFAULT_TOTAL_TIMEOUT),
            },
            budget: RetryBudget::new(retry.budget_percent),
            retry,
            rate_limit: spec
                .rate_limit
                .as_ref()
                .map(RateLimiter::from_spec)
                .transpose()?,
            fallback: spec.fallback.clone(),
            sticky: spec.sticky.as_ref().map(StickyConfig::from_spec),
            spec: spec.clone(),
        })
    }

    /// Chooses a target by weight, then an endpoint with its balancer. A
    /// target without endpoints passes its turn to the others, so a split
    /// keeps working while one side is empty. `avoid` names an endpoint
    /// that just failed: a retry tries a few picks to land elsewhere. Picks
    /// skip endpoints the target's outlier detector has ejected the same way.
    pub fn pick(&self, key: Option<u64>, avoid: Option<&str>) -> Option<(&RouteTarget, Pick)> {
        // Most routes have one target: no draw for them.
        let first = match self.targets.len() {
            0 | 1 => 0,
            _ => self.weighted_index(rand::rng().random_range(0..self.total_weight.max(1))),
        };
        let order = (0..self.targets.len()).map(|i| (first + i) % self.targets.len());
        // The clock is read only when some target ejects outliers.
        let now = std::cell::OnceCell::new();
        for i in order {
            let target = &self.targets[i];
            let ejected = |id: &str| {
                target.outlier.is_some() && target.is_ejected(id, *now.get_or_init(Instant::now))
            };
            if let Some(pick) = pick_avoiding(&target.balancer, key, avoid, &ejected) {
                return Some((target, pick));
            }
        }
        None
    }

    /// The endpoint a sticky cookie's `token` names, when some target still
    /// has it passing and not ejected.
    pub fn pick_sticky(&self, token: &str) -> Option<(&RouteTarget, Chosen)> {
        let now = Instant::now();
        self.targets
            .iter()
            .find_map(|t| Some((t, t.sticky_endpoint(token, now)?)))
    }

    /// The index of the target that owns `point` in `[0, total_weight)`.
    fn weighted_index(&self, mut point: u64) -> usize {
        for (i, t) in self.targets.iter().enumerate() {
            let w = u64::from(t.weight);
            if point < w {
                return i;
            }
            point -= w;
        }
        0
    }

    /// The fallback answer, when the route has one.
    pub fn fallback_response(&self) -> Option<Response<Body>> {
        let f = self.fallback.as_ref()?;
        let mut response = Response::new(full(f.body.clone()));
        *response.status_mut() = StatusCode::from_u16(f.status).ok()?;
        let content_type = f.content_type.as_deref().unwrap_or("text/plain");
        if let Ok(v) = HeaderValue::from_str(content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        Some(response)
    }

    /// The services of the targets, for metrics and logs.
    pub fn service_label(&self) -> &str {
        self.targets.first().map_or("", |t| t.key.service.as_str())
    }
}

/// Most picks one request makes to get past ejected endpoints.
const MAX_PICKS: usize = 16;

/// Picks until one lands on an endpoint that is neither `avoid` nor
/// ejected: three picks, or one more than the target has endpoints (up to
/// [`MAX_PICKS`]) when ejection is the obstacle, so round robin walks past
/// every ejected endpoint. A hash policy given a key lands on the same
/// endpoint every time, so it keeps its ejected endpoint. When none
/// qualifies, an endpoint that is only `avoid` beats an ejected one, and an
/// ejected one beats failing: a target whose endpoints are all ejected or
/// avoided still serves (a single-endpoint target, an ejection cap of 100 %).
fn pick_avoiding(
    balancer: &Balancer,
    key: Option<u64>,
    avoid: Option<&str>,
    ejected: &dyn Fn(&str) -> bool,
) -> Option<Pick> {
    let mut fallback: Option<(bool, Pick)> = None;
    let mut picks = 0;
    loop {
        let pick = balancer.pick(key)?;
        picks += 1;
        let is_ejected = ejected(pick.endpoint.id.as_str());
        if !is_ejected && avoid != Some(pick.endpoint.id.as_str()) {
            return Some(pick);
        }
        let limit = if is_ejected {
            (balancer.len() + 1).clamp(3, MAX_PICKS)
        } else {
            3
        };
        // Keep the better fallback: not ejected over ejected, later over earlier.
        if fallback.as_ref().is_none_or(|(e, _)| *e || !is_ejected) {
            fallback = Some((is_ejected, pick));
        }
        if picks >= limit {
            return fallback.map(|(_, p)| p);
        }
    }
}

/// A target source with a fixed endpoint list, for unit tests.
#[cfg(test)]
pub(crate) fn fixed(balancer: Balancer, endpoints: Vec<Endpoint>) -> TargetSource {
    #[derive(Debug)]
    struct Fixed(Arc<Vec<Endpoint>>);
    impl EndpointSource for Fixed {
        fn endpoints(&self) -> Arc<Vec<Endpoint>> {
            Arc::clone(&self.0)
        }
    }
    TargetSource {
        balancer: Arc::new(balancer),
        endpoints: Arc::new(Fixed(Arc::new(endpoints))),
    }
}

#[cfg(test)]
mod tests;
