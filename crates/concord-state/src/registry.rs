//! The service registry: namespaces of services of instances.

use std::collections::{BTreeMap, BTreeSet};

use concord_api::registry::{
    CheckSpec, CheckState, CheckType, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_UNHEALTHY_THRESHOLD,
    HealthStatus, Instance, InstanceSpec,
};
use concord_api::watch::ServiceEventKind;
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::history::EventKind;
use crate::machine::{Change, StateMachine};

mod health;

pub(crate) use health::aggregate;
#[cfg(test)]
mod health_tests;

/// Where an instance lives: namespace, service, id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceRef {
    /// The namespace.
    pub namespace: String,
    /// The service within it.
    pub service: String,
    /// The instance id within the service.
    pub id: String,
}

impl InstanceRef {
    /// Builds a reference from its three parts.
    pub fn new(namespace: &str, service: &str, id: &str) -> Self {
        InstanceRef {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl std::fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.service, self.id)
    }
}

/// One service's instances and the revision of its last change (for blocking queries).
///
/// Kept even with no instances left, so `mod_revision` records the removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Service {
    /// Instances by id.
    pub instances: BTreeMap<String, InstanceRecord>,
    /// Revision of the last register, update or removal in this service.
    pub mod_revision: u64,
}

/// An instance plus what the servers need to keep it: its lease and health rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance as discovery returns it (status and checks included).
    pub instance: Instance,
    /// Its private lease; `None` for permanent instances.
    pub lease: Option<u64>,
    /// How its checks run and when it is reaped.
    pub health: HealthConfig,
    /// Checks without a result yet: their first result counts at once, undamped.
    pub unchecked: BTreeSet<String>,
    /// Revision at which `instance.status` last changed (its registration at first).
    pub status_revision: u64,
}

/// The health part of a registration, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The declared checks.
    pub checks: Vec<CheckSpec>,
    /// Consecutive successes to leave critical.
    pub healthy_threshold: u32,
    /// Consecutive failures to become critical.
    pub unhealthy_threshold: u32,
    /// Reap the instance after this long critical.
    pub deregister_critical_after_secs: Option<u32>,
}

impl StateMachine {
    /// `Command::Register`: create or replace an instance.
    ///
    /// A replaced instance's private lease is always released (and anything else
    /// bound to it deleted), since the new registration either gets a fresh lease
    /// (with `ttl_secs`) or is permanent. Checks whose declaration did not change
    /// keep their status, and maintenance stays on, so re-registering is not a flap.
    pub(crate) fn register(&mut self, at: InstanceRef, spec: InstanceSpec) -> Outcome {
        let mut change = self.begin();
        let previous = self.instance(&at.namespace, &at.service, &at.id).cloned();
        if let Some(lease_id) = previous.as_ref().and_then(|r| r.lease) {
            // Unbind first so releasing the lease does not remove the instance itself.
            if let Some(lease) = self.leases.get_mut(&lease_id) {
                lease.instances.remove(&at);
            }
            self.release_lease(&mut change, lease_id, ServiceEventKind::Deregister);
        }
        let lease = spec.ttl_secs.map(|ttl| {
            let lease_id = self.grant_lease(&mut change, ttl);
            if let Some(l) = self.leases.get_mut(&lease_id) {
                l.instances.insert(at.clone());
            }
            lease_id
        });
        let record = new_record(&at.id, spec, lease, previous.as_ref(), change.rev);
        let kind = if previous.is_some() {
            ServiceEventKind::Update
        } else {
            ServiceEventKind::Register
        };
        let instance = record.instance.clone();
        change.emit(EventKind::Service {
            kind,
            namespace: at.namespace.clone(),
            service: at.service.clone(),
            instance: instance.clone(),
        });
        let entry = self.services.entry((at.namespace, at.service)).or_default();
        entry.mod_revision = change.rev;
        entry.instances.insert(at.id, record);
        Outcome::Registered {
            revision: self.commit(change),
            instance,
            lease,
        }
    }

    /// `Command::Deregister`: remove an instance, then release its private lease.
    pub(crate) fn deregister(&mut self, at: InstanceRef) -> Outcome {
        let mut change = self.begin();
        let Some(record) = self.remove_instance(&mut change, &at, ServiceEventKind::Deregister)
        else {
            return Outcome::Refused(not_found(at));
        };
        if let Some(lease_id) = record.lease {
            self.release_lease(&mut change, lease_id, ServiceEventKind::Deregister);
        }
        Outcome::Deregistered {
            revision: self.commit(change),
        }
    }

