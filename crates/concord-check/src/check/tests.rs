//! Hand-written histories: ones a correct store can produce must pass, and each
//! classic anomaly (stale read, lost write, contradictory CAS, reads going
//! backwards) must be caught, so a green fault-injection run means something.

use super::*;
use crate::history::{Call, Completion, Ret};

const K: &str = "k";

fn done(client: u64, call: Call, t0: u64, t1: u64, ret: Ret) -> Op {
    Op {
        client,
        key: K.to_owned(),
        call,
        invoke: t0,
        completion: Some(Completion { time: t1, ret }),
    }
}

fn put(client: u64, v: &str, t0: u64, t1: u64) -> Op {
    done(client, Call::Put { value: v.into() }, t0, t1, Ret::Ok)
}

fn get(client: u64, seen: Option<&str>, t0: u64, t1: u64) -> Op {
    done(client, Call::Get, t0, t1, Ret::Value(seen.map(Into::into)))
}

fn cas(client: u64, expect: Option<&str>, new: &str, swapped: bool, t0: u64, t1: u64) -> Op {
    let call = Call::Cas {
        expect: expect.map(Into::into),
        new: new.into(),
    };
    done(client, call, t0, t1, Ret::Swapped(swapped))
}

fn del(client: u64, t0: u64, t1: u64) -> Op {
    done(client, Call::Delete, t0, t1, Ret::Ok)
}

fn unanswered(client: u64, call: Call, t0: u64) -> Op {
    Op {
        client,
        key: K.to_owned(),
        call,
        invoke: t0,
        completion: None,
    }
}

fn on_key(mut op: Op, key: &str) -> Op {
    op.key = key.to_owned();
    op
}

fn verdict(h: &[Op]) -> Verdict {
    check_register(h).expect("valid history")
}

fn assert_linearizable(h: &[Op]) {
    let v = verdict(h);
    assert_eq!(v, Verdict::Linearizable, "history: {h:#?}");
}

/// Asserts rejection and returns the explanation.
fn assert_rejected(h: &[Op]) -> String {
    match verdict(h) {
        Verdict::NotLinearizable { key, explanation } => {
            assert_eq!(key, K);
            explanation
        }
        other => panic!("expected NotLinearizable, got {other:?} for {h:#?}"),
    }
}

// ---- histories a correct store can produce ----

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn a_key_starts_absent() {
    assert_linearizable(&[
        get(1, None, 0, 1),
        put(1, "a", 2, 3),
        get(1, Some("a"), 4, 5),
    ]);
}

#[test]
fn a_read_overlapping_a_write_may_see_either_value() {
    for seen in [Some("a"), Some("b")] {
        assert_linearizable(&[
            put(1, "a", 0, 10),
            put(2, "b", 20, 40),
            get(3, seen, 25, 35),
        ]);
    }
}

#[test]
fn overlapping_reads_may_disagree_while_a_write_is_in_flight() {
    // Both reads overlap the write and each other: one linearizes before it, one after.
    assert_linearizable(&[
        put(1, "a", 0, 10),
        put(2, "b", 20, 100),
        get(3, Some("b"), 30, 60),
        get(4, Some("a"), 40, 70),
    ]);
}

#[test]
fn concurrent_writes_may_land_in_either_order() {
    for last in ["a", "b"] {
        assert_linearizable(&[
            put(1, "a", 0, 10),
            put(2, "b", 5, 15),
            get(3, Some(last), 20, 30),
        ]);
    }
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The read is invoked at the very instant the write completes: either order is fine.
    assert_linearizable(&[put(1, "a", 0, 10), get(2, None, 10, 20)]);
}

#[test]
fn successful_and_failed_cas_in_order() {
    assert_linearizable(&[
        cas(1, None, "a", true, 0, 10),
        cas(2, None, "b", false, 20, 30),
        cas(2, Some("a"), "b", true, 40, 50),
        cas(1, Some("a"), "c", false, 60, 70),
        get(1, Some("b"), 80, 90),
        del(1, 100, 110),
        get(2, None, 120, 130),
    ]);
}

#[test]
fn racing_cas_exactly_one_wins() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 40),
        cas(3, Some("a"), "c", false, 20, 40),
        get(1, Some("b"), 50, 60),
    ]);
}

#[test]
fn an_unanswered_write_that_took_effect() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered(2, Call::Put { value: "b".into() }, 20),
        get(1, Some("b"), 1000, 1010),
    ]);
}

#[test]
fn an_unanswered_write_that_never_took_effect() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered(2, Call::Put { value: "b".into() }, 20),
        get(1, Some("a"), 1000, 1010),
        get(3, Some("a"), 2000, 2010),
    ]);
}

#[test]
fn an_unanswered_write_may_take_effect_long_after_it_was_sent() {
    // Seen as absent first, then as written: it took effect between the reads.
    assert_linearizable(&[
        unanswered(1, Call::Put { value: "a".into() }, 0),
        get(2, None, 100, 110),
        get(2, Some("a"), 200, 210),
    ]);
}

