//! Property tests over random command sequences from a small alphabet, so keys,
//! instances and leases collide often.

use concord_api::config::{ConfigFormat, GraySelector};
use concord_api::registry::HealthStatus;
use concord_api::txn::{CompareOp, CompareTarget};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use concord_api::transactions::TxnMode;

use crate::testutil::{new_txn, outcome_revision, spec, step as txn_step};
use crate::{CallKind, CallResult, Phase, TxnDecision, TxnEvent};
use crate::{Command, Compare, CompareValue, Event, HistoryLimits, Outcome, StateMachine, TxnOp};
use crate::{ConfigKey, InstanceRef, PublishMeta};

const KEYS: &[&str] = &["a", "a/x", "a/y", "b"];
const PREFIXES: &[&str] = &["", "a", "a/", "c"];
const SERVICES: &[&str] = &["web", "db"];
const IDS: &[&str] = &["1", "2"];
const NAMESPACES: &[&str] = &["default", "prod"];

fn key() -> impl Strategy<Value = String> {
    select(KEYS).prop_map(str::to_owned)
}

/// A key for deletes: prefix deletes use prefixes, single deletes plain keys.
fn delete_target() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        key().prop_map(|k| (k, false)),
        select(PREFIXES).prop_map(|p| (p.to_owned(), true)),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    vec(0u8..3, 0..3)
}

/// Lease ids around what the machine hands out, including ones that never exist.
fn lease() -> impl Strategy<Value = Option<u64>> {
    proptest::option::weighted(0.4, 0u64..6)
}

fn cas() -> impl Strategy<Value = Option<u64>> {
    proptest::option::weighted(0.3, 0u64..12)
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = select(
        &[
            CompareTarget::Value,
            CompareTarget::Version,
            CompareTarget::CreateRevision,
            CompareTarget::ModRevision,
        ][..],
    );
    let op = select(&[CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Gt][..]);
    let value = prop_oneof![
        (0u64..6).prop_map(CompareValue::Number),
        value().prop_map(CompareValue::Bytes),
    ];
    (key(), target, op, value).prop_map(|(key, target, op, value)| Compare {
        key,
        target,
        op,
        value,
    })
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (key(), value(), lease()).prop_map(|(key, value, lease)| TxnOp::Put { key, value, lease }),
        key().prop_map(|key| TxnOp::Get { key }),
        delete_target().prop_map(|(key, prefix)| TxnOp::Delete { key, prefix }),
    ]
}

fn config_key() -> impl Strategy<Value = ConfigKey> {
    (select(NAMESPACES), select(&["g1", "g2"][..])).prop_map(|(ns, g)| ConfigKey::new(ns, g, "c"))
}

fn instance_ref() -> impl Strategy<Value = InstanceRef> {
    (select(NAMESPACES), select(SERVICES), select(IDS))
        .prop_map(|(ns, s, i)| InstanceRef::new(ns, s, i))
}

fn health_status() -> impl Strategy<Value = HealthStatus> {
    select(
        &[
            HealthStatus::Passing,
            HealthStatus::Warning,
            HealthStatus::Critical,
        ][..],
    )
}

