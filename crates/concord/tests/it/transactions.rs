//! Distributed transactions against the real binary, with real participants: SQLite
//! ledgers behind the SDK's barrier, scripted to fail, stall, answer 425 or lose
//! responses.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

#[path = "../common/ledger.rs"]
mod ledger;

use ledger::{Behavior, Ledger};

use crate::support::{Server, assert_error, call, eventually, get};

const WAIT: Duration = Duration::from_secs(60);

async fn submit(s: &Server, body: Value) -> (u16, Value) {
    let (st, _, b) = call(Method::POST, &s.url("/v1/transactions"), Some(body)).await;
    (st, b)
}

/// Polls until the transaction is final; returns its view.
async fn finished(s: &Server, id: &str) -> Value {
    eventually(WAIT, &format!("transaction {id} to end"), || async {
        let (st, _, b) = get(&s.url(&format!("/v1/transactions/{id}"))).await;
        let done = st == 200
            && matches!(
                b["status"].as_str(),
                Some("succeeded" | "aborted" | "resolved")
            );
        done.then_some(b)
    })
    .await
}

async fn status_becomes(s: &Server, id: &str, want: &str) -> Value {
    eventually(
        WAIT,
        &format!("transaction {id} to become {want}"),
        || async {
            let (_, _, b) = get(&s.url(&format!("/v1/transactions/{id}"))).await;
            (b["status"] == want).then_some(b)
        },
    )
    .await
}

fn step_statuses(view: &Value) -> Vec<String> {
    view["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["name"].as_str().unwrap(),
                s["status"].as_str().unwrap()
            )
        })
        .collect()
}

/// A saga step moving `amount` out of `from` (compensation puts it back).
fn debit(l: &Ledger, name: &str, account: &str, amount: i64) -> Value {
    json!({"name": name, "action": l.call(account, -amount), "compensate": l.call(account, amount)})
}

#[tokio::test]
async fn a_saga_applies_every_step_once_and_answers_with_the_final_state() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("alice", 100), ("bob", 0)]).await;
    let (st, view) = submit(
        &s,
        json!({"id": "order-1", "mode": "saga", "wait": true,
               "steps": [debit(&l, "debit", "alice", 30), debit(&l, "credit", "bob", -30)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["id"], "order-1");
    assert_eq!(
        step_statuses(&view),
        ["debit=succeeded", "credit=succeeded"]
    );
    assert!(view["finished_at"].is_string());
    assert_eq!(l.balance("alice").await, 70);
    assert_eq!(l.balance("bob").await, 30);
    assert_eq!(l.effects("order-1"), ["debit:action", "credit:action"]);
    // Protocol headers reached the participant.
    let seen = l.seen();
    assert!(seen.iter().all(|c| c.attempt == 1 && c.txn == "order-1"));
    // Resubmitting the same id is idempotent; another body under it conflicts.
    let (st, again) = submit(
        &s,
        json!({"id": "order-1", "mode": "saga", "wait": true,
               "steps": [debit(&l, "debit", "alice", 30), debit(&l, "credit", "bob", -30)]}),
    )
    .await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["revision"], view["revision"]);
    assert_eq!(l.balance("alice").await, 70);
    let other = call(
        Method::POST,
        &s.url("/v1/transactions"),
        Some(json!({"id": "order-1", "mode": "saga", "steps": [debit(&l, "x", "alice", 1)]})),
    )
    .await;
    assert_error(&other, 409, "conflict");
}

#[tokio::test]
async fn a_refused_step_compensates_the_earlier_ones_in_reverse_exactly_once() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("b", 10), ("c", 10), ("poor", 0)]).await;
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true, "steps": [
            debit(&l, "s1", "a", 1), debit(&l, "s2", "b", 2), debit(&l, "s3", "c", 3),
            debit(&l, "s4", "poor", 5), debit(&l, "s5", "a", 1)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "aborted");
    assert!(view["reason"].as_str().unwrap().contains("s4"), "{view}");
    assert_eq!(
        l.trace("t"),
        [
            "s1:action:ran",
            "s2:action:ran",
            "s3:action:ran",
            "s4:action:refused",
            "s3:compensate:ran",
            "s2:compensate:ran",
            "s1:compensate:ran"
        ]
    );
    assert_eq!(
        step_statuses(&view),
        [
            "s1=compensated",
            "s2=compensated",
            "s3=compensated",
            "s4=refused",
            "s5=skipped"
        ]
    );
    for acct in ["a", "b", "c"] {
        assert_eq!(l.balance(acct).await, 10, "{acct}");
    }
    // The history tells the whole story in order.
    let ops: Vec<String> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h["op"].as_str().unwrap(),
                h["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(ops.first().map(String::as_str), Some("create:running"));
    assert_eq!(ops.last().map(String::as_str), Some("phase:aborted"));
    assert!(ops.contains(&"phase:aborting".to_owned()));
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_success() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    l.script("s1", "action", [Behavior::Fail(503), Behavior::Fail(500)]);
    let started = Instant::now();
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true,
               "retry": {"initial_backoff_ms": 200, "max_backoff_ms": 400, "max_attempts": 5},
               "steps": [debit(&l, "s1", "a", 1)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(
        l.trace("t"),
        ["s1:action:failed", "s1:action:failed", "s1:action:ran"]
    );
    let attempts: Vec<u32> = l.seen().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    // Backoff of at least half of 200 then 400 ms (jitter keeps the upper half).
    assert!(started.elapsed() >= Duration::from_millis(300));
    let failed: Vec<Value> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["outcome"] == "failed")
        .cloned()
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["http_status"], 503);
    assert!(failed[0]["latency_ms"].is_u64());
    assert_eq!(l.balance("a").await, 9);
}