#[test]
fn an_unanswered_cas_took_effect() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered(
            2,
            Call::Cas {
                expect: Some("a".into()),
                new: "b".into(),
            },
            20,
        ),
        get(1, Some("b"), 100, 110),
    ]);
}

#[test]
fn unanswered_reads_are_ignored() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered(2, Call::Get, 0),
        get(1, Some("a"), 20, 30),
    ]);
}

#[test]
fn keys_are_independent() {
    assert_linearizable(&[
        on_key(put(1, "a", 0, 10), "x"),
        on_key(put(1, "b", 20, 30), "y"),
        on_key(get(2, Some("a"), 40, 50), "x"),
        on_key(get(2, None, 40, 50), "z"),
    ]);
}

fn unanswered_put(client: u64, v: &str, t0: u64) -> Op {
    unanswered(client, Call::Put { value: v.into() }, t0)
}

#[test]
fn a_failed_cas_explained_by_an_unanswered_write_nobody_read() {
    // The only way the CAS can fail is that "b" landed first.
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered_put(2, "b", 20),
        cas(3, Some("a"), "x", false, 30, 40),
    ]);
}

#[test]
fn an_unanswered_write_read_later_may_also_explain_a_failed_cas() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered_put(2, "b", 20),
        cas(3, Some("a"), "x", false, 30, 40),
        get(3, Some("b"), 50, 60),
    ]);
}

#[test]
fn two_failed_cas_need_two_unanswered_writes() {
    let mut h = vec![
        put(1, "a", 0, 10),
        unanswered_put(2, "b", 20),
        cas(3, Some("a"), "x", false, 30, 40),
        put(1, "d", 50, 60),
        cas(3, Some("d"), "y", false, 70, 80),
    ];
    assert_rejected(&h);
    h.push(unanswered_put(4, "e", 25));
    assert_linearizable(&h);
}

#[test]
fn a_duplicate_value_is_not_taken_as_proof() {
    // Two writes of "a": the read does not say which one it saw.
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered_put(2, "a", 20),
        get(3, Some("a"), 30, 40),
        put(1, "b", 50, 60),
        get(3, Some("b"), 70, 80),
    ]);
}

#[test]
fn an_observed_unanswered_cas_must_have_swapped_in_time() {
    assert_linearizable(&[
        put(1, "a", 0, 10),
        unanswered(
            2,
            Call::Cas {
                expect: Some("a".into()),
                new: "b".into(),
            },
            20,
        ),
        get(3, Some("b"), 30, 40),
    ]);
}

// ---- histories no correct store can produce ----

/// A read strictly after a completed write returns the value before it.
#[test]
fn rejects_stale_read() {
    let why = assert_rejected(&[
        put(1, "a", 0, 10),
        put(1, "b", 20, 30),
        get(2, Some("a"), 40, 50),
    ]);
    assert!(why.contains("client 2: get -> \"a\" [40, 50]"), "{why}");
}

/// An acknowledged write is never visible: every later read returns the previous value.
#[test]
fn rejects_lost_write() {
    let why = assert_rejected(&[
        put(1, "a", 0, 10),
        put(2, "b", 20, 30),
        get(3, Some("a"), 100, 110),
        get(1, Some("a"), 200, 210),
    ]);
    assert!(why.contains("holds \"b\""), "{why}");
}

#[test]
fn rejects_a_read_of_a_value_never_written() {
    assert_rejected(&[put(1, "a", 0, 10), get(2, Some("zzz"), 20, 30)]);
}

#[test]
fn rejects_a_read_from_the_future() {
    // The read completed before the write was even sent.
    assert_rejected(&[get(1, Some("a"), 0, 10), put(2, "a", 20, 30)]);
}

#[test]
fn rejects_a_successful_cas_that_contradicts_the_order() {
    // "b" overwrote "a" before the CAS was sent, yet the CAS saw "a".
    assert_rejected(&[
        put(1, "a", 0, 10),
        put(1, "b", 20, 30),
        cas(2, Some("a"), "c", true, 40, 50),
    ]);
}

#[test]
fn rejects_a_failed_cas_when_nothing_could_have_interfered() {
    assert_rejected(&[put(1, "a", 0, 10), cas(2, Some("a"), "c", false, 20, 30)]);
}

#[test]
fn rejects_two_successful_cas_from_the_same_value() {
    assert_rejected(&[
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 40),
        cas(3, Some("a"), "c", true, 20, 40),
    ]);
}

/// Two sequential reads, both overlapping a slow write: once the new value was
/// seen, a later read must not return the old one.
#[test]
fn rejects_reads_going_backwards() {
    assert_rejected(&[
        put(1, "a", 0, 10),
        put(2, "b", 20, 100),
        get(3, Some("b"), 30, 40),
        get(3, Some("a"), 50, 60),
    ]);
}

