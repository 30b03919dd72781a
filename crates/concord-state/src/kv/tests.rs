use concord_api::watch::KvEventKind;

use crate::testutil::{
    apply_ok, apply_refused, delete, events_since, grant, machine, put, put_with,
};
use crate::{Event, EventKind, Outcome, StateError};

fn kv_event(revision: u64, kind: KvEventKind, key: &str, value: &str) -> Event {
    Event {
        revision,
        kind: EventKind::Kv {
            kind,
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
        },
    }
}

#[test]
fn put_creates_key_with_fresh_bookkeeping() {
    let mut sm = machine();
    assert_eq!(
        apply_ok(&mut sm, put("a", "1")),
        Outcome::Put { revision: 1 }
    );
    let e = sm.kv_get("a").expect("key");
    assert_eq!(
        (
            e.value.as_slice(),
            e.create_revision,
            e.mod_revision,
            e.version,
            e.lease
        ),
        (b"1".as_slice(), 1, 1, 1, None)
    );
    assert_eq!(
        events_since(&sm, 0),
        vec![kv_event(1, KvEventKind::Put, "a", "1")]
    );
}

#[test]
fn overwrites_count_versions_and_keep_create_revision() {
    let mut sm = machine();
    apply_ok(&mut sm, put("other", "x"));
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, put("a", "2"));
    apply_ok(&mut sm, put("a", "2"));
    let e = sm.kv_get("a").expect("key");
    assert_eq!((e.create_revision, e.mod_revision, e.version), (2, 4, 3));
    assert_eq!(e.value, b"2");
    assert_eq!(sm.revision(), 4);
}

#[test]
fn version_restarts_after_delete() {
    let mut sm = machine();
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, put("a", "2"));
    apply_ok(&mut sm, delete("a", false, None));
    apply_ok(&mut sm, put("a", "3"));
    let e = sm.kv_get("a").expect("key");
    assert_eq!((e.create_revision, e.mod_revision, e.version), (4, 4, 1));
}

#[test]
fn put_cas_zero_requires_absent_key() {
    let mut sm = machine();
    apply_ok(&mut sm, put_with("a", "1", None, Some(0)));
    let err = apply_refused(&mut sm, put_with("a", "2", None, Some(0)));
    assert_eq!(err, StateError::CasFailed { current: 1 });
    assert_eq!(sm.kv_get("a").expect("key").value, b"1");
}

#[test]
fn put_cas_requires_matching_mod_revision() {
    let mut sm = machine();
    apply_ok(&mut sm, put("a", "1"));
    apply_ok(&mut sm, put("b", "1"));
    let err = apply_refused(&mut sm, put_with("a", "2", None, Some(2)));
    assert_eq!(err, StateError::CasFailed { current: 1 });
    assert_eq!(
        apply_ok(&mut sm, put_with("a", "2", None, Some(1))),
        Outcome::Put { revision: 3 }
    );
    assert_eq!(sm.kv_get("a").expect("key").mod_revision, 3);
}

#[test]
fn put_cas_on_absent_key_reports_zero() {
    let mut sm = machine();
    let err = apply_refused(&mut sm, put_with("a", "1", None, Some(5)));
    assert_eq!(err, StateError::CasFailed { current: 0 });
    assert_eq!(sm.revision(), 0);
}

#[test]
fn put_with_missing_lease_is_refused() {
    let mut sm = machine();
    let err = apply_refused(&mut sm, put_with("a", "1", Some(7), None));
    assert_eq!(err, StateError::LeaseNotFound(7));
    assert!(sm.kv_get("a").is_none());
}

#[test]
fn put_moves_the_lease_binding() {
    let mut sm = machine();
    let l1 = grant(&mut sm, 10);
    let l2 = grant(&mut sm, 10);
    apply_ok(&mut sm, put_with("a", "1", Some(l1), None));
    assert!(sm.lease(l1).expect("l1").keys.contains("a"));
    apply_ok(&mut sm, put_with("a", "2", Some(l2), None));
    assert!(sm.lease(l1).expect("l1").keys.is_empty());
    assert!(sm.lease(l2).expect("l2").keys.contains("a"));
    assert_eq!(sm.kv_get("a").expect("key").lease, Some(l2));
    apply_ok(&mut sm, put("a", "3"));
    assert!(sm.lease(l2).expect("l2").keys.is_empty());
    assert_eq!(sm.kv_get("a").expect("key").lease, None);
}

