//! The service registry.

use std::collections::BTreeMap;

use concord_api::registry::{Instance, InstanceSpec};
use concord_api::watch::ServiceEventKind;
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::history::EventKind;
use crate::machine::{Change, StateMachine};

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

/// An instance plus the private lease that keeps it alive, if ephemeral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance as discovery returns it.
    pub instance: Instance,
    /// Its private lease; `None` for permanent instances.
    pub lease: Option<u64>,
}

impl StateMachine {
    /// `Command::Register`: create or replace an instance.
    ///
    /// A replaced instance's private lease is always released (and anything else
    /// bound to it deleted), since the new registration either gets a fresh lease
    /// (with `ttl_secs`) or is permanent.
    pub(crate) fn register(&mut self, service: String, id: String, spec: InstanceSpec) -> Outcome {
        let mut change = self.begin();
        // `Some(lease)` when replacing an instance, which may itself have a lease.
        let replaced = self.instance(&service, &id).map(|r| r.lease);
        if let Some(lease_id) = replaced.flatten() {
            // Unbind first so releasing the lease does not remove the instance itself.
            if let Some(lease) = self.leases.get_mut(&lease_id) {
                lease.instances.remove(&(service.clone(), id.clone()));
            }
            self.release_lease(&mut change, lease_id, ServiceEventKind::Deregister);
        }
        let lease = spec.ttl_secs.map(|ttl| {
            let lease_id = self.grant_lease(&mut change, ttl);
            if let Some(l) = self.leases.get_mut(&lease_id) {
                l.instances.insert((service.clone(), id.clone()));
            }
            lease_id
        });
        let instance = Instance {
            id: id.clone(),
            address: spec.address,
            port: spec.port,
            tags: spec.tags,
            meta: spec.meta,
            weight: spec.weight,
            ttl_secs: spec.ttl_secs,
        };
        let kind = if replaced.is_some() {
            ServiceEventKind::Update
        } else {
            ServiceEventKind::Register
        };
        change.emit(EventKind::Service {
            kind,
            service: service.clone(),
            instance: instance.clone(),
        });
        let entry = self.services.entry(service).or_default();
        entry.mod_revision = change.rev;
        entry.instances.insert(
            id,
            InstanceRecord {
                instance: instance.clone(),
                lease,
            },
        );
        Outcome::Registered {
            revision: self.commit(change),
            instance,
            lease,
        }
    }

    /// `Command::Deregister`: remove an instance, then release its private lease.
    pub(crate) fn deregister(&mut self, service: String, id: String) -> Outcome {
        let mut change = self.begin();
        let Some(record) =
            self.remove_instance(&mut change, &service, &id, ServiceEventKind::Deregister)
        else {
            return Outcome::Refused(StateError::InstanceNotFound { service, id });
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
        service: &str,
        id: &str,
        kind: ServiceEventKind,
    ) -> Option<InstanceRecord> {
        let entry = self.services.get_mut(service)?;
        let record = entry.instances.remove(id)?;
        entry.mod_revision = change.rev;
        change.emit(EventKind::Service {
            kind,
            service: service.to_owned(),
            instance: record.instance.clone(),
        });
        Some(record)
    }
}

#[cfg(test)]
mod tests;
