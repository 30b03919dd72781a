//! The gateway's Prometheus metrics (prometheus-client), served by the admin
//! listener at `/metrics`. Labels are route and service names, never paths,
//! so cardinality stays bounded by configuration.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::circuit_breaker::BreakerState;

/// Labels of a finished request. `route` and `service` are empty when no
/// route matched.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name.
    pub route: String,
    /// Service that answered (or would have).
    pub service: String,
    /// Status sent to the client.
    pub status: u16,
}

/// Labels of an upstream attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Route name.
    pub route: String,
    /// Service of the endpoint.
    pub service: String,
}

/// Labels by route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name.
    pub route: String,
}

/// Labels of a route target's circuit breaker.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    /// Route name.
    pub route: String,
    /// The target, `namespace/service[tags]`.
    pub target: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// One route target's metric handles, looked up in the families once
/// instead of on every request (each lookup allocates its label strings and
/// takes the family's lock). A route change compiles new targets with empty
/// caches; the families keep the series, so counts carry on.
#[derive(Debug, Default)]
pub struct TargetMetrics {
    handles: OnceLock<TargetHandles>,
}

#[derive(Debug)]
struct TargetHandles {
    upstream: Histogram,
    /// Request counters by status, 100..=599, made on first use.
    statuses: Box<[OnceLock<Counter>]>,
}

impl TargetHandles {
    fn status_slot(&self, status: u16) -> Option<&OnceLock<Counter>> {
        self.statuses.get(usize::from(status.checked_sub(100)?))
    }
}

impl TargetMetrics {
    fn handles(&self, metrics: &Metrics, route: &str, service: &str) -> &TargetHandles {
        self.handles.get_or_init(|| TargetHandles {
            upstream: metrics
                .upstream_latency
                .get_or_create(&UpstreamLabels {
                    route: route.to_owned(),
                    service: service.to_owned(),
                })
                .clone(),
            statuses: (100..600).map(|_| OnceLock::new()).collect(),
        })
    }
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, service and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to response headers of each upstream attempt.
    pub upstream_latency: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    /// Retries by route.
    pub retries: Family<RouteLabels, Counter>,
    /// Requests answered 429 by route.
    pub rate_limited: Family<RouteLabels, Counter>,
    /// Client connections open now.
    pub active_connections: Gauge,
    /// Circuit breaker state by route and target: 0 closed, 1 open, 2 half-open.
    pub breaker_state: Family<BreakerLabels, Gauge>,
    /// Endpoints ejected by outlier detection, by route.
    pub ejections: Family<RouteLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("concord_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let upstream_latency =
            Family::<UpstreamLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let retries = Family::<RouteLabels, Counter>::default();
        let rate_limited = Family::<RouteLabels, Counter>::default();
        let active_connections = Gauge::default();
        let breaker_state = Family::<BreakerLabels, Gauge>::default();
        let ejections = Family::<RouteLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, service and status",
            requests.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time to response headers of each attempt, by route and service",
            upstream_latency.clone(),
        );
        registry.register("retries", "Retried attempts by route", retries.clone());
        registry.register(
            "rate_limited",
            "Requests refused by a route's rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "active_connections",
            "Client connections open now",
            active_connections.clone(),
        );
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker state by route and target: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        registry.register(
            "ejections",
            "Endpoints ejected by a route's outlier detection",
            ejections.clone(),
        );
        Metrics {
            breaker_state,
            ejections,
            registry,
            requests,
            upstream_latency,
            retries,
            rate_limited,
            active_connections,
        }
    }

    /// Counts a finished request.
    pub fn request(&self, route: &str, service: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                service: service.to_owned(),
                status,
            })
            .inc();
    }

    /// Records one upstream attempt's latency.
    pub fn upstream(&self, route: &str, service: &str, latency: Duration) {
        self.upstream_latency
            .get_or_create(&UpstreamLabels {
                route: route.to_owned(),
                service: service.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Counts a finished request that `target` handled, through its cache.
    pub fn target_request(&self, target: &TargetMetrics, route: &str, service: &str, status: u16) {
        let Some(slot) = target.handles(self, route, service).status_slot(status) else {
            return self.request(route, service, status);
        };
        slot.get_or_init(|| {
            self.requests
                .get_or_create(&RequestLabels {
                    route: route.to_owned(),
                    service: service.to_owned(),
                    status,
                })
                .clone()
        })
        .inc();
    }

    /// Records an upstream attempt's latency through `target`'s cache.
    pub fn target_upstream(
        &self,
        target: &TargetMetrics,
        route: &str,
        service: &str,
        latency: Duration,
    ) {
        target
            .handles(self, route, service)
            .upstream
            .observe(latency.as_secs_f64());
    }

    /// Counts a retry.
    pub fn retry(&self, route: &str) {
        self.retries
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Counts a rate-limited request.
    pub fn limited(&self, route: &str) {
        self.rate_limited
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Counts an outlier ejection.
    pub fn ejected(&self, route: &str) {
        self.ejections
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Sets a breaker's state gauge.
    pub fn breaker(&self, route: &str, target: &str, state: BreakerState) {
        self.breaker_state
            .get_or_create(&BreakerLabels {
                route: route.to_owned(),
                target: target.to_owned(),
            })
            .set(state.gauge());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts a connection as active until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl ConnectionGuard {
    /// Increments the gauge.
    pub fn new(metrics: &Metrics) -> Self {
        metrics.active_connections.inc();
        ConnectionGuard(metrics.active_connections.clone())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