#[test]
fn delete_removes_key_unbinds_and_emits_empty_value() {
    let mut sm = machine();
    let l = grant(&mut sm, 10);
    apply_ok(&mut sm, put_with("a", "1", Some(l), None));
    assert_eq!(
        apply_ok(&mut sm, delete("a", false, None)),
        Outcome::Deleted {
            revision: 3,
            deleted: 1
        }
    );
    assert!(sm.kv_get("a").is_none());
    assert!(sm.lease(l).expect("lease survives").keys.is_empty());
    assert_eq!(
        events_since(&sm, 2),
        vec![kv_event(3, KvEventKind::Delete, "a", "")]
    );
}

#[test]
fn delete_of_absent_key_changes_nothing() {
    let mut sm = machine();
    apply_ok(&mut sm, put("a", "1"));
    assert_eq!(
        apply_ok(&mut sm, delete("b", false, None)),
        Outcome::Deleted {
            revision: 1,
            deleted: 0
        }
    );
    assert_eq!(sm.revision(), 1);
    assert!(events_since(&sm, 1).is_empty());
}

#[test]
fn delete_cas_follows_the_put_rule() {
    let mut sm = machine();
    assert_eq!(
        apply_ok(&mut sm, delete("a", false, Some(0))),
        Outcome::Deleted {
            revision: 0,
            deleted: 0
        }
    );
    apply_ok(&mut sm, put("a", "1"));
    let err = apply_refused(&mut sm, delete("a", false, Some(0)));
    assert_eq!(err, StateError::CasFailed { current: 1 });
    let err = apply_refused(&mut sm, delete("a", false, Some(9)));
    assert_eq!(err, StateError::CasFailed { current: 1 });
    assert_eq!(
        apply_ok(&mut sm, delete("a", false, Some(1))),
        Outcome::Deleted {
            revision: 2,
            deleted: 1
        }
    );
}

#[test]
fn prefix_delete_removes_only_keys_under_prefix_in_one_revision() {
    let mut sm = machine();
    for key in ["a", "a/1", "a/2", "a0", "b"] {
        apply_ok(&mut sm, put(key, "v"));
    }
    // CAS is ignored for prefix deletes.
    assert_eq!(
        apply_ok(&mut sm, delete("a/", true, Some(42))),
        Outcome::Deleted {
            revision: 6,
            deleted: 2
        }
    );
    let left: Vec<&str> = sm.kv_range("", None).into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["a", "a0", "b"]);
    assert_eq!(
        events_since(&sm, 5),
        vec![
            kv_event(6, KvEventKind::Delete, "a/1", ""),
            kv_event(6, KvEventKind::Delete, "a/2", ""),
        ]
    );
    assert_eq!(
        apply_ok(&mut sm, delete("zz", true, None)),
        Outcome::Deleted {
            revision: 6,
            deleted: 0
        }
    );
    assert_eq!(
        apply_ok(&mut sm, delete("", true, None)),
        Outcome::Deleted {
            revision: 7,
            deleted: 3
        }
    );
    assert_eq!(sm.kv_len(), 0);
}

#[test]
fn kv_range_is_sorted_prefix_bounded_and_limited() {
    let mut sm = machine();
    for key in ["b/2", "a", "b/1", "b", "c", "b/3"] {
        apply_ok(&mut sm, put(key, "v"));
    }
    let keys = |prefix, limit| -> Vec<String> {
        sm.kv_range(prefix, limit)
            .into_iter()
            .map(|(k, _)| k.to_owned())
            .collect()
    };
    assert_eq!(keys("b/", None), ["b/1", "b/2", "b/3"]);
    assert_eq!(keys("b", Some(2)), ["b", "b/1"]);
    assert_eq!(keys("", None).len(), 6);
    assert!(keys("b", Some(0)).is_empty());
    assert!(keys("d", None).is_empty());
    assert_eq!(sm.kv_len(), 6);
}
