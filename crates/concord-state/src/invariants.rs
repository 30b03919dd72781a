//! The consistency rules every reachable state satisfies.
//!
//! `restore` checks them so a decodable but inconsistent snapshot is refused
//! instead of breaking `apply` later; the tests check them after every command.

use crate::machine::StateMachine;
use crate::registry::{InstanceRecord, InstanceRef};

impl StateMachine {
    /// `Err` names the first broken rule: revisions not in the future, lease
    /// bindings recorded on both sides, lease ids below `next_lease_id`, history
    /// in order above the compaction point.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        for (key, e) in &self.kv {
            if e.version == 0
                || e.create_revision == 0
                || e.create_revision > e.mod_revision
                || e.mod_revision > self.revision
            {
                return Err(format!("key {key:?} has impossible revisions"));
            }
            if let Some(id) = e.lease
                && !self.leases.get(&id).is_some_and(|l| l.keys.contains(key))
            {
                return Err(format!(
                    "key {key:?} bound to lease {id} that does not know it"
                ));
            }
        }
        if self.txn_index.finished.len() + self.txn_index.active.len() != self.txns.len() {
            return Err("the transaction indexes do not match the transactions".to_owned());
        }
        for (id, t) in &self.txns {
            if t.id != *id || t.revision > self.revision || t.created_revision > t.revision {
                return Err(format!("transaction {id:?} is inconsistent"));
            }
            if t.steps
                .iter()
                .any(|s| s.deps.iter().any(|&d| d as usize >= t.steps.len()))
            {
                return Err(format!("transaction {id:?} depends on a missing step"));
            }
        }
        for ((ns, name), service) in &self.services {
            if service.mod_revision > self.revision {
                return Err(format!("service {ns}/{name} changed in the future"));
            }
            for (id, record) in &service.instances {
                let at = InstanceRef::new(ns, name, id);
                if record.instance.id != *id {
                    return Err(format!("instance {at} stored under another id"));
                }
                Self::check_health(&at, record)?;
                if let Some(lease) = record.lease
                    && !self
                        .leases
                        .get(&lease)
                        .is_some_and(|l| l.instances.contains(&at))
                {
                    return Err(format!(
                        "instance {at} bound to lease {lease} that does not know it"
                    ));
                }
            }
        }
        for (&id, lease) in &self.leases {
            if lease.id != id || id == 0 || id >= self.next_lease_id {
                return Err(format!("lease {id} has an impossible id"));
            }
            if let Some(key) = lease
                .keys
                .iter()
                .find(|k| self.kv.get(*k).is_none_or(|e| e.lease != Some(id)))
            {
                return Err(format!("lease {id} claims key {key:?} not bound to it"));
            }
            if let Some(at) = lease.instances.iter().find(|at| {
                self.instance(&at.namespace, &at.service, &at.id)
                    .is_none_or(|r| r.lease != Some(id))
            }) {
                return Err(format!("lease {id} claims instance {at} not bound to it"));
            }
        }
        self.check_configs()?;
        self.check_history()
    }

    /// Config items: a live item has a current version, versions count down from
    /// below the next one, nothing is stamped in the future, gray needs a live item.
    fn check_configs(&self) -> Result<(), String> {
        for (key, e) in &self.configs {
            if e.live && e.history.is_empty() {
                return Err(format!("config {key} is live without a version"));
            }
            if !e.live && (!e.history.is_empty() || e.gray.is_some()) {
                return Err(format!("deleted config {key} keeps versions or gray"));
            }
            let mut above = e.next_version;
            for v in &e.history {
                if v.version == 0 || v.version >= above || v.revision > self.revision {
                    return Err(format!(
                        "config {key} version {} is out of order",
                        v.version
                    ));
                }
                above = v.version;
            }
            if e.mod_revision > self.revision
                || e.gray.as_ref().is_some_and(|g| g.revision > self.revision)
            {
                return Err(format!("config {key} changed in the future"));
            }
        }
        Ok(())
    }

    /// An instance's checks match its declaration and its status adds them up.
    fn check_health(at: &InstanceRef, record: &InstanceRecord) -> Result<(), String> {
        let declared: Vec<&str> = record.health.checks.iter().map(|c| c.id.as_str()).collect();
        let states: Vec<&str> = record
            .instance
            .checks
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        if declared != states {
            return Err(format!(
                "instance {at} reports checks {states:?} but declares {declared:?}"
            ));
        }
        if record
            .unchecked
            .iter()
            .any(|c| !declared.contains(&c.as_str()))
        {
            return Err(format!("instance {at} waits on an undeclared check"));
        }
        let expected = crate::registry::aggregate(
            &record.instance.checks,
            record.instance.maintenance.is_some(),
        );
        if record.instance.status != expected {
            return Err(format!(
                "instance {at} is {:?} but its checks say {expected:?}",
                record.instance.status
            ));
        }
        if record.health.healthy_threshold == 0 || record.health.unhealthy_threshold == 0 {
            return Err(format!("instance {at} has a zero threshold"));
        }
        Ok(())
    }

    /// The local history is ordered, newer than the compaction point, no newer than
    /// the state, and its byte count adds up.
    fn check_history(&self) -> Result<(), String> {
        let mut last = self.compacted;
        let mut bytes = 0usize;
        for event in &self.history {
            if event.revision <= self.compacted || event.revision < last {
                return Err(format!("event of revision {} out of order", event.revision));
            }
            last = event.revision;
            bytes = bytes.saturating_add(event.approx_size());
        }
        if last > self.revision {
            return Err(format!("event of revision {last} is in the future"));
        }
        if bytes != self.history_bytes {
            return Err(format!(
                "history holds {bytes} bytes but counts {}",
                self.history_bytes
            ));
        }
        Ok(())
    }
}
