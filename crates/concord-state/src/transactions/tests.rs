//! The transaction rules, driven by a scripted in-test driver.

use concord_api::transactions::{TxnMode, TxnOp, TxnStatus};

use crate::testutil::{machine, new_txn};
use crate::{
    CallKind, CallResult, Command, Outcome, Phase, SlotState, StateError, StateMachine,
    TxnDecision, TxnEvent,
};

/// Plays the leader's driver: answers every running call with `respond` and
/// restarts every waiting one, until nothing is left to do. Returns the calls made.
fn drive(
    sm: &mut StateMachine,
    id: &str,
    mut respond: impl FnMut(&str, TxnOp, u32) -> CallKind,
) -> Vec<(String, TxnOp, u32)> {
    let mut calls = Vec::new();
    for _ in 0..1000 {
        let rec = sm.transaction(id).expect("txn").clone();
        let mut events = Vec::new();
        for (i, s) in rec.steps.iter().enumerate() {
            for phase in [Phase::Forward, Phase::Finish, Phase::Backward] {
                let slot = s.slot(phase);
                let Some(op) = phase.op(rec.mode) else {
                    continue;
                };
                match slot.state {
                    SlotState::Running => {
                        calls.push((s.name.clone(), op, slot.attempts));
                        let kind = respond(&s.name, op, slot.attempts);
                        events.push(TxnEvent::Result {
                            step: i as u32,
                            phase,
                            attempt: slot.attempts,
                            result: result(kind),
                        });
                    }
                    SlotState::Waiting { .. } => events.push(TxnEvent::Restart {
                        step: i as u32,
                        phase,
                        attempt: slot.attempts + 1,
                    }),
                    _ => {}
                }
            }
        }
        if events.is_empty() {
            return calls;
        }
        // One command per event, as the driver proposes them when calls end.
        for e in events {
            advance(sm, id, 0, vec![e]);
        }
    }
    panic!("transaction {id} never settled");
}

fn result(kind: CallKind) -> CallResult {
    CallResult {
        kind,
        http_status: Some(match kind {
            CallKind::Success => 200,
            CallKind::Refused => 409,
            CallKind::Pending => 425,
            CallKind::Failed => 500,
        }),
        latency_ms: 1,
        error: None,
        retry_in_ms: 10,
    }
}

fn advance(sm: &mut StateMachine, id: &str, elapsed_ms: u64, events: Vec<TxnEvent>) -> Outcome {
    sm.apply(Command::TxnAdvance {
        id: id.to_owned(),
        term: 1,
        at_ms: 5,
        elapsed_ms,
        events,
    })
}

fn create(sm: &mut StateMachine, mode: TxnMode, id: &str, steps: &[&str]) {
    match sm.apply(Command::TxnCreate {
        txn: new_txn(mode, Some(id), steps),
        at_ms: 1,
    }) {
        Outcome::TxnCreated { existed: false, .. } => {}
        other => panic!("create: {other:?}"),
    }
}

fn decide(sm: &mut StateMachine, id: &str, decision: TxnDecision) -> Outcome {
    sm.apply(Command::TxnDecide {
        id: id.to_owned(),
        decision,
        at_ms: 7,
    })
}

fn status(sm: &StateMachine, id: &str) -> TxnStatus {
    sm.transaction(id).expect("txn").status
}

fn ok(_: &str, _: TxnOp, _: u32) -> CallKind {
    CallKind::Success
}

fn names(calls: &[(String, TxnOp, u32)]) -> Vec<String> {
    calls.iter().map(|(n, op, _)| format!("{n}:{op}")).collect()
}

#[test]
fn a_saga_runs_its_actions_in_order_and_succeeds() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a", "b", "c"]);
    let calls = drive(&mut sm, "t", ok);
    assert_eq!(names(&calls), ["a:action", "b:action", "c:action"]);
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
    assert!(sm.transaction("t").unwrap().finished_at_ms.is_some());
    assert_eq!(sm.active_txns().count(), 0);
}

