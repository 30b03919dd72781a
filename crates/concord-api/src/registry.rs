//! Service registry wire types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Weight an instance gets when the registration does not say.
pub const DEFAULT_WEIGHT: u32 = 100;

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// Namespace of every registry call that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Consecutive successes that turn a failing check passing, unless the registration says.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
/// Consecutive failures that turn a passing check critical, unless the registration says.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
/// Probe interval of a check that gives none.
pub const DEFAULT_CHECK_INTERVAL_SECS: u32 = 10;
/// Probe timeout of a check that gives none.
pub const DEFAULT_CHECK_TIMEOUT_MS: u32 = 2_000;

/// Body of `PUT /v1/services/{service}/instances/{id}`.
///
/// Unknown fields are rejected so a typo never silently registers the wrong thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Present: the instance is ephemeral, bound to a lease of this TTL kept alive by heartbeats.
    #[serde(default)]
    pub ttl_secs: Option<u32>,
    /// Health checks the servers run (or, for `ttl` checks, wait to be told about).
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Consecutive successes that make a failing check pass again (default 2).
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that make a passing check critical (default 3).
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
    /// Remove the instance once it has been critical this long.
    #[serde(default)]
    pub deregister_critical_after_secs: Option<u32>,
}

impl Default for InstanceSpec {
    /// An empty registration with the default weight, to fill in with struct update syntax.
    fn default() -> Self {
        InstanceSpec {
            address: String::new(),
            port: 0,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            weight: DEFAULT_WEIGHT,
            ttl_secs: None,
            checks: Vec::new(),
            healthy_threshold: None,
            unhealthy_threshold: None,
            deregister_critical_after_secs: None,
        }
    }
}

/// How a check probes its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// An HTTP request whose status decides.
    Http,
    /// A TCP connect.
    Tcp,
    /// The gRPC health protocol (`grpc.health.v1.Health/Check`).
    Grpc,
    /// Nothing probes: the instance reports through `.../checks/{id}/pass|warn|fail`
    /// at least every `ttl_secs`, or the check goes critical.
    Ttl,
}

/// One health check as declared at registration.
///
/// Flat rather than one struct per type so every field has one name in JSON and the
/// same encoding in the log; `validate::check_spec` says which fields each type takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Unique within the instance; names the check in status and in TTL updates.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// `http`: the URL probed.
    #[serde(default)]
    pub url: Option<String>,
    /// `http`: the method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// `http`: accepted statuses, like `2xx`, `200`, `200-299` or `2xx,301` (default `2xx`).
    #[serde(default)]
    pub expect_status: Option<String>,
    /// `http`: request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `tcp` and `grpc`: `host:port` to connect to.
    #[serde(default)]
    pub address: Option<String>,
    /// `grpc`: the service name asked about (empty or absent: the whole server).
    #[serde(default)]
    pub service: Option<String>,
    /// Seconds between probes (default 10).
    #[serde(default)]
    pub interval_secs: Option<u32>,
    /// Probe timeout in milliseconds (default 2000).
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// `ttl`: how long a reported status stays valid.
    #[serde(default)]
    pub ttl_secs: Option<u32>,
}

impl CheckSpec {
    /// The probe interval, defaulted.
    pub fn interval_secs(&self) -> u32 {
        self.interval_secs.unwrap_or(DEFAULT_CHECK_INTERVAL_SECS)
    }

    /// The probe timeout, defaulted.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_CHECK_TIMEOUT_MS)
    }
}

/// Health of an instance, or of one of its checks (never `maintenance`).
///
/// Ordered from best to worst, so the instance's status is the maximum of its checks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Passing,
    Warning,
    Critical,
    /// Taken out of service by an operator; hides the checks' verdict.
    Maintenance,
}

impl HealthStatus {
    /// The lowercase name used in JSON, DNS and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Passing => "passing",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
            HealthStatus::Maintenance => "maintenance",
        }
    }
}

/// A check's current state, as every instance reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: CheckType,
    pub status: HealthStatus,
    /// What the last status change was based on (status line, error, TTL note).
    pub output: String,
    /// Revision of the check's last status change (its registration, at first).
    pub last_change_revision: u64,
}

