//! The registry as the DNS interface sees it: passing instances from local state.
//!
//! Answers are stale reads by design, so DNS keeps answering without a leader.

use std::sync::{Arc, RwLock};

use concord_api::registry::HealthStatus;
use concord_state::StateMachine;

use crate::dns::{DnsSource, DnsTarget};

/// Reads the node's state machine for each query.
pub struct StateSource(pub Arc<RwLock<StateMachine>>);

impl DnsSource for StateSource {
    fn has_namespace(&self, namespace: &str) -> bool {
        let state = self.0.read().unwrap_or_else(|p| p.into_inner());
        state.has_namespace(namespace)
    }

    fn lookup(&self, namespace: &str, service: &str, tag: Option<&str>) -> Option<Vec<DnsTarget>> {
        let state = self.0.read().unwrap_or_else(|p| p.into_inner());
        let svc = state.service(namespace, service)?;
        Some(
            svc.instances
                .values()
                .map(|r| &r.instance)
                .filter(|i| i.status == HealthStatus::Passing)
                // DNS names arrive lowercased, so tags match without case.
                .filter(|i| {
                    tag.is_none_or(|t| i.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
                })
                .map(|i| DnsTarget {
                    id: i.id.clone(),
                    address: i.address.clone(),
                    port: i.port,
                    weight: i.weight,
                })
                .collect(),
        )
    }
}
