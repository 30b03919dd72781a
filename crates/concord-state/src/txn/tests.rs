use concord_api::txn::{CompareOp, CompareTarget};

use crate::testutil::{apply_ok, apply_refused, events_since, grant, machine, put};
use crate::{
    Command, Compare, CompareValue, Outcome, StateError, StateMachine, TxnOp, TxnOpOutcome,
};

const OPS: [CompareOp; 4] = [CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Gt];

fn cmp(key: &str, target: CompareTarget, op: CompareOp, value: CompareValue) -> Compare {
    Compare {
        key: key.to_owned(),
        target,
        op,
        value,
    }
}

fn tput(key: &str, value: &str, lease: Option<u64>) -> TxnOp {
    TxnOp::Put {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        lease,
    }
}

fn tget(key: &str) -> TxnOp {
    TxnOp::Get {
        key: key.to_owned(),
    }
}

fn tdel(key: &str, prefix: bool) -> TxnOp {
    TxnOp::Delete {
        key: key.to_owned(),
        prefix,
    }
}

fn txn(compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Command {
    Command::Txn {
        compare,
        success,
        failure,
    }
}

/// `k` written at revisions 2 and 3 ("other" at 1): version 2, create 2, mod 3, value "m".
fn fixture() -> StateMachine {
    let mut sm = machine();
    apply_ok(&mut sm, put("other", "x"));
    apply_ok(&mut sm, put("k", "a"));
    apply_ok(&mut sm, put("k", "m"));
    sm
}

/// For each op in `OPS` order, whether `key <target> <op> value` holds.
fn truth(sm: &StateMachine, key: &str, target: CompareTarget, value: CompareValue) -> [bool; 4] {
    OPS.map(|op| sm.compare_holds(&cmp(key, target, op, value.clone())))
}

#[test]
fn number_targets_compare_numerically() {
    let sm = fixture();
    let n = CompareValue::Number;
    // [==, !=, <, >]
    for (target, actual) in [
        (CompareTarget::Version, 2),
        (CompareTarget::CreateRevision, 2),
        (CompareTarget::ModRevision, 3),
    ] {
        assert_eq!(
            truth(&sm, "k", target, n(actual)),
            [true, false, false, false]
        );
        assert_eq!(
            truth(&sm, "k", target, n(actual + 1)),
            [false, true, true, false]
        );
        assert_eq!(
            truth(&sm, "k", target, n(actual - 1)),
            [false, true, false, true]
        );
    }
}

#[test]
fn missing_keys_have_zero_revisions() {
    let sm = fixture();
    for target in [
        CompareTarget::Version,
        CompareTarget::CreateRevision,
        CompareTarget::ModRevision,
    ] {
        let n = CompareValue::Number;
        assert_eq!(
            truth(&sm, "nope", target, n(0)),
            [true, false, false, false]
        );
        assert_eq!(truth(&sm, "nope", target, n(1)), [false, true, true, false]);
    }
}

#[test]
fn value_target_compares_bytes_lexicographically() {
    let sm = fixture();
    let b = |s: &str| CompareValue::Bytes(s.as_bytes().to_vec());
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, b("m")),
        [true, false, false, false]
    );
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, b("n")),
        [false, true, true, false]
    );
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, b("l")),
        [false, true, false, true]
    );
    // A proper prefix sorts first; longer is greater.
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, b("ma")),
        [false, true, true, false]
    );
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, b("")),
        [false, true, false, true]
    );
    // Missing key: only != holds, whatever the value.
    for v in ["", "m", "zzz"] {
        assert_eq!(
            truth(&sm, "nope", CompareTarget::Value, b(v)),
            [false, true, false, false]
        );
    }
}

#[test]
fn mismatched_value_kinds_never_hold() {
    let sm = fixture();
    assert_eq!(
        truth(&sm, "k", CompareTarget::Value, CompareValue::Number(0)),
        [false; 4]
    );
    assert_eq!(
        truth(&sm, "nope", CompareTarget::Value, CompareValue::Number(0)),
        [false; 4]
    );
    for target in [
        CompareTarget::Version,
        CompareTarget::CreateRevision,
        CompareTarget::ModRevision,
    ] {
        assert_eq!(
            truth(&sm, "k", target, CompareValue::Bytes(b"2".to_vec())),
            [false; 4]
        );
    }
}

