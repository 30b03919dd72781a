//! Namespaces, check status, maintenance and reaping in the state machine.

use concord_api::registry::{CheckSpec, HealthStatus, InstanceSpec};
use concord_api::watch::ServiceEventKind;

use crate::testutil::{apply_ok, apply_refused, events_since, machine, register, spec};
use crate::{Command, EventKind, InstanceRef, Outcome, StateError, StateMachine};

fn at(ns: &str, id: &str) -> InstanceRef {
    InstanceRef::new(ns, "web", id)
}

fn check(id: &str) -> CheckSpec {
    serde_json::from_value(serde_json::json!({"id": id, "type": "tcp", "address": "h:80"}))
        .expect("check")
}

fn checked_spec(ids: &[&str]) -> InstanceSpec {
    let mut s = spec("h", None);
    s.checks = ids.iter().map(|i| check(i)).collect();
    s
}

fn register_at(sm: &mut StateMachine, at: &InstanceRef, spec: InstanceSpec) -> Outcome {
    apply_ok(
        sm,
        Command::Register {
            at: at.clone(),
            spec,
        },
    )
}

fn set(sm: &mut StateMachine, id: &str, check: &str, status: HealthStatus) -> Outcome {
    apply_ok(
        sm,
        Command::CheckStatus {
            at: at("default", id),
            check: check.to_owned(),
            status,
            output: format!("{status:?}"),
            expected: None,
        },
    )
}

fn status(sm: &StateMachine, id: &str) -> HealthStatus {
    sm.instance("default", "web", id)
        .expect("instance")
        .instance
        .status
}

#[test]
fn namespaces_isolate_services() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), spec("a", None));
    register_at(&mut sm, &at("prod", "1"), spec("b", None));
    register_at(
        &mut sm,
        &InstanceRef::new("prod", "db", "1"),
        spec("c", None),
    );
    assert_eq!(sm.namespaces(), ["default", "prod"]);
    assert_eq!(sm.services("default").count(), 1);
    assert_eq!(sm.services("prod").count(), 2);
    assert_eq!(
        sm.instance("prod", "web", "1")
            .expect("prod")
            .instance
            .address,
        "b"
    );
    assert_eq!(
        sm.instance("default", "web", "1")
            .expect("default")
            .instance
            .address,
        "a"
    );
    assert!(sm.instance("default", "db", "1").is_none());
    // Removing one namespace's instance leaves the other alone.
    apply_ok(
        &mut sm,
        Command::Deregister {
            at: at("prod", "1"),
        },
    );
    assert!(sm.instance("default", "web", "1").is_some());
    assert!(sm.has_namespace("prod"));
    assert!(!sm.has_namespace("staging"));
    let events = events_since(&sm, 0);
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Service { namespace, kind: ServiceEventKind::Deregister, .. } if namespace == "prod")));
}

#[test]
fn instances_start_critical_per_check_and_passing_without_checks() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), spec("h", None));
    assert_eq!(status(&sm, "1"), HealthStatus::Passing);
    register_at(&mut sm, &at("default", "2"), checked_spec(&["a", "b"]));
    let rec = sm.instance("default", "web", "2").expect("2");
    assert_eq!(rec.instance.status, HealthStatus::Critical);
    assert_eq!(rec.instance.checks.len(), 2);
    assert_eq!(rec.unchecked.len(), 2);
    assert_eq!(rec.health.healthy_threshold, 2);
    assert_eq!(rec.health.unhealthy_threshold, 3);
}

#[test]
fn status_is_the_worst_check_and_changes_emit_updates() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a", "b"]));
    set(&mut sm, "1", "a", HealthStatus::Passing);
    assert_eq!(status(&sm, "1"), HealthStatus::Critical, "b is unchecked");
    let before = sm.revision();
    set(&mut sm, "1", "b", HealthStatus::Warning);
    assert_eq!(status(&sm, "1"), HealthStatus::Warning);
    let events = events_since(&sm, before);
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0].kind,
        EventKind::Service { kind: ServiceEventKind::Update, instance, .. } if instance.status == HealthStatus::Warning));
    set(&mut sm, "1", "b", HealthStatus::Passing);
    assert_eq!(status(&sm, "1"), HealthStatus::Passing);
    let rec = sm.instance("default", "web", "1").expect("1");
    assert!(rec.unchecked.is_empty());
    assert_eq!(rec.instance.checks[1].last_change_revision, sm.revision());
}

#[test]
fn same_status_changes_nothing_once_checked() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    // The first result counts even when it matches the initial status.
    let first = set(&mut sm, "1", "a", HealthStatus::Critical);
    assert!(matches!(first, Outcome::CheckStatus { changed: false, .. }));
    assert!(
        sm.instance("default", "web", "1")
            .expect("1")
            .unchecked
            .is_empty()
    );
    let rev = sm.revision();
    let again = set(&mut sm, "1", "a", HealthStatus::Critical);
    assert_eq!(
        again,
        Outcome::CheckStatus {
            revision: rev,
            status: HealthStatus::Critical,
            changed: false
        }
    );
    assert_eq!(sm.revision(), rev, "no revision for a non-change");
}

