//! DNS interface to the service registry (Consul-style names under `service.<domain>`).
//!
//! Answers come from local state through [`DnsSource`], so any node answers without a
//! Raft round trip; the price is that a follower may lag the leader by a few entries,
//! which a TTL of seconds already allows for. Layers: `name` turns a query name into
//! what it asks for (pure), `answer` turns that into records (pure over a
//! `DnsSource`), `server` is the hickory glue (UDP and TCP).

mod answer;
mod metrics;
mod name;
mod server;

pub use metrics::DnsMetrics;
pub use server::serve;

/// What the DNS server needs from the registry; answers come from local state.
pub trait DnsSource: Send + Sync + 'static {
    /// Whether `namespace` exists (has or had services).
    fn has_namespace(&self, namespace: &str) -> bool;
    /// Passing instances of `service` in `namespace` carrying `tag` (all instances when `None`);
    /// `None` when the service is unknown in that namespace (NXDOMAIN); `Some(vec![])` when it
    /// exists but nothing passes (empty NOERROR).
    ///
    /// Names and tags arrive lowercased (DNS names are case-insensitive), so a tag with
    /// capitals matches only if the implementation compares tags case-insensitively.
    fn lookup(&self, namespace: &str, service: &str, tag: Option<&str>) -> Option<Vec<DnsTarget>>;
}

/// One instance as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// Instance id: 1-128 chars of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    /// An IPv4/IPv6 literal (answered as A/AAAA), or a hostname (answered as CNAME).
    pub address: String,
    pub port: u16,
    /// SRV weight, clamped to 1..=65535 on the wire.
    pub weight: u32,
}

/// Settings of the DNS interface; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The zone we are authoritative for; names outside it are REFUSED.
    pub domain: String,
    /// TTL of every record, including the SOA that negative answers carry.
    pub ttl_secs: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "concord.".to_owned(),
            ttl_secs: 5,
        }
    }
}

/// Why the DNS server could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// `DnsConfig::domain` is not a valid DNS name.
    #[error("invalid DNS domain {domain:?}: {reason}")]
    Domain { domain: String, reason: String },
    /// A socket failed for good while serving.
    #[error("dns server: {0}")]
    Server(#[from] hickory_server::net::NetError),
}

/// The namespace of names that do not spell one.
const DEFAULT_NAMESPACE: &str = "default";

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
