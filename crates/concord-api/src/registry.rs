//! Service registry wire types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Weight an instance gets when the registration does not say.
pub const DEFAULT_WEIGHT: u32 = 100;

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

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
    pub instances: usize,
}

/// `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    pub revision: u64,
    pub services: Vec<ServiceSummary>,
}

/// `GET /v1/services/{service}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDetail {
    pub revision: u64,
    pub name: String,
    pub instances: Vec<Instance>,
}