#[test]
fn all_compares_must_hold_for_success() {
    let mut sm = fixture();
    let holds = cmp(
        "k",
        CompareTarget::Version,
        CompareOp::Eq,
        CompareValue::Number(2),
    );
    let fails = cmp(
        "k",
        CompareTarget::Version,
        CompareOp::Gt,
        CompareValue::Number(2),
    );
    let run = |sm: &mut StateMachine, compare| match apply_ok(
        sm,
        txn(compare, vec![tget("k")], vec![tget("other")]),
    ) {
        Outcome::Txn {
            succeeded, results, ..
        } => (succeeded, results.len()),
        other => panic!("{other:?}"),
    };
    assert_eq!(run(&mut sm, vec![]), (true, 1));
    assert_eq!(run(&mut sm, vec![holds.clone()]), (true, 1));
    assert_eq!(run(&mut sm, vec![holds, fails]), (false, 1));
}

#[test]
fn branch_ops_run_in_order_under_one_revision() {
    let mut sm = fixture();
    let outcome = apply_ok(
        &mut sm,
        txn(
            vec![cmp(
                "k",
                CompareTarget::Value,
                CompareOp::Eq,
                CompareValue::Bytes(b"nope".to_vec()),
            )],
            vec![tput("never", "x", None)],
            vec![
                tget("new"),
                tput("new", "1", None),
                tput("new", "2", None),
                tget("new"),
                tdel("k", false),
                tget("k"),
                tdel("missing", false),
            ],
        ),
    );
    let Outcome::Txn {
        revision,
        succeeded,
        results,
    } = outcome
    else {
        panic!("not a txn")
    };
    assert_eq!((revision, succeeded), (4, false));
    let seen = sm.kv_get("new").cloned().expect("new");
    assert_eq!(
        (seen.create_revision, seen.mod_revision, seen.version),
        (4, 4, 2)
    );
    assert_eq!(
        results,
        vec![
            TxnOpOutcome::Get {
                key: "new".to_owned(),
                entry: None
            },
            TxnOpOutcome::Put {
                key: "new".to_owned()
            },
            TxnOpOutcome::Put {
                key: "new".to_owned()
            },
            TxnOpOutcome::Get {
                key: "new".to_owned(),
                entry: Some(seen)
            },
            TxnOpOutcome::Delete {
                key: "k".to_owned(),
                deleted: 1
            },
            TxnOpOutcome::Get {
                key: "k".to_owned(),
                entry: None
            },
            TxnOpOutcome::Delete {
                key: "missing".to_owned(),
                deleted: 0
            },
        ]
    );
    assert!(sm.kv_get("never").is_none());
    let events = events_since(&sm, 3);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.revision == 4));
}

#[test]
fn read_only_or_empty_branches_keep_the_revision() {
    let mut sm = fixture();
    for cmd in [
        txn(vec![], vec![], vec![]),
        txn(vec![], vec![tget("k"), tget("nope")], vec![]),
        txn(vec![], vec![tdel("nope", false), tdel("zz", true)], vec![]),
    ] {
        let Outcome::Txn { revision, .. } = apply_ok(&mut sm, cmd) else {
            panic!("not a txn")
        };
        assert_eq!(revision, 3);
    }
    assert_eq!(sm.revision(), 3);
    assert!(events_since(&sm, 3).is_empty());
}

#[test]
fn a_missing_lease_refuses_the_whole_branch() {
    let mut sm = fixture();
    let l = grant(&mut sm, 10);
    let err = apply_refused(
        &mut sm,
        txn(
            vec![],
            vec![
                tput("a", "1", Some(l)),
                tdel("k", false),
                tput("b", "1", Some(l + 1)),
            ],
            vec![],
        ),
    );
    assert_eq!(err, StateError::LeaseNotFound(l + 1));
    assert!(sm.kv_get("a").is_none());
    assert!(sm.kv_get("k").is_some());
    // The lease is only checked in the branch that runs.
    let Outcome::Txn { succeeded, .. } = apply_ok(
        &mut sm,
        txn(
            vec![cmp(
                "k",
                CompareTarget::Version,
                CompareOp::Eq,
                CompareValue::Number(0),
            )],
            vec![tput("b", "1", Some(l + 1))],
            vec![tput("a", "1", Some(l))],
        ),
    ) else {
        panic!("not a txn")
    };
    assert!(!succeeded);
    assert!(sm.lease(l).expect("lease").keys.contains("a"));
}

#[test]
fn txn_prefix_delete_counts_keys() {
    let mut sm = fixture();
    apply_ok(&mut sm, put("p/1", "x"));
    apply_ok(&mut sm, put("p/2", "x"));
    let Outcome::Txn {
        revision, results, ..
    } = apply_ok(&mut sm, txn(vec![], vec![tdel("p/", true)], vec![]))
    else {
        panic!("not a txn")
    };
    assert_eq!(revision, 6);
    assert_eq!(
        results,
        [TxnOpOutcome::Delete {
            key: "p/".to_owned(),
            deleted: 2
        }]
    );
    assert_eq!(sm.kv_range("p/", None).len(), 0);
}
