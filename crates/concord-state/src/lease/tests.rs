use concord_api::watch::KvEventKind;

use crate::testutil::{
    apply_ok, apply_refused, events_since, grant, machine, put, put_with, register,
};
use crate::{Command, EventKind, Outcome, StateError, StateMachine};

/// (revision, description) of every retained event after `after`.
fn event_summary(sm: &StateMachine, after: u64) -> Vec<(u64, String)> {
    events_since(sm, after)
        .into_iter()
        .map(|e| {
            let what = match e.kind {
                EventKind::Kv { kind, key, value } => {
                    assert!(kind == KvEventKind::Put || value.is_empty());
                    format!("kv {kind:?} {key}")
                }
                EventKind::Service {
                    kind,
                    service,
                    instance,
                    ..
                } => format!("svc {kind:?} {service}/{}", instance.id),
                EventKind::Config { kind, key, .. } => format!("config {kind:?} {key}"),
                EventKind::Route { kind, name, .. } => format!("route {kind:?} {name}"),
            };
            (e.revision, what)
        })
        .collect()
}

#[test]
fn grant_hands_out_sequential_ids_and_a_revision_without_events() {
    let mut sm = machine();
    assert_eq!(
        apply_ok(&mut sm, Command::LeaseGrant { ttl_secs: 5 }),
        Outcome::LeaseGranted {
            revision: 1,
            id: 1,
            ttl_secs: 5
        }
    );
    assert_eq!(grant(&mut sm, 7), 2);
    assert_eq!(sm.revision(), 2);
    assert!(events_since(&sm, 0).is_empty());
    let l = sm.lease(2).expect("lease");
    assert_eq!((l.id, l.ttl_secs), (2, 7));
    assert_eq!(sm.leases().map(|l| l.id).collect::<Vec<_>>(), [1, 2]);
}

/// A lease with two keys, plus an ephemeral instance on its own private lease;
/// returns (shared lease, instance lease).
fn populated() -> (StateMachine, u64, u64) {
    let mut sm = machine();
    let l = grant(&mut sm, 10);
    apply_ok(&mut sm, put_with("k1", "v", Some(l), None));
    apply_ok(&mut sm, put_with("k2", "v", Some(l), None));
    apply_ok(&mut sm, put("free", "v"));
    let Outcome::Registered {
        lease: Some(private),
        ..
    } = apply_ok(&mut sm, register("web", "1", "10.0.0.1", Some(5)))
    else {
        panic!("no private lease")
    };
    apply_ok(&mut sm, register("web", "2", "10.0.0.2", None));
    (sm, l, private)
}

#[test]
fn revoke_deletes_bound_keys_under_one_revision() {
    let (mut sm, l, _) = populated();
    let before = sm.revision();
    assert_eq!(
        apply_ok(&mut sm, Command::LeaseRevoke { id: l }),
        Outcome::LeaseRevoked {
            revision: before + 1
        }
    );
    assert!(sm.lease(l).is_none());
    assert!(sm.kv_get("k1").is_none() && sm.kv_get("k2").is_none());
    assert!(sm.kv_get("free").is_some());
    assert_eq!(
        event_summary(&sm, before),
        [
            (before + 1, "kv Delete k1".to_owned()),
            (before + 1, "kv Delete k2".to_owned()),
        ]
    );
}

#[test]
fn revoke_deregisters_bound_instances() {
    let (mut sm, _, private) = populated();
    let before = sm.revision();
    apply_ok(&mut sm, Command::LeaseRevoke { id: private });
    assert!(sm.instance("default", "web", "1").is_none());
    assert!(sm.instance("default", "web", "2").is_some());
    assert_eq!(sm.service_mod_revision("default", "web"), before + 1);
    assert_eq!(
        event_summary(&sm, before),
        [(before + 1, "svc Deregister web/1".to_owned())]
    );
}

#[test]
fn expire_removes_instances_as_expired() {
    let (mut sm, _, private) = populated();
    let before = sm.revision();
    assert_eq!(
        apply_ok(&mut sm, Command::LeaseExpire { id: private }),
        Outcome::LeaseRevoked {
            revision: before + 1
        }
    );
    assert!(sm.lease(private).is_none());
    assert_eq!(
        event_summary(&sm, before),
        [(before + 1, "svc Expire web/1".to_owned())]
    );
    let EventKind::Service { instance, .. } = &events_since(&sm, before)[0].kind else {
        panic!("not a service event")
    };
    assert_eq!(instance.address, "10.0.0.1");
}

#[test]
fn revoking_a_missing_lease_is_refused() {
    let (mut sm, l, _) = populated();
    assert_eq!(
        apply_refused(&mut sm, Command::LeaseRevoke { id: 99 }),
        StateError::LeaseNotFound(99)
    );
    assert_eq!(
        apply_refused(&mut sm, Command::LeaseExpire { id: 99 }),
        StateError::LeaseNotFound(99)
    );
    apply_ok(&mut sm, Command::LeaseRevoke { id: l });
    assert_eq!(
        apply_refused(&mut sm, Command::LeaseExpire { id: l }),
        StateError::LeaseNotFound(l)
    );
}

#[test]
fn revoking_an_empty_lease_still_takes_a_revision() {
    let mut sm = machine();
    let l = grant(&mut sm, 1);
    assert_eq!(
        apply_ok(&mut sm, Command::LeaseRevoke { id: l }),
        Outcome::LeaseRevoked { revision: 2 }
    );
    assert_eq!(sm.leases().count(), 0);
    // Ids are never reused.
    assert_eq!(grant(&mut sm, 1), 2);
}

#[test]
fn expiring_a_lease_with_keys_and_instances_uses_one_revision() {
    let mut sm = machine();
    let Outcome::Registered {
        lease: Some(private),
        ..
    } = apply_ok(&mut sm, register("db", "a", "h", Some(3)))
    else {
        panic!("no private lease")
    };
    // A key may ride on an instance's private lease; it goes with the instance.
    apply_ok(&mut sm, put_with("db/a/health", "ok", Some(private), None));
    apply_ok(&mut sm, Command::LeaseExpire { id: private });
    assert_eq!(
        event_summary(&sm, 2),
        [
            (3, "kv Delete db/a/health".to_owned()),
            (3, "svc Expire db/a".to_owned()),
        ]
    );
    assert_eq!(sm.instance_count(), 0);
}
