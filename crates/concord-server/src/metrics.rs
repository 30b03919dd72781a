//! Prometheus metrics for one node (prometheus-client), served at `/metrics`.
//!
//! Request metrics are recorded by a middleware keyed by the matched route (not the
//! raw path, which would explode cardinality); state gauges are read at scrape time.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod write_path;

pub use write_path::WritePathMetrics;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of the checks-by-status gauge and the transitions counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// Labels of the probe latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub check_type: String,
}

/// Labels of a latency histogram by route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric a node exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub propose_latency: Histogram,
    pub apply_latency: Histogram,
    pub raft_term: Gauge,
    pub raft_leader: Gauge,
    pub raft_commit_index: Gauge,
    pub raft_applied_index: Gauge,
    pub revision: Gauge,
    pub kv_keys: Gauge,
    pub services: Gauge,
    pub instances: Gauge,
    pub leases: Gauge,
    pub watchers: Gauge,
    pub lease_expiries: Counter,
    /// Checks by current status (set at scrape time).
    pub checks: Family<StatusLabels, Gauge>,
    /// Check status changes this node proposed, by new status.
    pub check_transitions: Family<StatusLabels, Counter>,
    /// Probe latency by check type.
    pub probe_latency: Family<ProbeLabels, Histogram, fn() -> Histogram>,
    /// Config items (set at scrape time).
    pub config_items: Gauge,
    /// Config versions published through this node.
    pub config_publishes: Counter,
    /// Time from a config change being proposed to a watch stream sending it.
    pub config_push: Histogram,
    /// DNS queries by type and answer code.
    pub dns: std::sync::Arc<crate::dns::DnsMetrics>,
    /// Transactions and participant calls.
    pub txn: crate::transactions::metrics::TxnMetrics,
    /// Group commit and log syncs (set at scrape time).
    pub write_path: WritePathMetrics,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("concord");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let propose_latency = latency_histogram();
        let apply_latency = Histogram::new(exponential_buckets(0.000_001, 2.0, 20));
        registry.register(
            "raft_apply_duration_seconds",
            "Time to apply one batch of committed log entries to the state machine",
            apply_latency.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_latency.clone(),
        );
        registry.register(
            "raft_propose_duration_seconds",
            "Time from proposing a command to having it committed and applied",
            propose_latency.clone(),
        );
        let m = Metrics {
            http_requests,
            http_latency,
            propose_latency,
            apply_latency,
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            revision: Gauge::default(),
            kv_keys: Gauge::default(),
            services: Gauge::default(),
            instances: Gauge::default(),
            leases: Gauge::default(),
            watchers: Gauge::default(),
            lease_expiries: Counter::default(),
            checks: Family::default(),
            check_transitions: Family::default(),
            probe_latency:
                Family::<ProbeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                    latency_histogram,
                ),
            config_items: Gauge::default(),
            config_publishes: Counter::default(),
            config_push: latency_histogram(),
            dns: std::sync::Arc::new(crate::dns::DnsMetrics::new(&mut registry)),
            txn: crate::transactions::metrics::TxnMetrics::new(&mut registry),
            write_path: WritePathMetrics::new(&mut registry),
            registry,
        };
        let mut m = m;
        let gauges: [(&str, &str, Gauge); 9] = [
            ("raft_term", "Current Raft term", m.raft_term.clone()),
            (
                "raft_leader",
                "Node id of the known leader (0 when none)",
                m.raft_leader.clone(),
            ),
            (
                "raft_commit_index",
                "Last committed Raft log index",
                m.raft_commit_index.clone(),
            ),
            (
                "raft_applied_index",
                "Last applied Raft log index",
                m.raft_applied_index.clone(),
            ),
            ("revision", "Current store revision", m.revision.clone()),
            ("kv_keys", "Keys in the KV store", m.kv_keys.clone()),
            (
                "services",
                "Services with at least one instance",
                m.services.clone(),
            ),
            ("instances", "Registered instances", m.instances.clone()),
            ("leases", "Granted leases", m.leases.clone()),
        ];
        for (name, help, g) in gauges {
            m.registry.register(name, help, g);
        }
        m.registry
            .register("watchers", "Open watch streams", m.watchers.clone());
        m.registry.register(
            "lease_expiries",
            "Leases this node expired as leader",
            m.lease_expiries.clone(),
        );
        m.registry.register(
            "health_checks",
            "Health checks by current status",
            m.checks.clone(),
        );
        m.registry.register(
            "health_check_transitions",
            "Check status changes this node proposed, by new status",
            m.check_transitions.clone(),
        );
        m.registry.register(
            "health_probe_duration_seconds",
            "Health probe latency by check type",
            m.probe_latency.clone(),
        );
        m.registry
            .register("config_items", "Config items", m.config_items.clone());
        m.registry.register(
            "config_publishes",
            "Config versions published through this node",
            m.config_publishes.clone(),
        );
        m.registry.register(
            "config_push_duration_seconds",
            "Time from a config change being proposed to a watch stream sending it",
            m.config_push.clone(),
        );
        m
    }

    /// Records a config event leaving for a watcher; `at_ms` is when it was proposed.
    pub fn observe_config_push(&self, at_ms: u64) {
        let now = crate::configs::now_ms();
        self.config_push
            .observe(now.saturating_sub(at_ms) as f64 / 1000.0);
    }

    /// Counts one check status change this node proposed.
    pub fn observe_transition(&self, to: concord_api::registry::HealthStatus) {
        self.check_transitions
            .get_or_create(&StatusLabels {
                status: to.as_str().to_owned(),
            })
            .inc();
    }

    /// Records one served request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