#[test]
fn a_refused_step_compensates_the_earlier_ones_in_reverse_once_each() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a", "b", "c", "d"]);
    let calls = drive(&mut sm, "t", |n, _, _| {
        if n == "c" {
            CallKind::Refused
        } else {
            CallKind::Success
        }
    });
    assert_eq!(
        names(&calls),
        [
            "a:action",
            "b:action",
            "c:action",
            "b:compensate",
            "a:compensate"
        ]
    );
    let rec = sm.transaction("t").unwrap();
    assert_eq!(rec.status, TxnStatus::Aborted);
    assert_eq!(rec.reason.as_deref(), Some("step \"c\" was refused"));
    assert_eq!(rec.steps[2].back.state, SlotState::Skipped);
    assert_eq!(rec.steps[3].fwd.state, SlotState::Skipped);
}

#[test]
fn failures_retry_until_success_within_the_limit() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    let calls = drive(&mut sm, "t", |_, _, attempt| {
        if attempt < 3 {
            CallKind::Failed
        } else {
            CallKind::Success
        }
    });
    assert_eq!(calls.len(), 3);
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
    let rec = sm.transaction("t").unwrap();
    // Waiting carries the driver's backoff until the restart.
    assert!(
        rec.history
            .iter()
            .any(|h| h.verdict == crate::Verdict::Failed)
    );
}

#[test]
fn an_exhausted_action_is_compensated_because_its_effect_is_unknown() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a", "b"]);
    let calls = drive(&mut sm, "t", |n, op, _| match (n, op) {
        ("b", TxnOp::Action) => CallKind::Failed,
        _ => CallKind::Success,
    });
    assert_eq!(
        names(&calls),
        [
            "a:action",
            "b:action",
            "b:action",
            "b:action",
            "b:compensate",
            "a:compensate"
        ]
    );
    assert_eq!(status(&sm, "t"), TxnStatus::Aborted);
}

#[test]
fn pending_answers_are_retried_like_failures() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    drive(&mut sm, "t", |_, _, attempt| {
        if attempt == 1 {
            CallKind::Pending
        } else {
            CallKind::Success
        }
    });
    let rec = sm.transaction("t").unwrap();
    assert_eq!(rec.status, TxnStatus::Succeeded);
    assert!(
        rec.history
            .iter()
            .any(|h| h.verdict == crate::Verdict::Pending)
    );
}

#[test]
fn a_compensation_that_keeps_failing_leaves_the_saga_stuck_until_retried() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a", "b"]);
    let mut broken = true;
    drive(&mut sm, "t", |n, op, _| match (n, op) {
        ("b", TxnOp::Action) => CallKind::Refused,
        ("a", TxnOp::Compensate) if broken => CallKind::Failed,
        _ => CallKind::Success,
    });
    assert_eq!(status(&sm, "t"), TxnStatus::Stuck);
    assert_eq!(sm.active_txns().collect::<Vec<_>>(), ["t"]);
    // A 409 to a compensation is a failure, never a refusal.
    broken = false;
    assert!(matches!(
        decide(&mut sm, "t", TxnDecision::Retry),
        Outcome::TxnChanged { .. }
    ));
    assert_eq!(status(&sm, "t"), TxnStatus::Aborting);
    let calls = drive(&mut sm, "t", |_, _, _| {
        if broken {
            CallKind::Failed
        } else {
            CallKind::Success
        }
    });
    assert_eq!(names(&calls), ["a:compensate"]);
    assert_eq!(calls[0].2, 4, "attempts keep counting across the retry");
    assert_eq!(status(&sm, "t"), TxnStatus::Aborted);
}

#[test]
fn two_phase_commit_prepares_all_then_commits_all() {
    let mut sm = machine();
    create(&mut sm, TxnMode::TwoPc, "t", &["a", "b"]);
    let calls = drive(&mut sm, "t", ok);
    assert_eq!(
        names(&calls),
        ["a:prepare", "b:prepare", "a:commit", "b:commit"]
    );
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
}

