use concord_api::watch::ServiceEventKind;

use crate::InstanceRef;
use crate::testutil::{
    apply_ok, apply_refused, deregister, events_since, machine, put, put_with, register,
};
use crate::{EventKind, Outcome, StateError, StateMachine};

/// The service event kinds (and instance addresses) emitted after `after`.
fn service_events(sm: &StateMachine, after: u64) -> Vec<(u64, ServiceEventKind, String)> {
    events_since(sm, after)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Service { kind, instance, .. } => Some((e.revision, kind, instance.address)),
            EventKind::Kv { .. } | EventKind::Config { .. } | EventKind::Route { .. } => None,
        })
        .collect()
}

/// The private lease a registration answered with.
fn registered_lease(outcome: Outcome) -> Option<u64> {
    match outcome {
        Outcome::Registered { lease, .. } => lease,
        other => panic!("not a registration: {other:?}"),
    }
}

#[test]
fn register_builds_the_instance_from_the_spec() {
    let mut sm = machine();
    let Outcome::Registered {
        revision,
        instance,
        lease,
    } = apply_ok(&mut sm, register("web", "1", "10.0.0.1", None))
    else {
        panic!("not registered")
    };
    assert_eq!((revision, lease), (1, None));
    assert_eq!(instance.id, "1");
    assert_eq!(instance.address, "10.0.0.1");
    assert_eq!((instance.port, instance.weight), (80, 100));
    assert_eq!(instance.tags, ["t"]);
    assert_eq!(instance.meta.get("k").map(String::as_str), Some("v"));
    assert_eq!(instance.ttl_secs, None);
    let record = sm.instance("default", "web", "1").expect("record");
    assert_eq!((&record.instance, record.lease), (&instance, None));
    assert_eq!(sm.service_mod_revision("default", "web"), 1);
    assert_eq!(
        service_events(&sm, 0),
        [(1, ServiceEventKind::Register, "10.0.0.1".to_owned())]
    );
}

#[test]
fn reregistering_replaces_and_emits_update() {
    let mut sm = machine();
    apply_ok(&mut sm, register("web", "1", "10.0.0.1", None));
    apply_ok(&mut sm, put("x", "y"));
    apply_ok(&mut sm, register("web", "1", "10.0.0.9", None));
    assert_eq!(sm.instance_count(), 1);
    assert_eq!(
        sm.instance("default", "web", "1")
            .expect("record")
            .instance
            .address,
        "10.0.0.9"
    );
    assert_eq!(sm.service_mod_revision("default", "web"), 3);
    assert_eq!(
        service_events(&sm, 1),
        [(3, ServiceEventKind::Update, "10.0.0.9".to_owned())]
    );
}

#[test]
fn ttl_registration_gets_a_private_lease() {
    let mut sm = machine();
    let lease = registered_lease(apply_ok(&mut sm, register("web", "1", "h", Some(9))));
    assert_eq!(lease, Some(1));
    let l = sm.lease(1).expect("lease");
    assert_eq!(l.ttl_secs, 9);
    assert!(l.keys.is_empty());
    assert_eq!(
        l.instances.iter().cloned().collect::<Vec<_>>(),
        [InstanceRef::new("default", "web", "1")]
    );
    assert_eq!(
        sm.instance("default", "web", "1").expect("record").lease,
        Some(1)
    );
    assert_eq!(
        sm.instance("default", "web", "1")
            .expect("record")
            .instance
            .ttl_secs,
        Some(9)
    );
    // One command, one revision, even though it also granted a lease.
    assert_eq!(sm.revision(), 1);
}

#[test]
fn reregistering_with_ttl_swaps_the_private_lease() {
    let mut sm = machine();
    let first = registered_lease(apply_ok(&mut sm, register("web", "1", "h", Some(9))));
    let second = registered_lease(apply_ok(&mut sm, register("web", "1", "h", Some(4))));
    assert_eq!((first, second), (Some(1), Some(2)));
    assert!(sm.lease(1).is_none());
    assert_eq!(sm.lease(2).expect("lease").ttl_secs, 4);
    assert_eq!(sm.instance_count(), 1);
    assert_eq!(
        service_events(&sm, 1),
        [(2, ServiceEventKind::Update, "h".to_owned())]
    );
}

