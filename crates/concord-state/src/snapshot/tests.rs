use super::FORMAT_VERSION;
use crate::testutil::{apply_ok, events_since, grant, machine, put, put_with, register};
use crate::{Command, HistoryLimits, Outcome, SnapshotError, StateMachine};

/// A machine with some of everything: keys with and without leases, services with
/// ephemeral and permanent instances, an emptied service, an empty lease.
fn populated() -> StateMachine {
    let mut sm = machine();
    let l = grant(&mut sm, 30);
    grant(&mut sm, 5);
    apply_ok(&mut sm, put_with("a", "1", Some(l), None));
    apply_ok(&mut sm, put("b", "\u{0}bin"));
    apply_ok(&mut sm, register("web", "1", "10.0.0.1", Some(10)));
    apply_ok(&mut sm, register("web", "2", "10.0.0.2", None));
    apply_ok(&mut sm, register("gone", "1", "h", None));
    apply_ok(&mut sm, crate::testutil::deregister("gone", "1"));
    sm
}

fn restore(bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
    StateMachine::restore(bytes, HistoryLimits::default())
}

#[test]
fn round_trip_restores_equal_state_with_empty_compacted_history() {
    let sm = populated();
    let bytes = sm.snapshot();
    assert_eq!(bytes[0], FORMAT_VERSION);
    let back = restore(&bytes).expect("restore");
    assert_eq!(back, sm);
    assert_eq!(back.revision(), sm.revision());
    assert_eq!(back.compacted_revision(), sm.revision());
    assert_eq!(back.events_after(0).err(), Some(sm.revision()));
    assert!(events_since(&back, sm.revision()).is_empty());
    assert_eq!(back.service_mod_revision("default", "gone"), 8);
    assert_eq!(back.snapshot(), bytes);
}

#[test]
fn restored_machine_continues_like_the_original() {
    let mut sm = populated();
    let mut back = restore(&sm.snapshot()).expect("restore");
    for cmd in [
        Command::LeaseGrant { ttl_secs: 1 },
        register("web", "1", "10.0.0.1", Some(10)),
        Command::LeaseRevoke { id: 1 },
        put("c", "3"),
    ] {
        assert_eq!(sm.apply(cmd.clone()), back.apply(cmd));
    }
    assert_eq!(sm, back);
    assert_eq!(events_since(&back, 8), events_since(&sm, 8));
}

#[test]
fn empty_machine_round_trips() {
    let sm = machine();
    let back = restore(&sm.snapshot()).expect("restore");
    assert_eq!(back, sm);
    assert_eq!(back.compacted_revision(), 0);
}

#[test]
fn empty_input_is_truncated() {
    assert!(matches!(restore(&[]), Err(SnapshotError::Truncated)));
}

#[test]
fn unknown_version_is_refused() {
    let mut bytes = populated().snapshot();
    bytes[0] = 1;
    assert!(matches!(
        restore(&bytes),
        Err(SnapshotError::UnsupportedVersion(1))
    ));
    assert!(matches!(
        restore(&[0]),
        Err(SnapshotError::UnsupportedVersion(0))
    ));
}

#[test]
fn cut_short_input_is_truncated() {
    let bytes = populated().snapshot();
    for len in [1, 2, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(restore(&bytes[..len]), Err(SnapshotError::Truncated)),
            "length {len}"
        );
    }
}

#[test]
fn trailing_bytes_are_corrupt() {
    let mut bytes = populated().snapshot();
    bytes.push(0);
    assert!(matches!(restore(&bytes), Err(SnapshotError::Corrupt(_))));
}

#[test]
fn inconsistent_state_is_corrupt() {
    let mut sm = populated();
    // A key pointing at a lease that does not exist.
    if let Some(e) = sm.kv.get_mut("b") {
        e.lease = Some(77);
    }
    let err = restore(&sm.snapshot()).err();
    assert!(
        matches!(&err, Some(SnapshotError::Corrupt(m)) if m.contains("lease 77")),
        "{err:?}"
    );

    // A lease id the counter would hand out again.
    let mut sm = populated();
    sm.next_lease_id = 2;
    assert!(matches!(
        restore(&sm.snapshot()),
        Err(SnapshotError::Corrupt(_))
    ));
}

#[test]
fn restored_lease_counter_does_not_reuse_ids() {
    let sm = populated();
    let mut back = restore(&sm.snapshot()).expect("restore");
    let Outcome::LeaseGranted { id, .. } = back.apply(Command::LeaseGrant { ttl_secs: 1 }) else {
        panic!("grant")
    };
    assert_eq!(id, 4);
}

#[test]
fn snapshot_into_a_used_buffer_writes_the_same_bytes() {
    let sm = populated();
    let used = vec![7u8; 4096];
    let bytes = sm.snapshot_into(used);
    assert_eq!(bytes, sm.snapshot());
    // Too small a buffer grows.
    assert_eq!(sm.snapshot_into(Vec::with_capacity(1)), sm.snapshot());
}