#[test]
fn expected_guards_against_a_second_owner() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    set(&mut sm, "1", "a", HealthStatus::Passing);
    let rev = sm.revision();
    let out = apply_ok(
        &mut sm,
        Command::CheckStatus {
            at: at("default", "1"),
            check: "a".into(),
            status: HealthStatus::Passing,
            output: String::new(),
            expected: Some(HealthStatus::Critical),
        },
    );
    assert!(matches!(out, Outcome::CheckStatus { changed: false, .. }));
    let out = apply_ok(
        &mut sm,
        Command::CheckStatus {
            at: at("default", "1"),
            check: "a".into(),
            status: HealthStatus::Critical,
            output: String::new(),
            expected: Some(HealthStatus::Warning),
        },
    );
    assert!(matches!(out, Outcome::CheckStatus { changed: false, .. }));
    assert_eq!(sm.revision(), rev);
    assert_eq!(status(&sm, "1"), HealthStatus::Passing);
}

#[test]
fn unknown_checks_and_instances_are_refused() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    let cmd = |id: &str, check: &str, status| Command::CheckStatus {
        at: at("default", id),
        check: check.into(),
        status,
        output: String::new(),
        expected: None,
    };
    assert!(matches!(
        apply_refused(&mut sm, cmd("1", "zz", HealthStatus::Passing)),
        StateError::CheckNotFound { .. }
    ));
    assert!(matches!(
        apply_refused(&mut sm, cmd("9", "a", HealthStatus::Passing)),
        StateError::InstanceNotFound { .. }
    ));
    assert!(matches!(
        apply_refused(&mut sm, cmd("1", "a", HealthStatus::Maintenance)),
        StateError::Invalid(_)
    ));
}

#[test]
fn maintenance_hides_status_and_survives_reregistration() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    set(&mut sm, "1", "a", HealthStatus::Passing);
    let Outcome::Maintenance { instance, .. } = apply_ok(
        &mut sm,
        Command::Maintenance {
            at: at("default", "1"),
            reason: Some("deploy".into()),
        },
    ) else {
        panic!("maintenance");
    };
    assert_eq!(instance.status, HealthStatus::Maintenance);
    assert_eq!(instance.maintenance.as_ref().expect("on").reason, "deploy");
    // Re-registering with the same checks keeps both maintenance and check state.
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    let rec = sm.instance("default", "web", "1").expect("1");
    assert_eq!(rec.instance.status, HealthStatus::Maintenance);
    assert_eq!(rec.instance.checks[0].status, HealthStatus::Passing);
    let rev = sm.revision();
    apply_ok(
        &mut sm,
        Command::Maintenance {
            at: at("default", "1"),
            reason: Some("deploy".into()),
        },
    );
    assert_eq!(sm.revision(), rev, "same maintenance again is no change");
    apply_ok(
        &mut sm,
        Command::Maintenance {
            at: at("default", "1"),
            reason: None,
        },
    );
    assert_eq!(status(&sm, "1"), HealthStatus::Passing);
    // A changed declaration resets that check.
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a", "b"]));
    assert_eq!(status(&sm, "1"), HealthStatus::Critical, "b is new");
}

#[test]
fn reaping_needs_an_unbroken_critical_spell() {
    let mut sm = machine();
    register_at(&mut sm, &at("default", "1"), checked_spec(&["a"]));
    set(&mut sm, "1", "a", HealthStatus::Passing);
    set(&mut sm, "1", "a", HealthStatus::Critical);
    let since = sm
        .instance("default", "web", "1")
        .expect("1")
        .status_revision;
    // It recovered and failed again: a different spell, so the old decision is void.
    set(&mut sm, "1", "a", HealthStatus::Passing);
    set(&mut sm, "1", "a", HealthStatus::Critical);
    let rev = sm.revision();
    let out = apply_ok(
        &mut sm,
        Command::ReapCritical {
            at: at("default", "1"),
            since,
        },
    );
    assert_eq!(
        out,
        Outcome::Reaped {
            revision: rev,
            removed: false
        }
    );
    let since = sm
        .instance("default", "web", "1")
        .expect("1")
        .status_revision;
    let out = apply_ok(
        &mut sm,
        Command::ReapCritical {
            at: at("default", "1"),
            since,
        },
    );
    assert!(matches!(out, Outcome::Reaped { removed: true, .. }));
    assert!(sm.instance("default", "web", "1").is_none());
}

#[test]
fn ephemeral_instances_in_namespaces_go_with_their_lease() {
    let mut sm = machine();
    let Outcome::Registered { lease, .. } =
        register_at(&mut sm, &at("prod", "1"), spec("h", Some(5)))
    else {
        panic!("register");
    };
    apply_ok(&mut sm, register("web", "1", "h", None));
    apply_ok(
        &mut sm,
        Command::LeaseExpire {
            id: lease.expect("ephemeral"),
        },
    );
    assert!(sm.instance("prod", "web", "1").is_none());
    assert!(sm.instance("default", "web", "1").is_some());
}
