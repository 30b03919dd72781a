use crate::testutil::{apply_ok, delete, events_since, put};
use crate::{Command, Event, EventKind, HistoryLimits, StateMachine, TxnOp};

fn with_limits(max_events: usize, max_bytes: usize) -> StateMachine {
    StateMachine::new(HistoryLimits {
        max_events,
        max_bytes,
    })
}

/// One revision writing every key in `keys`.
fn multi_put(keys: &[&str]) -> Command {
    Command::Txn {
        compare: vec![],
        success: keys
            .iter()
            .map(|k| TxnOp::Put {
                key: (*k).to_owned(),
                value: b"v".to_vec(),
                lease: None,
            })
            .collect(),
        failure: vec![],
    }
}

fn revisions(sm: &StateMachine, after: u64) -> Vec<u64> {
    events_since(sm, after).iter().map(|e| e.revision).collect()
}

/// Nothing at or below the compaction point is left behind, and the retained
/// byte count matches the events actually retained.
fn assert_history_consistent(sm: &StateMachine) {
    assert!(sm.history.iter().all(|e| e.revision > sm.compacted));
    let total: usize = sm.history.iter().map(Event::approx_size).sum();
    assert_eq!(sm.history_bytes, total);
}

#[test]
fn events_after_filters_by_revision() {
    let mut sm = with_limits(100, 1 << 20);
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, multi_put(&["b", "c"]));
    apply_ok(&mut sm, put("a", "2"));
    assert_eq!(revisions(&sm, 0), [1, 2, 2, 3]);
    assert_eq!(revisions(&sm, 1), [2, 2, 3]);
    assert_eq!(revisions(&sm, 2), [3]);
    assert!(revisions(&sm, 3).is_empty());
    assert!(revisions(&sm, 99).is_empty());
    assert_eq!(sm.compacted_revision(), 0);
}

#[test]
fn trimming_by_count_drops_whole_revisions() {
    let mut sm = with_limits(3, 1 << 20);
    apply_ok(&mut sm, multi_put(&["a", "b"]));
    apply_ok(&mut sm, put("c", "1"));
    assert_eq!(revisions(&sm, 0), [1, 1, 2]);
    // A 4th event must not leave half of revision 1 behind.
    apply_ok(&mut sm, put("d", "1"));
    assert_eq!(sm.compacted_revision(), 1);
    assert_eq!(revisions(&sm, 1), [2, 3]);
    assert_history_consistent(&sm);
    apply_ok(&mut sm, multi_put(&["e", "f"]));
    assert_eq!(sm.compacted_revision(), 2);
    assert_eq!(revisions(&sm, 2), [3, 4, 4]);
    assert_history_consistent(&sm);
}

#[test]
fn trimming_by_bytes_uses_the_size_estimate() {
    // Each put of a 1-byte key with a 10-byte value costs 1 + 10 + 64 = 75.
    let mut sm = with_limits(1000, 160);
    let value = "0123456789";
    apply_ok(&mut sm, put("a", value));
    apply_ok(&mut sm, put("b", value));
    assert_eq!(sm.history_bytes, 150);
    assert_eq!(sm.compacted_revision(), 0);
    apply_ok(&mut sm, put("c", value));
    assert_eq!(sm.compacted_revision(), 1);
    assert_eq!(revisions(&sm, 1), [2, 3]);
    // Deletes carry no value: 1 + 64.
    apply_ok(&mut sm, delete("a", false, None));
    assert_eq!(sm.history_bytes, 75 + 65);
    assert_eq!(sm.compacted_revision(), 2);
    assert_history_consistent(&sm);
}

#[test]
fn a_revision_larger_than_the_limit_is_dropped_whole() {
    let mut sm = with_limits(2, 1 << 20);
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, multi_put(&["b", "c", "d"]));
    assert_eq!(sm.compacted_revision(), 2);
    assert!(revisions(&sm, 2).is_empty());
    assert_eq!(sm.history_bytes, 0);
    apply_ok(&mut sm, put("e", "1"));
    assert_eq!(revisions(&sm, 2), [3]);
}

#[test]
fn events_after_a_compacted_revision_are_refused() {
    let mut sm = with_limits(1, 1 << 20);
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, put("a", "2"));
    apply_ok(&mut sm, put("a", "3"));
    assert_eq!(sm.compacted_revision(), 2);
    assert_eq!(sm.events_after(0).err(), Some(2));
    assert_eq!(sm.events_after(1).err(), Some(2));
    let Ok(events) = sm.events_after(2) else {
        panic!("revision 2 is the compaction point and must answer")
    };
    let kinds: Vec<_> = events.map(|e| (e.revision, e.kind.clone())).collect();
    assert_eq!(
        kinds,
        [(
            3,
            EventKind::Kv {
                kind: concord_api::watch::KvEventKind::Put,
                key: "a".to_owned(),
                value: b"3".to_vec()
            }
        )]
    );
}

#[test]
fn history_limits_do_not_affect_replicated_state() {
    let mut small = with_limits(1, 70);
    let mut big = with_limits(1000, 1 << 20);
    for cmd in [
        put("a", "1"),
        multi_put(&["b", "c"]),
        delete("", true, None),
    ] {
        assert_eq!(small.apply(cmd.clone()), big.apply(cmd));
    }
    assert_eq!(small, big);
    assert_eq!(small.compacted_revision(), 3);
    assert_eq!(big.compacted_revision(), 0);
}