#[tokio::test]
async fn a_425_is_asked_again_after_its_retry_after() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    l.script("s1", "action", [Behavior::Pending(Some(1))]);
    let started = Instant::now();
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true,
               "retry": {"initial_backoff_ms": 10},
               "steps": [debit(&l, "s1", "a", 1)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(l.trace("t"), ["s1:action:pending", "s1:action:ran"]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["outcome"] == "pending" && h["http_status"] == 425)
    );
}

#[tokio::test]
async fn a_step_that_times_out_every_time_aborts_and_its_late_effect_is_suppressed() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("b", 10)]).await;
    // s2 stalls past its 300 ms timeout on both attempts.
    l.script(
        "s2",
        "action",
        [
            Behavior::Stall(Duration::from_millis(1500)),
            Behavior::Stall(Duration::from_millis(1500)),
        ],
    );
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true,
               "retry": {"initial_backoff_ms": 10, "max_attempts": 2},
               "steps": [debit(&l, "s1", "a", 1),
                         {"name": "s2", "action": l.call("b", -1), "compensate": l.call("b", 1),
                          "timeout_ms": 300}]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "aborted");
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("failed after 2 attempts")
    );
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["error"].as_str().is_some_and(|e| e.contains("timed out")))
    );
    // Both stalled actions eventually arrive, after the null compensation: no effect.
    eventually(WAIT, "the stalled calls to land", || async {
        (l.trace("t")
            .iter()
            .filter(|c| c.starts_with("s2:action"))
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let trace = l.trace("t");
    assert!(
        trace.contains(&"s2:compensate:null_compensation".to_owned()),
        "{trace:?}"
    );
    assert!(
        trace
            .iter()
            .filter(|c| c.starts_with("s2:action"))
            .all(|c| c.ends_with("suppressed")),
        "{trace:?}"
    );
    assert_eq!(l.balance("a").await, 10);
    assert_eq!(l.balance("b").await, 10);
}

#[tokio::test]
async fn a_lost_response_is_retried_and_the_barrier_keeps_one_effect() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    l.script("s1", "action", [Behavior::LoseResponse]);
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true, "retry": {"initial_backoff_ms": 10},
               "steps": [debit(&l, "s1", "a", 4)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(
        l.trace("t"),
        ["s1:action:lost_response", "s1:action:duplicate"]
    );
    assert_eq!(l.balance("a").await, 6);
}

fn two_pc_step(l: &Ledger, name: &str, account: &str, delta: i64) -> Value {
    // Prepare reserves nothing here; commit applies; rollback is a no-op delta.
    json!({"name": name, "prepare": l.call(account, 0), "commit": l.call(account, delta),
           "rollback": l.call(account, 0)})
}

#[tokio::test]
async fn two_phase_commit_commits_all_or_rolls_back_all() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("b", 10)]).await;
    let (st, view) = submit(
        &s,
        json!({"id": "ok", "mode": "2pc", "wait": true,
               "steps": [two_pc_step(&l, "p1", "a", -3), two_pc_step(&l, "p2", "b", 3)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(step_statuses(&view), ["p1=committed", "p2=committed"]);
    assert_eq!((l.balance("a").await, l.balance("b").await), (7, 13));

    l.script("p2", "prepare", [Behavior::Fail(409)]);
    let (st, view) = submit(
        &s,
        json!({"id": "no", "mode": "2pc", "wait": true,
               "steps": [two_pc_step(&l, "p1", "a", -3), two_pc_step(&l, "p2", "b", 3)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "aborted");
    let mut trace = l.trace("no");
    trace.sort();
    assert_eq!(
        trace,
        [
            "p1:prepare:ran",
            "p1:rollback:ran",
            "p2:prepare:failed",
            "p2:rollback:null_compensation"
        ]
    );
    assert_eq!((l.balance("a").await, l.balance("b").await), (7, 13));
}

fn branch(l: &Ledger, name: &str, account: &str, amount: i64) -> Value {
    // Try reserves (debits), confirm keeps it (no-op), cancel gives it back.
    json!({"name": name, "try": l.call(account, -amount), "confirm": l.call(account, 0),
           "cancel": l.call(account, amount)})
}

#[tokio::test]
async fn tcc_confirms_every_branch_on_commit() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("b", 10)]).await;
    let (st, created) = submit(&s, json!({"id": "tcc1", "mode": "tcc"})).await;
    assert_eq!(st, 202, "{created}");
    assert_eq!(created, json!({"id": "tcc1", "status": "trying"}));
    for (name, acct) in [("x", "a"), ("y", "b")] {
        let (st, _, b) = call(
            Method::POST,
            &s.url("/v1/transactions/tcc1/branches"),
            Some(branch(&l, name, acct, 4)),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["status"], "succeeded");
    }
    let (st, _, view) = call(Method::POST, &s.url("/v1/transactions/tcc1/commit"), None).await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(step_statuses(&view), ["x=confirmed", "y=confirmed"]);
    assert_eq!((l.balance("a").await, l.balance("b").await), (6, 6));
    // Finished: no more branches.
    let late = call(
        Method::POST,
        &s.url("/v1/transactions/tcc1/branches"),
        Some(branch(&l, "z", "a", 1)),
    )
    .await;
    assert_error(&late, 409, "conflict");
}

#[tokio::test]
async fn tcc_abort_cancels_every_branch_including_a_try_that_timed_out() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("b", 10), ("poor", 0)]).await;
    submit(
        &s,
        json!({"id": "tcc2", "mode": "tcc", "retry": {"max_attempts": 1}}),
    )
    .await;
    let (st, _, b) = call(
        Method::POST,
        &s.url("/v1/transactions/tcc2/branches"),
        Some(branch(&l, "x", "a", 4)),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    // y's try stalls past its timeout: 502, effect unknown.
    l.script("y", "try", [Behavior::Stall(Duration::from_millis(1500))]);
    let mut y = branch(&l, "y", "b", 4);
    y["timeout_ms"] = json!(200);
    let timed_out = call(
        Method::POST,
        &s.url("/v1/transactions/tcc2/branches"),
        Some(y),
    )
    .await;
    assert_error(&timed_out, 502, "bad_gateway");
    // z is refused: insufficient balance.
    let refused = call(
        Method::POST,
        &s.url("/v1/transactions/tcc2/branches"),
        Some(branch(&l, "z", "poor", 1)),
    )
    .await;
    assert_error(&refused, 409, "conflict");
    // Commit is refused while a try failed.
    let commit = call(Method::POST, &s.url("/v1/transactions/tcc2/commit"), None).await;
    assert_error(&commit, 409, "conflict");
    let (st, _, view) = call(
        Method::POST,
        &s.url("/v1/transactions/tcc2/abort"),
        Some(json!({"reason": "y timed out"})),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "aborted");
    assert_eq!(view["reason"], "y timed out");
    assert_eq!(
        step_statuses(&view),
        ["x=cancelled", "y=cancelled", "z=cancelled"]
    );
    // The stalled try lands after its null cancel and does nothing.
    eventually(WAIT, "the stalled try to land", || async {
        l.trace("tcc2")
            .contains(&"y:try:suppressed".to_owned())
            .then_some(())
    })
    .await;
    let trace = l.trace("tcc2");
    assert!(
        trace.contains(&"y:cancel:null_compensation".to_owned()),
        "{trace:?}"
    );
    assert!(trace.contains(&"x:cancel:ran".to_owned()), "{trace:?}");
    assert_eq!(
        (
            l.balance("a").await,
            l.balance("b").await,
            l.balance("poor").await
        ),
        (10, 10, 0)
    );
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_is_stuck_until_retried_or_resolved() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10), ("poor", 0)]).await;
    l.script(
        "s1",
        "compensate",
        [Behavior::Fail(500), Behavior::Fail(500)],
    );
    let (st, accepted) = submit(
        &s,
        json!({"id": "t", "mode": "saga",
               "retry": {"initial_backoff_ms": 10, "max_attempts": 2},
               "steps": [debit(&l, "s1", "a", 1), debit(&l, "s2", "poor", 1)]}),
    )
    .await;
    assert_eq!(st, 202, "{accepted}");
    let view = status_becomes(&s, "t", "stuck").await;
    assert!(
        view["reason"].as_str().unwrap().contains("compensate"),
        "{view}"
    );
    let (_, _, listed) = get(&s.url("/v1/transactions?status=stuck")).await;
    assert_eq!(listed["transactions"][0]["id"], "t");
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("concord_transactions_stuck 1"),
        "{metrics}"
    );
    assert_eq!(l.balance("a").await, 9);
    // The participant is fixed; the operator retries; the saga finishes aborting.
    let (st, _, b) = call(Method::POST, &s.url("/v1/transactions/t/retry"), None).await;
    assert_eq!(st, 200, "{b}");
    let view = finished(&s, "t").await;
    assert_eq!(view["status"], "aborted");
    assert_eq!(l.balance("a").await, 10);
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["op"] == "retry")
    );
    let again = call(Method::POST, &s.url("/v1/transactions/t/retry"), None).await;
    assert_error(&again, 409, "conflict");
}