    /// Removes one instance, emitting `kind` and bumping the service's mod_revision.
    /// Leaves lease bookkeeping to the caller. `None` if absent.
    pub(crate) fn remove_instance(
        &mut self,
        change: &mut Change,
        at: &InstanceRef,
        kind: ServiceEventKind,
    ) -> Option<InstanceRecord> {
        let entry = self
            .services
            .get_mut(&(at.namespace.clone(), at.service.clone()))?;
        let record = entry.instances.remove(&at.id)?;
        entry.mod_revision = change.rev;
        change.emit(EventKind::Service {
            kind,
            namespace: at.namespace.clone(),
            service: at.service.clone(),
            instance: record.instance.clone(),
        });
        Some(record)
    }

    /// The instance record at `at`, mutable, for in-place health changes.
    pub(crate) fn record_mut(&mut self, at: &InstanceRef) -> Option<&mut InstanceRecord> {
        self.services
            .get_mut(&(at.namespace.clone(), at.service.clone()))?
            .instances
            .get_mut(&at.id)
    }

    /// Emits an `update` for the instance at `at` as it now is, and bumps its service.
    pub(crate) fn emit_update(&mut self, change: &mut Change, at: &InstanceRef) {
        let key = (at.namespace.clone(), at.service.clone());
        let Some(service) = self.services.get_mut(&key) else {
            return;
        };
        let Some(record) = service.instances.get(&at.id) else {
            return;
        };
        let instance = record.instance.clone();
        service.mod_revision = change.rev;
        change.emit(EventKind::Service {
            kind: ServiceEventKind::Update,
            namespace: at.namespace.clone(),
            service: at.service.clone(),
            instance,
        });
    }
}

/// Refusal for an instance that is not registered.
pub(crate) fn not_found(at: InstanceRef) -> StateError {
    StateError::InstanceNotFound {
        namespace: at.namespace,
        service: at.service,
        id: at.id,
    }
}

/// Builds the stored record of a registration, keeping from `previous` the state
/// of every check declared identically and the maintenance flag.
fn new_record(
    id: &str,
    spec: InstanceSpec,
    lease: Option<u64>,
    previous: Option<&InstanceRecord>,
    rev: u64,
) -> InstanceRecord {
    let mut unchecked = BTreeSet::new();
    let checks: Vec<CheckState> = spec
        .checks
        .iter()
        .map(|c| {
            let kept = previous.and_then(|p| {
                let same = p.health.checks.iter().any(|old| old == c);
                let state = p.instance.checks.iter().find(|s| s.id == c.id)?;
                same.then(|| (state.clone(), p.unchecked.contains(&c.id)))
            });
            match kept {
                Some((state, still_unchecked)) => {
                    if still_unchecked {
                        unchecked.insert(c.id.clone());
                    }
                    state
                }
                None => {
                    unchecked.insert(c.id.clone());
                    CheckState {
                        id: c.id.clone(),
                        kind: c.kind,
                        status: HealthStatus::Critical,
                        output: if c.kind == CheckType::Ttl {
                            "waiting for the first TTL update".to_owned()
                        } else {
                            "waiting for the first probe".to_owned()
                        },
                        last_change_revision: rev,
                    }
                }
            }
        })
        .collect();
    let maintenance = previous.and_then(|p| p.instance.maintenance.clone());
    let status = health::aggregate(&checks, maintenance.is_some());
    let status_revision = match previous {
        Some(p) if p.instance.status == status => p.status_revision,
        _ => rev,
    };
    InstanceRecord {
        instance: Instance {
            id: id.to_owned(),
            address: spec.address,
            port: spec.port,
            tags: spec.tags,
            meta: spec.meta,
            weight: spec.weight,
            ttl_secs: spec.ttl_secs,
            status,
            checks,
            maintenance,
        },
        lease,
        health: HealthConfig {
            checks: spec.checks,
            healthy_threshold: spec.healthy_threshold.unwrap_or(DEFAULT_HEALTHY_THRESHOLD),
            unhealthy_threshold: spec
                .unhealthy_threshold
                .unwrap_or(DEFAULT_UNHEALTHY_THRESHOLD),
            deregister_critical_after_secs: spec.deregister_critical_after_secs,
        },
        unchecked,
        status_revision,
    }
}

#[cfg(test)]
mod tests;