/// Why an instance is in maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInfo {
    pub reason: String,
    /// Revision at which maintenance was turned on.
    pub revision: u64,
}

/// Body of `PUT /v1/services/{service}/instances/{id}/maintenance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub enabled: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Optional body of `PUT .../checks/{check}/pass|warn|fail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckUpdateRequest {
    /// Recorded as the check's output.
    #[serde(default)]
    pub output: Option<String>,
}

/// Answer to a TTL check update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckUpdateResponse {
    pub revision: u64,
    pub status: HealthStatus,
}

/// A registered instance as discovery returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    /// `null` for persistent instances; always present so clients can rely on the field.
    #[serde(default)]
    pub ttl_secs: Option<u32>,
    /// The worst of its checks' statuses, `maintenance` while in maintenance,
    /// `passing` with no checks.
    #[serde(default = "passing")]
    pub status: HealthStatus,
    #[serde(default)]
    pub checks: Vec<CheckState>,
    /// Present while the instance is in maintenance.
    #[serde(default)]
    pub maintenance: Option<MaintenanceInfo>,
}

fn passing() -> HealthStatus {
    HealthStatus::Passing
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub revision: u64,
    pub instance: Instance,
}

/// Answer to an instance heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub revision: u64,
    pub ttl_secs: u32,
}

/// Answer to writes that only report the revision they produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionResponse {
    pub revision: u64,
}

/// One row of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub name: String,
    /// All instances, whatever their status.
    pub instances: usize,
    /// Instances whose status is `passing`.
    #[serde(default)]
    pub passing: usize,
}

/// `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    pub revision: u64,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub services: Vec<ServiceSummary>,
}

/// `GET /v1/services/{service}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDetail {
    pub revision: u64,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    pub instances: Vec<Instance>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// [`DEFAULT_NAMESPACE`] as an owned string, for serde defaults elsewhere.
pub fn default_namespace_name() -> String {
    default_namespace()
}

/// One row of `GET /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSummary {
    pub name: String,
    pub services: usize,
    pub instances: usize,
}

/// `GET /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceList {
    pub revision: u64,
    pub namespaces: Vec<NamespaceSummary>,
}

/// Discovery filters: every condition must hold.
///
/// One definition for the HTTP API, DNS and client-side caches, so "passing" and
/// tag/meta matching mean the same everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only instances whose status is `passing`.
    pub passing: bool,
    /// Tags the instance must all carry.
    pub tags: Vec<String>,
    /// Meta pairs the instance must all have.
    pub meta: Vec<(String, String)>,
}

impl InstanceFilter {
    /// Whether `instance` passes every condition.
    pub fn matches(&self, instance: &Instance) -> bool {
        (!self.passing || instance.status == HealthStatus::Passing)
            && self.tags.iter().all(|t| instance.tags.contains(t))
            && self
                .meta
                .iter()
                .all(|(k, v)| instance.meta.get(k).is_some_and(|have| have == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(status: HealthStatus) -> Instance {
        Instance {
            id: "1".into(),
            address: "10.0.0.1".into(),
            port: 80,
            tags: vec!["a".into(), "b".into()],
            meta: [("zone".to_string(), "a".to_string())].into(),
            weight: 100,
            ttl_secs: None,
            status,
            checks: Vec::new(),
            maintenance: None,
        }
    }

    #[test]
    fn every_condition_must_hold() {
        let i = instance(HealthStatus::Passing);
        assert!(InstanceFilter::default().matches(&i));
        let f = |passing: bool, tags: &[&str], meta: &[(&str, &str)]| InstanceFilter {
            passing,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert!(f(true, &["a", "b"], &[("zone", "a")]).matches(&i));
        assert!(!f(false, &["a", "c"], &[]).matches(&i));
        assert!(!f(false, &[], &[("zone", "b")]).matches(&i));
        assert!(!f(false, &[], &[("region", "a")]).matches(&i));
        for status in [
            HealthStatus::Warning,
            HealthStatus::Critical,
            HealthStatus::Maintenance,
        ] {
            assert!(!f(true, &[], &[]).matches(&instance(status)));
            assert!(f(false, &[], &[]).matches(&instance(status)));
        }
    }
}