/// A registration, sometimes with checks "a" and/or "b".
fn registration() -> impl Strategy<Value = Command> {
    (
        instance_ref(),
        select(&["h1", "h2"][..]),
        proptest::option::of(1u32..4),
        0usize..3,
    )
        .prop_map(|(at, addr, ttl, checks)| {
            let mut spec = spec(addr, ttl);
            spec.checks = ["a", "b"][..checks]
                .iter()
                .map(|id| {
                    serde_json::from_value(
                        serde_json::json!({"id": id, "type": "ttl", "ttl_secs": 5}),
                    )
                    .expect("check")
                })
                .collect();
            Command::Register { at, spec }
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => registration(),
        1 => instance_ref().prop_map(|at| Command::Deregister { at }),
        2 => (
            instance_ref(),
            select(&["a", "b", "c"][..]),
            health_status(),
            proptest::option::of(health_status()),
        )
            .prop_map(|(at, check, status, expected)| Command::CheckStatus {
                at,
                check: check.to_owned(),
                status,
                output: "o".to_owned(),
                expected,
            }),
        1 => (instance_ref(), proptest::option::of(select(&["x", "y"][..])))
            .prop_map(|(at, reason)| Command::Maintenance { at, reason: reason.map(str::to_owned) }),
        1 => (instance_ref(), 0u64..30).prop_map(|(at, since)| Command::ReapCritical { at, since }),
        2 => (config_key(), select(&["a", "b"][..]), proptest::option::of(0u64..4), 1u32..4)
            .prop_map(|(key, content, cas, keep)| Command::ConfigPublish {
                key,
                format: ConfigFormat::Text,
                content: content.to_owned(),
                sha256: format!("sha-{content}"),
                cas,
                meta: PublishMeta { comment: String::new(), at_ms: 1, keep },
            }),
        1 => config_key().prop_map(|key| Command::ConfigDelete { key, at_ms: 1 }),
        1 => (config_key(), 0u64..5, 1u32..4).prop_map(|(key, version, keep)| Command::ConfigRollback {
            key,
            version,
            meta: PublishMeta { comment: String::new(), at_ms: 1, keep },
        }),
        1 => config_key().prop_map(|key| Command::ConfigGray {
            key,
            content: "g".to_owned(),
            sha256: "sha-g".to_owned(),
            selector: GraySelector { tags: vec!["t".to_owned()], ..GraySelector::default() },
            at_ms: 1,
        }),
        1 => (config_key(), 1u32..4).prop_map(|(key, keep)| Command::ConfigGrayPromote {
            key,
            meta: PublishMeta { comment: String::new(), at_ms: 1, keep },
        }),
        1 => config_key().prop_map(|key| Command::ConfigGrayCancel { key, at_ms: 1 }),
        1 => (select(&["r1", "r2"][..]), select(&["{}", "{\"a\":1}"][..]))
            .prop_map(|(name, json)| Command::RoutePut { name: name.to_owned(), json: json.to_owned() }),
        1 => select(&["r1", "r2"][..]).prop_map(|name| Command::RouteDelete { name: name.to_owned() }),
        4 => (key(), value(), lease(), cas())
            .prop_map(|(key, value, lease, cas)| Command::Put { key, value, lease, cas }),
        2 => (delete_target(), cas())
            .prop_map(|((key, prefix), cas)| Command::Delete { key, prefix, cas }),
        2 => (vec(compare(), 0..3), vec(txn_op(), 0..4), vec(txn_op(), 0..4))
            .prop_map(|(compare, success, failure)| Command::Txn { compare, success, failure }),
        2 => (1u32..100).prop_map(|ttl_secs| Command::LeaseGrant { ttl_secs }),
        1 => (0u64..6).prop_map(|id| Command::LeaseRevoke { id }),
        1 => (0u64..6).prop_map(|id| Command::LeaseExpire { id }),
        2 => txn_command(),
    ]
}

const TXN_IDS: &[&str] = &["t1", "t2"];

fn txn_mode() -> impl Strategy<Value = TxnMode> {
    select(&[TxnMode::Saga, TxnMode::Tcc, TxnMode::TwoPc][..])
}

fn phase() -> impl Strategy<Value = Phase> {
    select(&[Phase::Forward, Phase::Finish, Phase::Backward][..])
}

fn txn_event() -> impl Strategy<Value = TxnEvent> {
    let kind = select(
        &[
            CallKind::Success,
            CallKind::Refused,
            CallKind::Pending,
            CallKind::Failed,
        ][..],
    );
    prop_oneof![
        4 => (0u32..3, phase(), 0u32..4, kind).prop_map(|(step, phase, attempt, kind)| TxnEvent::Result {
            step,
            phase,
            attempt,
            result: CallResult { kind, http_status: Some(200), latency_ms: 1, error: None, retry_in_ms: 5 },
        }),
        2 => (0u32..3, phase(), 0u32..5).prop_map(|(step, phase, attempt)| TxnEvent::Restart { step, phase, attempt }),
        1 => Just(TxnEvent::Deadline),
    ]
}

fn txn_command() -> impl Strategy<Value = Command> {
    let id = select(TXN_IDS).prop_map(str::to_owned);
    prop_oneof![
        2 => (txn_mode(), proptest::option::of(select(TXN_IDS)), 1usize..4).prop_map(|(mode, id, n)| {
            Command::TxnCreate { txn: new_txn(mode, id, &["a", "b", "c"][..n]), at_ms: 1, }
        }),
        6 => (id.clone(), 1u64..3, 0u64..90_000, vec(txn_event(), 1..4)).prop_map(|(id, term, elapsed_ms, events)| {
            Command::TxnAdvance { id, term, at_ms: 2, elapsed_ms, events }
        }),
        1 => (id.clone(), select(&["x", "y", "a"][..])).prop_map(|(id, name)| Command::TxnBranch {
            id,
            step: txn_step(TxnMode::Tcc, name),
            at_ms: 3,
        }),
        2 => (id.clone(), select(vec![
            TxnDecision::Commit,
            TxnDecision::Abort { reason: "r".to_owned() },
            TxnDecision::Retry,
            TxnDecision::Resolve { reason: "r".to_owned() },
        ])).prop_map(|(id, decision)| Command::TxnDecide { id, decision, at_ms: 4 }),
        1 => vec(id, 0..3).prop_map(|ids| Command::TxnForget { ids }),
    ]
}

fn commands() -> impl Strategy<Value = Vec<Command>> {
    vec(command(), 0..40)
}

fn all_events(sm: &StateMachine) -> Vec<Event> {
    sm.events_after(sm.compacted_revision())
        .map(|events| events.cloned().collect())
        .unwrap_or_default()
}

/// Applies every command, returning the outcomes.
fn run(sm: &mut StateMachine, cmds: &[Command]) -> Vec<Outcome> {
    cmds.iter().map(|c| sm.apply(c.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Determinism: the same log gives the same state, outcomes and events, and
    /// history limits (local config) never change replicated state.
    #[test]
    fn replicas_applying_the_same_log_agree(cmds in commands()) {
        let mut a = StateMachine::new(HistoryLimits::default());
        let mut b = StateMachine::new(HistoryLimits::default());
        let mut tiny = StateMachine::new(HistoryLimits { max_events: 2, max_bytes: 200 });
        let outcomes = run(&mut a, &cmds);
        prop_assert_eq!(&outcomes, &run(&mut b, &cmds));
        prop_assert_eq!(&outcomes, &run(&mut tiny, &cmds));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &tiny);
        prop_assert_eq!(all_events(&a), all_events(&b));
        prop_assert_eq!(a.snapshot(), tiny.snapshot());
        prop_assert_eq!(a.check_invariants(), Ok(()));
    }

    /// A node restored from a snapshot taken at any point stays in lockstep.
    #[test]
    fn snapshot_restore_round_trips_and_stays_in_step(
        cmds in commands(),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(cmds.len() + 1);
        let (before, after) = cmds.split_at(cut);
        let mut sm = StateMachine::new(HistoryLimits::default());
        run(&mut sm, before);
        let mut restored = StateMachine::restore(&sm.snapshot(), HistoryLimits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&restored, &sm);
        prop_assert_eq!(restored.compacted_revision(), sm.revision());
        prop_assert_eq!(run(&mut restored, after), run(&mut sm, after));
        prop_assert_eq!(&restored, &sm);
        prop_assert_eq!(
            restored.events_after(restored.compacted_revision()).map(|e| e.cloned().collect::<Vec<_>>()),
            sm.events_after(restored.compacted_revision()).map(|e| e.cloned().collect::<Vec<_>>())
        );
    }

    /// Revisions never go back, move by exactly one when anything changes, and
    /// every event carries the revision its command produced.
    #[test]
    fn revisions_count_changes_and_stamp_events(cmds in commands()) {
        let mut sm = StateMachine::new(HistoryLimits::default());
        for cmd in cmds {
            let before = sm.clone();
            let prev = sm.revision();
            let lease_op = matches!(
                cmd,
                Command::LeaseGrant { .. } | Command::LeaseRevoke { .. } | Command::LeaseExpire { .. }
            );
            let txn_op = matches!(
                cmd,
                Command::TxnCreate { .. } | Command::TxnAdvance { .. } | Command::TxnBranch { .. }
                    | Command::TxnDecide { .. } | Command::TxnForget { .. }
            );
            let outcome = sm.apply(cmd);
            let rev = sm.revision();
            let new_events: Vec<Event> = sm
                .events_after(prev)
                .map_err(|c| TestCaseError::fail(format!("compacted at {c}")))?
                .cloned()
                .collect();
            prop_assert!(new_events.iter().all(|e| e.revision == rev));
            match outcome_revision(&outcome) {
                None => {
                    prop_assert_eq!(&sm, &before);
                    prop_assert_eq!(rev, prev);
                }
                Some(reported) => {
                    prop_assert_eq!(reported, rev);
                    // A bump exactly when events are emitted; lease grants and
                    // revokes, and transaction changes, also bump without one
                    // (nothing to tell watchers); a transaction command that
                    // changed nothing must leave the state as it was.
                    let bumps = !new_events.is_empty() || lease_op || (txn_op && rev != prev);
                    prop_assert_eq!(rev, prev + u64::from(bumps));
                    if !bumps {
                        prop_assert_eq!(&sm, &before);
                    }
                }
            }
            prop_assert_eq!(sm.check_invariants(), Ok(()));
        }
    }

    /// Arbitrary bytes never panic `restore`; whatever it accepts is consistent
    /// and safe to keep applying commands to.
    #[test]
    fn restore_never_panics_on_random_bytes(
        mut bytes in vec(any::<u8>(), 0..256),
        versioned in any::<bool>(),
        cmds in vec(command(), 0..8),
    ) {
        if versioned && !bytes.is_empty() {
            bytes[0] = 1;
        }
        if let Ok(mut sm) = StateMachine::restore(&bytes, HistoryLimits::default()) {
            prop_assert_eq!(sm.check_invariants(), Ok(()));
            run(&mut sm, &cmds);
        }
    }

    /// Damaged real snapshots (the likelier failure) never panic `restore` either.
    #[test]
    fn restore_never_panics_on_damaged_snapshots(
        cmds in vec(command(), 0..20),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut sm = StateMachine::new(HistoryLimits::default());
        run(&mut sm, &cmds);
        let mut bytes = sm.snapshot();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(mut restored) = StateMachine::restore(&bytes, HistoryLimits::default()) {
            prop_assert_eq!(restored.check_invariants(), Ok(()));
            run(&mut restored, &cmds);
        }
    }
}
