//! The barrier's behaviour, written once and run against every backend by
//! `barrier_scenarios!`. Each takes the test's name for its tables.

use std::sync::Arc;

use concord_api::transactions::TxnOp::{self, *};

use super::harness::{Fail, TestDb};
use crate::participant::BarrierError;
use crate::participant::BarrierOutcome::{self, *};

const AMOUNT: i64 = 10;

fn outcome(delivery: super::harness::Delivery) -> BarrierOutcome<()> {
    delivery.unwrap_or_else(|e| panic!("delivery failed: {e:?}"))
}

pub async fn forward_runs_once_and_duplicate_is_noop<DB: TestDb>(name: &'static str) {
    let h = DB::harness(name).await;
    assert_eq!(
        outcome(h.deliver("t1", "debit", Action, AMOUNT).await),
        Ran(())
    );
    assert_eq!(
        outcome(h.deliver("t1", "debit", Action, AMOUNT).await),
        Duplicate
    );
    assert_eq!(
        outcome(h.deliver("t1", "debit", Action, AMOUNT).await),
        Duplicate
    );
    assert_eq!(h.balance().await, AMOUNT);
    assert_eq!(h.runs(), 1);
    assert_eq!(h.rows("t1").await, 1);
}

pub async fn business_error_rolls_back_and_retry_runs<DB: TestDb>(name: &'static str) {
    let h = DB::harness(name).await;
    let refused = h.deliver_refused("t1", "debit", Action).await;
    assert!(
        matches!(refused, Err(BarrierError::Business(Fail::Refused))),
        "{refused:?}"
    );
    assert_eq!(h.runs(), 1);
    assert_eq!(
        h.balance().await,
        0,
        "the refused business write must roll back"
    );
    assert_eq!(
        h.rows("t1").await,
        0,
        "a refused op must leave no barrier row"
    );
    assert_eq!(
        outcome(h.deliver("t1", "debit", Action, AMOUNT).await),
        Ran(())
    );
    assert_eq!(h.balance().await, AMOUNT);
    assert_eq!(h.runs(), 2);
}

async fn undo_after_forward<DB: TestDb>(name: &'static str, forward: TxnOp, undo: TxnOp) {
    assert_eq!(undo.undoes(), Some(forward));
    let h = DB::harness(name).await;
    assert_eq!(
        outcome(h.deliver("t1", "s", forward, AMOUNT).await),
        Ran(())
    );
    assert_eq!(outcome(h.deliver("t1", "s", undo, -AMOUNT).await), Ran(()));
    assert_eq!(
        outcome(h.deliver("t1", "s", undo, -AMOUNT).await),
        Duplicate
    );
    assert_eq!(
        outcome(h.deliver("t1", "s", forward, AMOUNT).await),
        Duplicate
    );
    assert_eq!(h.balance().await, 0);
    assert_eq!(h.runs(), 2);
    assert_eq!(h.rows("t1").await, 2);
}

pub async fn compensate_after_action_undoes_once<DB: TestDb>(name: &'static str) {
    undo_after_forward::<DB>(name, Action, Compensate).await;
}

pub async fn cancel_after_try_undoes_once<DB: TestDb>(name: &'static str) {
    undo_after_forward::<DB>(name, Try, Cancel).await;
}

pub async fn rollback_after_prepare_undoes_once<DB: TestDb>(name: &'static str) {
    undo_after_forward::<DB>(name, Prepare, Rollback).await;
}

async fn undo_before_forward<DB: TestDb>(name: &'static str, forward: TxnOp, undo: TxnOp) {
    let h = DB::harness(name).await;
    assert_eq!(
        outcome(h.deliver("t1", "s", undo, -AMOUNT).await),
        NullCompensation
    );
    assert_eq!(
        h.runs(),
        0,
        "a null compensation must not run the business code"
    );
    assert_eq!(
        outcome(h.deliver("t1", "s", undo, -AMOUNT).await),
        Duplicate
    );
    // The forward op, arriving late, must not take effect: nobody would undo it.
    assert_eq!(
        outcome(h.deliver("t1", "s", forward, AMOUNT).await),
        Suppressed
    );
    assert_eq!(
        outcome(h.deliver("t1", "s", forward, AMOUNT).await),
        Suppressed
    );
    assert_eq!(h.runs(), 0);
    assert_eq!(h.balance().await, 0);
    assert_eq!(h.rows("t1").await, 2);
}

