//! The service registry.

use std::collections::BTreeMap;

use concord_api::registry::Instance;
use serde::{Deserialize, Serialize};

/// One service's instances and the revision of its last change (for blocking queries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Service {
    pub instances: BTreeMap<String, InstanceRecord>,
    pub mod_revision: u64,
}

/// An instance plus the private lease that keeps it alive, if ephemeral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub instance: Instance,
    pub lease: Option<u64>,
}