#[test]
fn two_phase_commit_rolls_back_every_prepared_step_on_a_no_vote() {
    let mut sm = machine();
    create(&mut sm, TxnMode::TwoPc, "t", &["a", "b", "c"]);
    let calls = drive(&mut sm, "t", |n, op, _| match (n, op) {
        ("b", TxnOp::Prepare) => CallKind::Refused,
        _ => CallKind::Success,
    });
    let mut rolled: Vec<_> = calls
        .iter()
        .filter(|c| c.1 == TxnOp::Rollback)
        .map(|c| c.0.as_str())
        .collect();
    rolled.sort_unstable();
    assert_eq!(rolled, ["a", "b", "c"]);
    assert!(!calls.iter().any(|c| c.1 == TxnOp::Commit));
    assert_eq!(status(&sm, "t"), TxnStatus::Aborted);
}

#[test]
fn a_commit_that_keeps_failing_gets_stuck_not_rolled_back() {
    let mut sm = machine();
    create(&mut sm, TxnMode::TwoPc, "t", &["a"]);
    let calls = drive(&mut sm, "t", |_, op, _| {
        if op == TxnOp::Commit {
            CallKind::Failed
        } else {
            CallKind::Success
        }
    });
    assert_eq!(calls.iter().filter(|c| c.1 == TxnOp::Commit).count(), 3);
    assert!(!calls.iter().any(|c| c.1 == TxnOp::Rollback));
    assert_eq!(status(&sm, "t"), TxnStatus::Stuck);
    assert!(matches!(
        decide(
            &mut sm,
            "t",
            TxnDecision::Abort {
                reason: "no".into()
            }
        ),
        Outcome::Refused(StateError::TxnConflict(_))
    ));
    assert!(matches!(
        decide(
            &mut sm,
            "t",
            TxnDecision::Resolve {
                reason: "fixed by hand".into()
            }
        ),
        Outcome::TxnChanged { .. }
    ));
    let rec = sm.transaction("t").unwrap();
    assert_eq!(rec.status, TxnStatus::Resolved);
    assert_eq!(rec.reason.as_deref(), Some("fixed by hand"));
}

fn branch(sm: &mut StateMachine, id: &str, name: &str) -> Outcome {
    sm.apply(Command::TxnBranch {
        id: id.to_owned(),
        step: crate::testutil::step(TxnMode::Tcc, name),
        at_ms: 3,
    })
}

#[test]
fn tcc_tries_each_branch_as_it_joins_then_confirms_all_on_commit() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Tcc, "t", &[]);
    assert_eq!(status(&sm, "t"), TxnStatus::Trying);
    branch(&mut sm, "t", "a");
    let mut calls = drive(&mut sm, "t", ok);
    branch(&mut sm, "t", "b");
    calls.extend(drive(&mut sm, "t", ok));
    assert!(matches!(branch(&mut sm, "t", "b"), Outcome::Refused(_)));
    decide(&mut sm, "t", TxnDecision::Commit);
    calls.extend(drive(&mut sm, "t", ok));
    assert_eq!(names(&calls), ["a:try", "b:try", "a:confirm", "b:confirm"]);
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
    assert!(matches!(branch(&mut sm, "t", "c"), Outcome::Refused(_)));
}

#[test]
fn tcc_refuses_commit_after_a_failed_try_and_cancels_every_branch_on_abort() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Tcc, "t", &[]);
    branch(&mut sm, "t", "a");
    branch(&mut sm, "t", "b");
    // b's try times out every time: its effect is unknown.
    drive(&mut sm, "t", |n, _, _| {
        if n == "b" {
            CallKind::Failed
        } else {
            CallKind::Success
        }
    });
    assert_eq!(status(&sm, "t"), TxnStatus::Trying);
    match decide(&mut sm, "t", TxnDecision::Commit) {
        Outcome::Refused(StateError::TxnConflict(m)) => assert!(m.contains("\"b\""), "{m}"),
        other => panic!("{other:?}"),
    }
    decide(
        &mut sm,
        "t",
        TxnDecision::Abort {
            reason: "client".into(),
        },
    );
    let calls = drive(&mut sm, "t", ok);
    let mut cancelled: Vec<_> = calls.iter().map(|c| format!("{}:{}", c.0, c.1)).collect();
    cancelled.sort();
    assert_eq!(cancelled, ["a:cancel", "b:cancel"]);
    assert_eq!(status(&sm, "t"), TxnStatus::Aborted);
}