pub async fn compensate_before_action_is_null_and_suppresses_action<DB: TestDb>(
    name: &'static str,
) {
    undo_before_forward::<DB>(name, Action, Compensate).await;
}

pub async fn cancel_before_try_is_null_and_suppresses_try<DB: TestDb>(name: &'static str) {
    undo_before_forward::<DB>(name, Try, Cancel).await;
}

pub async fn rollback_before_prepare_is_null_and_suppresses_prepare<DB: TestDb>(
    name: &'static str,
) {
    undo_before_forward::<DB>(name, Prepare, Rollback).await;
}

pub async fn compensate_after_refused_action_is_null<DB: TestDb>(name: &'static str) {
    let h = DB::harness(name).await;
    assert!(h.deliver_refused("t1", "s", Action).await.is_err());
    assert_eq!(
        outcome(h.deliver("t1", "s", Compensate, -AMOUNT).await),
        NullCompensation
    );
    assert_eq!(
        outcome(h.deliver("t1", "s", Action, AMOUNT).await),
        Suppressed
    );
    assert_eq!(h.balance().await, 0);
    assert_eq!(h.runs(), 1);
}

pub async fn finish_ops_run_once<DB: TestDb>(name: &'static str) {
    let h = DB::harness(name).await;
    for (forward, finish) in [(Try, Confirm), (Prepare, Commit)] {
        let txn = format!("t-{finish}");
        assert_eq!(outcome(h.deliver(&txn, "s", forward, 1).await), Ran(()));
        assert_eq!(outcome(h.deliver(&txn, "s", finish, AMOUNT).await), Ran(()));
        assert_eq!(
            outcome(h.deliver(&txn, "s", finish, AMOUNT).await),
            Duplicate
        );
        assert_eq!(h.rows(&txn).await, 2);
    }
    assert_eq!(h.balance().await, 2 * (1 + AMOUNT));
    assert_eq!(h.runs(), 4);
}

pub async fn steps_and_transactions_are_independent<DB: TestDb>(name: &'static str) {
    let h = DB::harness(name).await;
    for (txn, step) in [("t1", "a"), ("t1", "b"), ("t2", "a"), ("t2", "b")] {
        assert_eq!(outcome(h.deliver(txn, step, Action, 1).await), Ran(()));
    }
    // Compensating one step must not fence or undo another.
    assert_eq!(outcome(h.deliver("t1", "a", Compensate, -1).await), Ran(()));
    assert_eq!(
        outcome(h.deliver("t3", "a", Compensate, -1).await),
        NullCompensation
    );
    assert_eq!(h.balance().await, 3);
    assert_eq!(h.rows("t1").await, 3);
    assert_eq!(h.rows("t2").await, 2);
}

pub async fn concurrent_duplicates_take_effect_once<DB: TestDb>(name: &'static str) {
    let h = Arc::new(DB::harness(name).await);
    for round in 0..5 {
        let txn = format!("t{round}");
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (h, txn) = (Arc::clone(&h), txn.clone());
                tokio::spawn(async move { h.deliver(&txn, "s", Action, AMOUNT).await })
            })
            .collect();
        let mut ran = 0;
        for task in tasks {
            match outcome(task.await.unwrap()) {
                Ran(()) => ran += 1,
                Duplicate => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ran, 1, "round {round}: exactly one delivery takes effect");
    }
    assert_eq!(h.balance().await, 5 * AMOUNT);
    assert_eq!(h.runs(), 5);
}

pub async fn racing_action_and_compensate_leave_no_effect<DB: TestDb>(name: &'static str) {
    let h = Arc::new(DB::harness(name).await);
    for round in 0..10 {
        let txn = format!("t{round}");
        let deliver = |op: TxnOp, amount: i64| {
            let (h, txn) = (Arc::clone(&h), txn.clone());
            tokio::spawn(async move { h.deliver(&txn, "s", op, amount).await })
        };
        let action = deliver(Action, AMOUNT);
        let compensate = deliver(Compensate, -AMOUNT);
        let pair = (
            outcome(action.await.unwrap()),
            outcome(compensate.await.unwrap()),
        );
        // Either order is fine, as long as the pair cancels out.
        assert!(
            matches!(pair, (Ran(()), Ran(())) | (Suppressed, NullCompensation)),
            "round {round}: {pair:?}"
        );
    }
    assert_eq!(h.balance().await, 0);
}
