//! The unit a balancer chooses between.

use serde::{Deserialize, Serialize};

/// One backend instance a request can be sent to.
///
/// `id` is the identity the balancer keys everything on: per-endpoint load
/// survives [`Balancer::set_endpoints`](crate::Balancer::set_endpoints) for ids
/// that remain, and hash policies place an endpoint by its id, so an instance
/// that changes address keeps its keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Stable identity, unique within one set (e.g. the registry instance id).
    pub id: String,
    /// Where to connect, as `host:port`.
    pub addr: String,
    /// Relative share of traffic; `0` means never chosen (draining). Defaults to
    /// `1` when absent from serialized input, so a missing field never silently
    /// drains an endpoint.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

impl Endpoint {
    /// Builds an endpoint; a shorthand for the struct literal.
    pub fn new(id: impl Into<String>, addr: impl Into<String>, weight: u32) -> Self {
        Self {
            id: id.into(),
            addr: addr.into(),
            weight,
        }
    }
}

fn default_weight() -> u32 {
    1
}