#[test]
fn the_deadline_aborts_the_forward_phase_only_once_it_has_passed() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a", "b"]);
    drive(&mut sm, "t", |_, _, _| CallKind::Success);
    // Finished: a deadline means nothing now.
    assert!(matches!(
        advance(&mut sm, "t", 120_000, vec![TxnEvent::Deadline]),
        Outcome::TxnChanged { applied: 0, .. }
    ));
    create(&mut sm, TxnMode::Saga, "u", &["a", "b"]);
    // a's action is running; too early.
    assert!(matches!(
        advance(&mut sm, "u", 59_999, vec![TxnEvent::Deadline]),
        Outcome::TxnChanged { applied: 0, .. }
    ));
    assert!(matches!(
        advance(&mut sm, "u", 60_000, vec![TxnEvent::Deadline]),
        Outcome::TxnChanged { applied: 1, .. }
    ));
    assert_eq!(status(&sm, "u"), TxnStatus::Aborting);
    // The in-flight action still ends; then it is compensated; b never runs.
    let calls = drive(&mut sm, "u", ok);
    assert_eq!(names(&calls), ["a:action", "a:compensate"]);
    assert_eq!(status(&sm, "u"), TxnStatus::Aborted);
}

#[test]
fn a_new_leader_restarts_calls_lost_in_flight_with_the_next_attempt() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    // Attempt 1 was running when the leader died.
    assert!(matches!(
        advance(
            &mut sm,
            "t",
            0,
            vec![TxnEvent::Restart {
                step: 0,
                phase: Phase::Forward,
                attempt: 2
            }]
        ),
        Outcome::TxnChanged { applied: 1, .. }
    ));
    let rec = sm.transaction("t").unwrap();
    assert_eq!(rec.steps[0].fwd.attempts, 2);
    assert!(
        rec.history
            .iter()
            .any(|h| h.verdict == crate::Verdict::Interrupted && h.attempt == 1)
    );
    // A late result for attempt 1 no longer fits.
    assert!(matches!(
        advance(
            &mut sm,
            "t",
            0,
            vec![TxnEvent::Result {
                step: 0,
                phase: Phase::Forward,
                attempt: 1,
                result: result(CallKind::Success)
            }]
        ),
        Outcome::TxnChanged { applied: 0, .. }
    ));
    drive(&mut sm, "t", ok);
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
}

#[test]
fn older_terms_are_fenced_off() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    let restart = |term| Command::TxnAdvance {
        id: "t".into(),
        term,
        at_ms: 1,
        elapsed_ms: 0,
        events: vec![TxnEvent::Restart {
            step: 0,
            phase: Phase::Forward,
            attempt: 2,
        }],
    };
    assert!(matches!(sm.apply(restart(3)), Outcome::TxnChanged { .. }));
    assert!(matches!(
        sm.apply(restart(2)),
        Outcome::Refused(StateError::TxnConflict(_))
    ));
}

#[test]
fn concurrent_sagas_start_steps_whose_dependencies_are_done() {
    let mut sm = machine();
    let mut txn = new_txn(TxnMode::Saga, Some("t"), &["a", "b", "c"]);
    txn.concurrent = true;
    txn.steps[2].deps = vec![0, 1];
    sm.apply(Command::TxnCreate { txn, at_ms: 1 });
    let rec = sm.transaction("t").unwrap();
    let running: Vec<_> = rec
        .steps
        .iter()
        .map(|s| s.fwd.state == SlotState::Running)
        .collect();
    assert_eq!(running, [true, true, false]);
    let calls = drive(&mut sm, "t", ok);
    assert_eq!(names(&calls), ["a:action", "b:action", "c:action"]);
    assert_eq!(status(&sm, "t"), TxnStatus::Succeeded);
}

#[test]
fn resubmitting_an_id_is_idempotent_and_a_different_body_conflicts() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    let rev = sm.revision();
    assert!(matches!(
        sm.apply(Command::TxnCreate {
            txn: new_txn(TxnMode::Saga, Some("t"), &["a"]),
            at_ms: 9,
        }),
        Outcome::TxnCreated { existed: true, .. }
    ));
    assert_eq!(sm.revision(), rev);
    assert!(matches!(
        sm.apply(Command::TxnCreate {
            txn: new_txn(TxnMode::Saga, Some("t"), &["a", "b"]),
            at_ms: 9,
        }),
        Outcome::Refused(StateError::TxnConflict(_))
    ));
}