#[test]
fn rejects_a_read_of_a_deleted_key() {
    assert_rejected(&[
        put(1, "a", 0, 10),
        del(1, 20, 30),
        get(2, Some("a"), 40, 50),
    ]);
}

#[test]
fn rejects_a_write_that_reappears_after_being_overwritten() {
    // An unanswered write may land late, but only once: "a" cannot come back after "b".
    assert_rejected(&[
        unanswered(1, Call::Put { value: "a".into() }, 0),
        get(2, Some("a"), 10, 20),
        put(2, "b", 30, 40),
        get(2, Some("b"), 50, 60),
        get(2, Some("a"), 70, 80),
    ]);
}

#[test]
fn rejects_a_failed_cas_with_no_write_to_blame() {
    // "b" was invoked only after the CAS had failed, so it cannot explain the failure.
    assert_rejected(&[
        put(1, "a", 0, 10),
        cas(3, Some("a"), "x", false, 20, 30),
        unanswered_put(2, "b", 40),
    ]);
}

#[test]
fn rejects_a_read_of_the_old_value_after_a_failed_cas_blamed_on_a_lost_write() {
    // For the CAS to fail "b" must have landed, and then "a" cannot be read again.
    assert_rejected(&[
        put(1, "a", 0, 10),
        unanswered_put(2, "b", 20),
        cas(3, Some("a"), "x", false, 30, 40),
        get(3, Some("a"), 50, 60),
    ]);
}

#[test]
fn rejects_an_unanswered_cas_whose_result_is_read_though_it_could_not_swap() {
    assert_rejected(&[
        put(1, "a", 0, 10),
        put(1, "z", 12, 14),
        unanswered(
            2,
            Call::Cas {
                expect: Some("a".into()),
                new: "b".into(),
            },
            20,
        ),
        get(3, Some("b"), 30, 40),
    ]);
}

#[test]
fn rejects_a_read_of_an_unanswered_write_before_it_was_sent() {
    assert_rejected(&[get(1, Some("b"), 0, 10), unanswered_put(2, "b", 20)]);
}

#[test]
fn the_failing_key_is_named() {
    let h = [
        on_key(put(1, "a", 0, 10), "good"),
        on_key(get(1, Some("a"), 20, 30), "good"),
        on_key(put(1, "a", 0, 10), "bad"),
        on_key(get(2, None, 20, 30), "bad"),
    ];
    match verdict(&h) {
        Verdict::NotLinearizable { key, .. } => assert_eq!(key, "bad"),
        other => panic!("{other:?}"),
    }
}

// ---- budget and malformed input ----

#[test]
fn an_exhausted_budget_answers_unknown() {
    // Many concurrent writes and a read nobody wrote: proving it impossible takes
    // far more than two steps.
    let mut h: Vec<Op> = (0..10).map(|i| put(i, &format!("v{i}"), 0, 100)).collect();
    h.push(get(99, Some("never"), 200, 210));
    let r = check_register_with(
        &h,
        Budget {
            max_steps_per_key: 2,
        },
    )
    .unwrap();
    assert!(
        matches!(r.verdict, Verdict::Unknown { ref key, .. } if key == K),
        "{r:?}"
    );
    // With the default budget the memo table makes the same history quick to refute.
    assert!(matches!(verdict(&h), Verdict::NotLinearizable { .. }));
}

#[test]
fn a_definite_failure_on_a_later_key_beats_an_unknown_one() {
    let mut h: Vec<Op> = (0..12)
        .map(|i| on_key(put(i, &format!("v{i}"), 0, 100), "a"))
        .collect();
    h.push(on_key(get(99, Some("v1"), 200, 210), "a"));
    h.push(on_key(put(1, "x", 0, 10), "b"));
    h.push(on_key(get(1, None, 20, 30), "b"));
    let r = check_register_with(
        &h,
        Budget {
            max_steps_per_key: 10,
        },
    )
    .unwrap();
    assert!(
        matches!(r.verdict, Verdict::NotLinearizable { ref key, .. } if key == "b"),
        "{r:?}"
    );
}

#[test]
fn malformed_histories_are_refused() {
    let backwards = put(1, "a", 10, 5);
    assert_eq!(
        check_register(&[backwards]),
        Err(HistoryError::CompletesBeforeInvoke {
            index: 0,
            invoke: 10,
            complete: 5
        })
    );
    let mut wrong = get(1, None, 0, 1);
    wrong.completion.as_mut().unwrap().ret = Ret::Swapped(true);
    assert!(matches!(
        check_register(&[wrong]),
        Err(HistoryError::MismatchedReturn { index: 0, .. })
    ));
}

#[test]
fn a_report_counts_the_work() {
    let h = [
        put(1, "a", 0, 10),
        unanswered(2, Call::Get, 0),
        on_key(get(1, None, 0, 10), "other"),
    ];
    let r = check_register_with(&h, Budget::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.keys, 2);
    assert_eq!(r.ops, 2, "the unanswered read is dropped");
    assert!(r.steps >= 2);
}
