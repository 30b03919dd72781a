//! Shorthands shared by the unit and property tests.

use concord_api::registry::{DEFAULT_NAMESPACE, DEFAULT_WEIGHT, InstanceSpec};

use crate::{Command, Event, HistoryLimits, InstanceRef, Outcome, StateMachine};

/// A fresh machine with default history limits.
pub(crate) fn machine() -> StateMachine {
    StateMachine::new(HistoryLimits::default())
}

/// An instance spec at `address:80`, ephemeral when `ttl` is set.
pub(crate) fn spec(address: &str, ttl: Option<u32>) -> InstanceSpec {
    InstanceSpec {
        address: address.to_owned(),
        port: 80,
        tags: vec!["t".to_owned()],
        meta: [("k".to_owned(), "v".to_owned())].into(),
        weight: DEFAULT_WEIGHT,
        ttl_secs: ttl,
        ..InstanceSpec::default()
    }
}

/// `Register` of `service/id` at address `addr`.
pub(crate) fn register(service: &str, id: &str, addr: &str, ttl: Option<u32>) -> Command {
    Command::Register {
        at: InstanceRef::new(DEFAULT_NAMESPACE, service, id),
        spec: spec(addr, ttl),
    }
}

/// `Deregister` of `service/id`.
pub(crate) fn deregister(service: &str, id: &str) -> Command {
    Command::Deregister {
        at: InstanceRef::new(DEFAULT_NAMESPACE, service, id),
    }
}

/// A plain put.
pub(crate) fn put(key: &str, value: &str) -> Command {
    put_with(key, value, None, None)
}

/// A put with lease and CAS.
pub(crate) fn put_with(key: &str, value: &str, lease: Option<u64>, cas: Option<u64>) -> Command {
    Command::Put {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        lease,
        cas,
    }
}

/// A delete.
pub(crate) fn delete(key: &str, prefix: bool, cas: Option<u64>) -> Command {
    Command::Delete {
        key: key.to_owned(),
        prefix,
        cas,
    }
}

/// Grants a lease and returns its id.
pub(crate) fn grant(sm: &mut StateMachine, ttl_secs: u32) -> u64 {
    match sm.apply(Command::LeaseGrant { ttl_secs }) {
        Outcome::LeaseGranted { id, .. } => id,
        other => panic!("grant answered {other:?}"),
    }
}

/// Applies a command that must not be refused, and checks the invariants after it.
pub(crate) fn apply_ok(sm: &mut StateMachine, cmd: Command) -> Outcome {
    let outcome = sm.apply(cmd);
    assert!(
        !matches!(outcome, Outcome::Refused(_)),
        "refused: {outcome:?}"
    );
    assert_eq!(sm.check_invariants(), Ok(()));
    outcome
}

/// Applies a command that must be refused; checks it changed nothing.
pub(crate) fn apply_refused(sm: &mut StateMachine, cmd: Command) -> crate::StateError {
    let before = sm.clone();
    let events_before = events_since(sm, 0);
    match sm.apply(cmd) {
        Outcome::Refused(e) => {
            assert_eq!(*sm, before);
            assert_eq!(events_since(sm, 0), events_before);
            e
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Retained events after `after`; panics if compacted.
pub(crate) fn events_since(sm: &StateMachine, after: u64) -> Vec<Event> {
    match sm.events_after(after) {
        Ok(events) => events.cloned().collect(),
        Err(c) => panic!("compacted at {c}"),
    }
}

/// The revision an outcome reports, if it is not a refusal.
pub(crate) fn outcome_revision(outcome: &Outcome) -> Option<u64> {
    match outcome {
        Outcome::Registered { revision, .. }
        | Outcome::Deregistered { revision }
        | Outcome::Put { revision }
        | Outcome::Deleted { revision, .. }
        | Outcome::Txn { revision, .. }
        | Outcome::LeaseGranted { revision, .. }
        | Outcome::LeaseRevoked { revision }
        | Outcome::Restored { revision }
        | Outcome::CheckStatus { revision, .. }
        | Outcome::Maintenance { revision, .. }
        | Outcome::Reaped { revision, .. }
        | Outcome::ConfigPublished { revision, .. }
        | Outcome::ConfigDeleted { revision }
        | Outcome::ConfigGray { revision }
        | Outcome::RouteChanged { revision }
        | Outcome::TxnCreated { revision, .. }
        | Outcome::TxnChanged { revision, .. }
        | Outcome::TxnForgotten { revision, .. } => Some(*revision),
        Outcome::Refused(_) => None,
    }
}

/// A call to `http://p/{path}`.
pub(crate) fn call(path: &str) -> crate::Call {
    crate::Call {
        url: format!("http://p/{path}"),
        method: "POST".to_owned(),
        body: None,
        headers: Vec::new(),
    }
}

/// A step named `name` with every call of its mode, 3 attempts, no backoff.
pub(crate) fn step(mode: concord_api::transactions::TxnMode, name: &str) -> crate::NewStep {
    use concord_api::transactions::TxnMode;
    crate::NewStep {
        name: name.to_owned(),
        forward: call(&format!("{name}/fwd")),
        finish: (mode != TxnMode::Saga).then(|| call(&format!("{name}/fin"))),
        backward: Some(call(&format!("{name}/back"))),
        timeout_ms: 1000,
        retry: crate::Retry {
            initial_backoff_ms: 0,
            max_backoff_ms: 0,
            max_attempts: 3,
        },
        deps: Vec::new(),
    }
}

/// A transaction of `mode` with the named steps.
pub(crate) fn new_txn(
    mode: concord_api::transactions::TxnMode,
    id: Option<&str>,
    steps: &[&str],
) -> crate::NewTxn {
    crate::NewTxn {
        id: id.map(str::to_owned),
        mode,
        concurrent: false,
        timeout_ms: 60_000,
        branch_timeout_ms: 1000,
        branch_retry: crate::Retry {
            initial_backoff_ms: 0,
            max_backoff_ms: 0,
            max_attempts: 3,
        },
        steps: steps.iter().map(|n| step(mode, n)).collect(),
        digest: format!("{mode:?}{steps:?}"),
    }
}