#[test]
fn generated_ids_follow_the_revision_and_forget_drops_only_final_ones() {
    let mut sm = machine();
    let Outcome::TxnCreated { id, .. } = sm.apply(Command::TxnCreate {
        txn: new_txn(TxnMode::Saga, None, &["a"]),
        at_ms: 1,
    }) else {
        panic!()
    };
    assert_eq!(id, "tx0000000000000001");
    create(&mut sm, TxnMode::Saga, "t", &["a"]);
    drive(&mut sm, "t", ok);
    assert!(matches!(
        sm.apply(Command::TxnForget {
            ids: vec![id.clone(), "t".into()]
        }),
        Outcome::TxnForgotten { removed: 1, .. }
    ));
    assert!(sm.transaction("t").is_none());
    assert!(sm.transaction(&id).is_some());
    assert_eq!(sm.finished_txn_count(), 0);
}

#[test]
fn history_stays_bounded_under_a_retry_storm() {
    let mut sm = machine();
    let mut txn = new_txn(TxnMode::Saga, Some("t"), &["a"]);
    txn.steps[0].retry.max_attempts = 10_000;
    sm.apply(Command::TxnCreate { txn, at_ms: 1 });
    drive(&mut sm, "t", |_, _, a| {
        if a < 400 {
            CallKind::Failed
        } else {
            CallKind::Success
        }
    });
    let rec = sm.transaction("t").unwrap();
    assert_eq!(rec.status, TxnStatus::Succeeded);
    assert!(rec.history.len() <= crate::MAX_HISTORY);
    assert!(rec.history_dropped > 0);
    assert_eq!(rec.history[0].mark, crate::Mark::Create);
}

#[test]
fn snapshots_keep_transactions_and_restore_the_active_index() {
    let mut sm = machine();
    create(&mut sm, TxnMode::Saga, "done", &["a"]);
    drive(&mut sm, "done", ok);
    create(&mut sm, TxnMode::Tcc, "open", &[]);
    let restored = StateMachine::restore(&sm.snapshot(), Default::default()).expect("restore");
    assert_eq!(restored, sm);
    assert_eq!(restored.active_txns().collect::<Vec<_>>(), ["open"]);
    let done_at = sm.transaction("done").unwrap().revision;
    assert_eq!(
        restored.finished_txns_until(done_at).collect::<Vec<_>>(),
        ["done"]
    );
    assert_eq!(restored.finished_txns_until(done_at - 1).count(), 0);
}

#[test]
fn calls_belong_to_the_term_of_the_leader_that_appended_the_command() {
    let mut sm = machine();
    sm.set_log_position(5, 40);
    create(&mut sm, TxnMode::Saga, "t", &["a", "b"]);
    let rec = sm.transaction("t").unwrap();
    assert_eq!(
        (rec.term, rec.steps[0].fwd.term, rec.steps[0].fwd.started_at),
        (5, 5, 40)
    );
    // A driver of an older term is fenced off, whoever relayed its command.
    let stale = Command::TxnAdvance {
        id: "t".into(),
        term: 4,
        at_ms: 1,
        elapsed_ms: 0,
        events: vec![TxnEvent::Deadline],
    };
    assert!(matches!(
        sm.apply(stale),
        Outcome::Refused(StateError::TxnConflict(_))
    ));
    // The next leader's decisions and the calls they start carry its term.
    sm.set_log_position(6, 41);
    sm.apply(Command::TxnAdvance {
        id: "t".into(),
        term: 6,
        at_ms: 1,
        elapsed_ms: 0,
        events: vec![TxnEvent::Result {
            step: 0,
            phase: Phase::Forward,
            attempt: 1,
            result: result(CallKind::Success),
        }],
    });
    let rec = sm.transaction("t").unwrap();
    assert_eq!(
        (rec.term, rec.steps[1].fwd.term, rec.steps[1].fwd.started_at),
        (6, 6, 41)
    );
}