#[tokio::test]
async fn an_operator_resolves_a_stuck_transaction_with_an_audited_reason() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    l.script("c", "commit", (0..3).map(|_| Behavior::Fail(500)));
    let (st, accepted) = submit(
        &s,
        json!({"id": "t", "mode": "2pc", "retry": {"initial_backoff_ms": 10, "max_attempts": 3},
               "steps": [two_pc_step(&l, "c", "a", -1)]}),
    )
    .await;
    assert_eq!(st, 202, "{accepted}");
    status_becomes(&s, "t", "stuck").await;
    let bad = call(
        Method::POST,
        &s.url("/v1/transactions/t/resolve"),
        Some(json!({"reason": ""})),
    )
    .await;
    assert_error(&bad, 400, "invalid_argument");
    let (st, _, b) = call(
        Method::POST,
        &s.url("/v1/transactions/t/resolve"),
        Some(json!({"reason": "applied by hand, ticket 42"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b, json!({"id": "t", "status": "resolved"}));
    let view = finished(&s, "t").await;
    assert_eq!(view["reason"], "applied by hand, ticket 42");
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["op"], "resolve");
    assert_eq!(last["error"], "applied by hand, ticket 42");
}

#[tokio::test]
async fn service_urls_pick_a_passing_instance() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/ledger/instances/l1"),
        Some(json!({"address": "127.0.0.1", "port": l.addr.port()})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, view) = submit(
        &s,
        json!({"id": "t", "mode": "saga", "wait": true, "steps": [
            {"name": "s1", "action": {"url": "concord://ledger/apply", "body": {"account": "a", "delta": -2}}}]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(l.balance("a").await, 8);
    // No such service: the call fails, is retried, and the saga aborts.
    let (_, view) = submit(
        &s,
        json!({"id": "u", "mode": "saga", "wait": true, "retry": {"initial_backoff_ms": 1, "max_attempts": 2},
               "steps": [{"name": "s1", "action": {"url": "concord://missing/x"}}]}),
    )
    .await;
    assert_eq!(view["status"], "aborted");
    assert!(view["history"].as_array().unwrap().iter().any(|h| {
        h["error"]
            .as_str()
            .is_some_and(|e| e.contains("no passing instance"))
    }));
}

#[tokio::test]
async fn bad_requests_get_field_errors_and_lists_page() {
    let s = Server::dev().await;
    let url = s.url("/v1/transactions");
    for (body, field) in [
        (json!({"mode": "saga", "steps": []}), "steps"),
        (
            json!({"mode": "saga", "steps": [{"name": "a"}]}),
            "steps[0].action",
        ),
        (json!({"mode": "xa", "steps": []}), "mode"),
        (
            json!({"mode": "saga", "steps": [{"name": "a", "action": {"url": "gopher://x"}}]}),
            "steps[0].action.url",
        ),
        (
            json!({"mode": "saga", "steps": [{"name": "a", "action": {"url": "http://h/"}, "bogus": 1}]}),
            "steps[0].bogus",
        ),
        (json!({"id": "no spaces", "mode": "tcc"}), "id"),
    ] {
        let got = call(Method::POST, &url, Some(body.clone())).await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(got.2["error"]["field"], field, "{body}: {}", got.2);
    }
    assert_error(
        &get(&s.url("/v1/transactions/nope")).await,
        404,
        "not_found",
    );
    assert_error(
        &get(&s.url("/v1/transactions?status=done")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &get(&s.url("/v1/transactions?limit=0")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call(Method::POST, &s.url("/v1/transactions/nope/commit"), None).await,
        404,
        "not_found",
    );
    for i in 0..3 {
        let (st, b) = submit(&s, json!({"id": format!("t{i}"), "mode": "tcc"})).await;
        assert_eq!(st, 202, "{b}");
    }
    let (_, _, page) = get(&s.url("/v1/transactions?limit=2&status=trying")).await;
    let ids: Vec<&str> = page["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t0", "t1"]);
    assert_eq!(page["next"], "t1");
    let (_, _, rest) = get(&s.url("/v1/transactions?limit=2&after=t1")).await;
    assert_eq!(rest["transactions"][0]["id"], "t2");
    assert!(rest["next"].is_null());
    // A saga cannot be committed by the client.
    let commit = call(
        Method::POST,
        &s.url("/v1/transactions/t0/abort"),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_error(&commit, 400, "invalid_argument");
}

#[tokio::test]
async fn a_coordinator_killed_at_each_fault_point_resumes_from_the_log() {
    // One saga per fault point: the node dies right after the call or right after
    // recording progress; on restart the new leader (term) resumes it.
    for point in [
        "txn.before_call:2",
        "txn.after_call:2",
        "txn.after_advance:1",
    ] {
        let l = Ledger::start(&[("a", 100), ("b", 0)]).await;
        let mut s = Server::start_faulty(&["--election-timeout-ms", "200-400"], Some(point)).await;
        let id = "move";
        let (st, accepted) = submit(
            &s,
            json!({"id": id, "mode": "saga", "retry": {"initial_backoff_ms": 10},
                   "steps": [debit(&l, "out", "a", 25), debit(&l, "in", "b", -25)]}),
        )
        .await;
        assert_eq!(st, 202, "{point}: {accepted}");
        assert!(
            s.wait_death(WAIT).await,
            "{point}: the fault point never fired"
        );
        s.crash_and_restart().await;
        let view = finished(&s, id).await;
        assert_eq!(view["status"], "succeeded", "{point}: {view}");
        assert_eq!(l.effects(id), ["out:action", "in:action"], "{point}");
        // Each attempt number leaves the coordinator once: the call lost with the
        // crash is made again as the next attempt, even when the restarted node
        // leads in the same term.
        let mut sent: Vec<String> = l
            .seen()
            .iter()
            .map(|c| format!("{}#{}", c.step, c.attempt))
            .collect();
        let all = sent.len();
        sent.sort();
        sent.dedup();
        assert_eq!(
            sent.len(),
            all,
            "{point}: an attempt was sent twice: {:?}",
            l.seen()
        );
        assert_eq!(
            (l.balance("a").await, l.balance("b").await),
            (75, 25),
            "{point}"
        );
    }
}

#[tokio::test]
async fn any_node_takes_transactions_and_the_leader_drives_them() {
    let c = crate::support::cluster::Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let f = c.node(follower);
    let l = Ledger::start(&[("a", 10), ("b", 10)]).await;
    let (st, _, view) = call(
        Method::POST,
        &f.url("/v1/transactions"),
        Some(json!({"id": "via-follower", "mode": "saga", "wait": true,
                    "steps": [debit(&l, "s1", "a", 3), debit(&l, "s2", "b", -3)]})),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!((l.balance("a").await, l.balance("b").await), (7, 13));
    // TCC end to end through the follower: create, branch (answered after the
    // leader's try), commit.
    let (st, _, b) = call(
        Method::POST,
        &f.url("/v1/transactions"),
        Some(json!({"id": "tcc-f", "mode": "tcc"})),
    )
    .await;
    assert_eq!(st, 202, "{b}");
    let (st, _, b) = call(
        Method::POST,
        &f.url("/v1/transactions/tcc-f/branches"),
        Some(branch(&l, "x", "a", 2)),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, _, view) = call(Method::POST, &f.url("/v1/transactions/tcc-f/commit"), None).await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(l.balance("a").await, 5);
    // Every node reads the same records.
    for id in c.nodes.keys() {
        let (st, _, v) = get(&c.node(*id).url("/v1/transactions/tcc-f?consistency=stale")).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["status"], "succeeded", "node {id}");
    }
}

#[tokio::test]
async fn the_cli_lists_shows_retries_and_resolves() {
    let s = Server::dev().await;
    let l = Ledger::start(&[("a", 10)]).await;
    l.script("c", "commit", (0..2).map(|_| Behavior::Fail(500)));
    submit(
        &s,
        json!({"id": "cli-t", "mode": "2pc", "retry": {"initial_backoff_ms": 10, "max_attempts": 2},
               "steps": [two_pc_step(&l, "c", "a", -1)]}),
    )
    .await;
    status_becomes(&s, "cli-t", "stuck").await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::bin())
            .args(args)
            .args(["--addr", &s.base])
            .output()
            .expect("run concord");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["txn", "ls", "--status", "stuck"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("cli-t") && out.contains("stuck") && out.contains("2pc"),
        "{out}"
    );
    let (ok, out, err) = run(&["txn", "get", "cli-t"]);
    assert!(ok, "{err}");
    let view: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(view["status"], "stuck");
    // Retry: the participant now works, the commit goes through.
    let (ok, _, err) = run(&["txn", "retry", "cli-t"]);
    assert!(ok, "{err}");
    let view = finished(&s, "cli-t").await;
    assert_eq!(view["status"], "succeeded");
    let (ok, _, err) = run(&["txn", "resolve", "cli-t", "--reason", "x"]);
    assert!(!ok, "resolving a finished transaction must fail");
    assert!(err.contains("already"), "{err}");
}

#[tokio::test]
async fn finished_transactions_are_forgotten_after_retention_or_past_the_cap() {
    let s = Server::start_with(&["--txn-retention-secs", "1", "--txn-max-finished", "100"]).await;
    let l = Ledger::start(&[("a", 10)]).await;
    let (st, view) = submit(
        &s,
        json!({"id": "old", "mode": "saga", "wait": true, "steps": [debit(&l, "s1", "a", 1)]}),
    )
    .await;
    assert_eq!(st, 200, "{view}");
    // Unfinished ones are never dropped.
    submit(
        &s,
        json!({"id": "open", "mode": "tcc", "timeout_secs": 3600}),
    )
    .await;
    eventually(WAIT, "the finished transaction to be forgotten", || async {
        let (st, _, _) = get(&s.url("/v1/transactions/old")).await;
        (st == 404).then_some(())
    })
    .await;
    let (st, _, b) = get(&s.url("/v1/transactions/open")).await;
    assert_eq!((st, b["status"].as_str()), (200, Some("trying")));

    let capped = Server::start_with(&["--txn-max-finished", "2"]).await;
    for i in 0..4 {
        let (st, view) = submit(
            &capped,
            json!({"id": format!("c{i}"), "mode": "saga", "wait": true, "steps": [debit(&l, "s1", "a", 1)]}),
        )
        .await;
        assert_eq!(st, 200, "{view}");
    }
    eventually(WAIT, "only the two newest to remain", || async {
        let (_, _, list) = get(&capped.url("/v1/transactions")).await;
        let ids: Vec<String> = list["transactions"]
            .as_array()?
            .iter()
            .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        (ids == ["c2", "c3"]).then_some(())
    })
    .await;
}
