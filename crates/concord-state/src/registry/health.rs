//! Health in the log: check status changes, maintenance, reaping critical instances.
//!
//! Probes and their damping happen outside (on whichever server owns the check);
//! only the resulting status changes are proposed, so the log carries transitions,
//! never individual probes.

use concord_api::registry::{CheckState, HealthStatus, MaintenanceInfo};
use concord_api::watch::ServiceEventKind;

use super::{InstanceRef, not_found};
use crate::command::{Outcome, StateError};
use crate::machine::StateMachine;

/// An instance's status: `maintenance` while flagged, else its worst check,
/// `passing` with no checks.
pub(crate) fn aggregate(checks: &[CheckState], maintenance: bool) -> HealthStatus {
    if maintenance {
        return HealthStatus::Maintenance;
    }
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(HealthStatus::Passing)
}

impl StateMachine {
    /// `Command::CheckStatus`: a check moved to `status`.
    ///
    /// With `expected`, applies only if the check is still in that status, so two
    /// servers that both believed they owned the check (briefly, while membership
    /// views differ) cannot undo each other's transition. A status equal to the
    /// current one changes nothing, except as the first result of a new check,
    /// which records its output and ends the wait for it.
    pub(crate) fn check_status(
        &mut self,
        at: InstanceRef,
        check: String,
        status: HealthStatus,
        output: String,
        expected: Option<HealthStatus>,
    ) -> Outcome {
        if status == HealthStatus::Maintenance {
            return Outcome::Refused(StateError::Invalid(
                "a check cannot be in maintenance; put the instance in maintenance".to_owned(),
            ));
        }
        let mut change = self.begin();
        let rev = change.rev;
        let Some(record) = self.record_mut(&at) else {
            return Outcome::Refused(not_found(at));
        };
        let Some(state) = record.instance.checks.iter_mut().find(|c| c.id == check) else {
            return Outcome::Refused(StateError::CheckNotFound {
                instance: at.to_string(),
                check,
            });
        };
        let first = record.unchecked.contains(&check);
        let stale = expected.is_some_and(|e| e != state.status) && !first;
        if stale || (state.status == status && !first) {
            let current = state.status;
            return Outcome::CheckStatus {
                revision: self.revision,
                status: current,
                changed: false,
            };
        }
        let moved = state.status != status;
        state.status = status;
        state.output = output;
        if moved {
            state.last_change_revision = rev;
        }
        record.unchecked.remove(&check);
        let new_status = aggregate(
            &record.instance.checks,
            record.instance.maintenance.is_some(),
        );
        if new_status != record.instance.status {
            record.instance.status = new_status;
            record.status_revision = rev;
        }
        // A first result that confirms the initial status still replaces its
        // "waiting" output, which watchers see like any other update.
        self.emit_update(&mut change, &at);
        Outcome::CheckStatus {
            revision: self.commit(change),
            status,
            changed: moved,
        }
    }

    /// `Command::Maintenance`: `Some(reason)` takes the instance out of service,
    /// `None` puts it back. Setting the same state again changes nothing.
    pub(crate) fn maintenance(&mut self, at: InstanceRef, reason: Option<String>) -> Outcome {
        let mut change = self.begin();
        let rev = change.rev;
        let Some(record) = self.record_mut(&at) else {
            return Outcome::Refused(not_found(at));
        };
        let same = match (&record.instance.maintenance, &reason) {
            (None, None) => true,
            (Some(m), Some(r)) => m.reason == *r,
            _ => false,
        };
        if same {
            let instance = record.instance.clone();
            return Outcome::Maintenance {
                revision: self.revision,
                instance,
            };
        }
        record.instance.maintenance = reason.map(|reason| MaintenanceInfo {
            reason,
            revision: rev,
        });
        let status = aggregate(
            &record.instance.checks,
            record.instance.maintenance.is_some(),
        );
        if status != record.instance.status {
            record.instance.status = status;
            record.status_revision = rev;
        }
        let instance = record.instance.clone();
        self.emit_update(&mut change, &at);
        Outcome::Maintenance {
            revision: self.commit(change),
            instance,
        }
    }

    /// `Command::ReapCritical`: removes an instance that has stayed critical since
    /// revision `since` (its `status_revision` when the leader decided). If it
    /// recovered meanwhile, even briefly, nothing happens.
    pub(crate) fn reap_critical(&mut self, at: InstanceRef, since: u64) -> Outcome {
        let still = self
            .instance(&at.namespace, &at.service, &at.id)
            .is_some_and(|r| {
                r.instance.status == HealthStatus::Critical && r.status_revision == since
            });
        if !still {
            return Outcome::Reaped {
                revision: self.revision,
                removed: false,
            };
        }
        let mut change = self.begin();
        if let Some(record) = self.remove_instance(&mut change, &at, ServiceEventKind::Deregister)
            && let Some(lease_id) = record.lease
        {
            self.release_lease(&mut change, lease_id, ServiceEventKind::Deregister);
        }
        Outcome::Reaped {
            revision: self.commit(change),
            removed: true,
        }
    }
}
