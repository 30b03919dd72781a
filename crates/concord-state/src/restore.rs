//! `Command::Restore`: seeding the store from a backup through the log.

use crate::command::{Outcome, StateError};
use crate::machine::StateMachine;

impl StateMachine {
    /// Replaces the replicated data with the snapshot's.
    ///
    /// The revision never goes backwards: it becomes the snapshot's revision or one
    /// past the current one, whichever is higher. History is dropped (watchers from
    /// before the restore get `compacted` and resync), every service's mod revision
    /// moves to the new revision so blocking queries see the change, and lease ids
    /// keep counting from the higher of the two counters so none is handed out twice.
    pub(crate) fn restore_from(&mut self, bytes: &[u8]) -> Outcome {
        let snap = match StateMachine::restore(bytes, self.limits) {
            Ok(s) => s,
            Err(e) => return Outcome::Refused(StateError::InvalidSnapshot(e.to_string())),
        };
        let revision = snap.revision.max(self.revision.saturating_add(1));
        self.kv = snap.kv;
        self.services = snap.services;
        for service in self.services.values_mut() {
            service.mod_revision = revision;
        }
        self.leases = snap.leases;
        self.configs = snap.configs;
        self.routes = snap.routes;
        self.txns = snap.txns;
        self.rebuild_txn_index();
        for entry in self.configs.values_mut() {
            entry.mod_revision = revision;
        }
        self.next_lease_id = self.next_lease_id.max(snap.next_lease_id);
        self.revision = revision;
        self.history.clear();
        self.history_bytes = 0;
        self.compacted = revision;
        Outcome::Restored { revision }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Command, HistoryLimits, Outcome, StateError, StateMachine};

    fn put(sm: &mut StateMachine, key: &str, value: &str) {
        sm.apply(Command::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
            cas: None,
        });
    }

    #[test]
    fn restore_replaces_data_and_keeps_the_revision_moving_forward() {
        let mut source = StateMachine::new(HistoryLimits::default());
        for i in 0..5 {
            put(&mut source, &format!("k{i}"), "v");
        }
        source.apply(crate::testutil::register("web", "w1", "a", Some(5)));
        let backup = source.snapshot();

        // A target that already moved further than the backup.
        let mut target = StateMachine::new(HistoryLimits::default());
        for i in 0..10 {
            put(&mut target, &format!("old{i}"), "x");
        }
        let before = target.revision();
        let Outcome::Restored { revision } = target.apply(Command::Restore { snapshot: backup })
        else {
            panic!("restore refused");
        };
        assert_eq!(revision, before + 1, "never backwards");
        assert!(target.kv_get("old0").is_none(), "old data replaced");
        assert_eq!(target.kv_range("k", None).len(), 5);
        assert_eq!(target.service_mod_revision("default", "web"), revision);
        assert!(
            target.events_after(before).is_err(),
            "history compacted at the restore"
        );
        // Lease ids are not reused.
        let Outcome::LeaseGranted { id, .. } = target.apply(Command::LeaseGrant { ttl_secs: 5 })
        else {
            panic!("grant");
        };
        assert!(target.leases().filter(|l| l.id == id).count() == 1);
        assert!(id >= 2);
    }

    #[test]
    fn fresh_target_takes_the_backup_revision() {
        let mut source = StateMachine::new(HistoryLimits::default());
        for i in 0..7 {
            put(&mut source, &format!("k{i}"), "v");
        }
        let mut target = StateMachine::new(HistoryLimits::default());
        let out = target.apply(Command::Restore {
            snapshot: source.snapshot(),
        });
        assert_eq!(out, Outcome::Restored { revision: 7 });
        assert_eq!(target, source, "same replicated data");
    }

    #[test]
    fn garbage_is_refused_and_changes_nothing() {
        let mut sm = StateMachine::new(HistoryLimits::default());
        put(&mut sm, "a", "1");
        let before = sm.clone();
        let out = sm.apply(Command::Restore {
            snapshot: vec![1, 2, 3],
        });
        assert!(matches!(
            out,
            Outcome::Refused(StateError::InvalidSnapshot(_))
        ));
        assert_eq!(sm, before);
    }
}