#[test]
fn reregistering_without_ttl_drops_the_old_lease() {
    let mut sm = machine();
    apply_ok(&mut sm, register("web", "1", "h", Some(9)));
    let lease = registered_lease(apply_ok(&mut sm, register("web", "1", "h", None)));
    assert_eq!(lease, None);
    assert_eq!(sm.leases().count(), 0);
    assert_eq!(
        sm.instance("default", "web", "1").expect("record").lease,
        None
    );
}

#[test]
fn deregistering_a_missing_instance_is_refused() {
    let mut sm = machine();
    apply_ok(&mut sm, register("web", "1", "h", None));
    for (service, id) in [("web", "2"), ("db", "1")] {
        assert_eq!(
            apply_refused(&mut sm, deregister(service, id)),
            StateError::InstanceNotFound {
                namespace: "default".to_owned(),
                service: service.to_owned(),
                id: id.to_owned()
            }
        );
    }
}

#[test]
fn deregister_removes_the_instance_and_its_private_lease() {
    let mut sm = machine();
    apply_ok(&mut sm, register("web", "1", "10.0.0.1", Some(5)));
    apply_ok(&mut sm, register("web", "2", "10.0.0.2", None));
    assert_eq!(
        apply_ok(&mut sm, deregister("web", "1")),
        Outcome::Deregistered { revision: 3 }
    );
    assert!(sm.instance("default", "web", "1").is_none());
    assert!(sm.lease(1).is_none());
    assert_eq!(sm.service_mod_revision("default", "web"), 3);
    assert_eq!(
        service_events(&sm, 2),
        [(3, ServiceEventKind::Deregister, "10.0.0.1".to_owned())]
    );
}

#[test]
fn keys_on_a_private_lease_go_with_the_lease() {
    let mut sm = machine();
    let lease = registered_lease(apply_ok(&mut sm, register("web", "1", "h", Some(5))));
    apply_ok(&mut sm, put_with("web/1/meta", "x", lease, None));
    apply_ok(&mut sm, register("web", "1", "h", Some(5)));
    assert!(sm.kv_get("web/1/meta").is_none());
    let kinds: Vec<_> = events_since(&sm, 2)
        .into_iter()
        .map(|e| match e.kind {
            EventKind::Kv { kind, .. } => format!("{} kv {kind:?}", e.revision),
            EventKind::Service { kind, .. } => format!("{} svc {kind:?}", e.revision),
            EventKind::Config { kind, .. } => format!("{} config {kind:?}", e.revision),
            EventKind::Route { kind, .. } => format!("{} route {kind:?}", e.revision),
        })
        .collect();
    assert_eq!(kinds, ["3 kv Delete", "3 svc Update"]);
}

#[test]
fn emptied_service_is_hidden_but_keeps_its_mod_revision() {
    let mut sm = machine();
    apply_ok(&mut sm, register("web", "1", "h", None));
    apply_ok(&mut sm, register("db", "1", "h", None));
    apply_ok(&mut sm, register("db", "2", "h", None));
    assert_eq!(sm.instance_count(), 3);
    assert_eq!(
        sm.services("default")
            .map(|(n, s)| (n, s.instances.len()))
            .collect::<Vec<_>>(),
        [("db", 2), ("web", 1)]
    );
    apply_ok(&mut sm, deregister("web", "1"));
    assert!(sm.service("default", "web").is_none());
    assert_eq!(sm.service_mod_revision("default", "web"), 4);
    assert_eq!(
        sm.services("default").map(|(n, _)| n).collect::<Vec<_>>(),
        ["db"]
    );
    assert_eq!(sm.service("default", "db").expect("db").mod_revision, 3);
    assert_eq!(sm.service_mod_revision("default", "never"), 0);
    assert_eq!(sm.instance_count(), 2);
    // Coming back continues from the kept entry.
    apply_ok(&mut sm, register("web", "1", "h", None));
    assert_eq!(sm.service("default", "web").expect("web").mod_revision, 5);
}
