use concord_api::config::{ConfigEventKind, ConfigFormat, GraySelector};

use crate::testutil::{apply_ok, apply_refused, events_since, machine};
use crate::{Command, ConfigKey, EventKind, Outcome, PublishMeta, StateError, StateMachine};

fn key() -> ConfigKey {
    ConfigKey::new("prod", "app", "db.yaml")
}

fn meta(comment: &str) -> PublishMeta {
    PublishMeta {
        comment: comment.to_owned(),
        at_ms: 1_000,
        keep: 3,
    }
}

fn publish(sm: &mut StateMachine, content: &str, cas: Option<u64>) -> Outcome {
    sm.apply(Command::ConfigPublish {
        key: key(),
        format: ConfigFormat::Yaml,
        content: content.to_owned(),
        sha256: format!("sha-{content}"),
        cas,
        meta: meta(content),
    })
}

fn version(o: &Outcome) -> u64 {
    match o {
        Outcome::ConfigPublished { version, .. } => *version,
        other => panic!("not a publish: {other:?}"),
    }
}

fn config_events(sm: &StateMachine, after: u64) -> Vec<(ConfigEventKind, u64, String)> {
    events_since(sm, after)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Config {
                kind,
                version,
                content,
                ..
            } => Some((kind, version, content)),
            _ => None,
        })
        .collect()
}

#[test]
fn versions_count_up_and_history_is_bounded() {
    let mut sm = machine();
    for (i, c) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(version(&publish(&mut sm, c, None)), i as u64 + 1);
    }
    let e = sm.config(&key()).expect("item");
    let kept: Vec<u64> = e.history.iter().map(|v| v.version).collect();
    assert_eq!(kept, [4, 3, 2], "newest first, three kept");
    assert_eq!(e.current().unwrap().content, "d");
    assert_eq!(e.current().unwrap().comment, "d");
    assert_eq!(sm.check_invariants(), Ok(()));
}

#[test]
fn same_content_is_not_a_new_version() {
    let mut sm = machine();
    publish(&mut sm, "a", None);
    let rev = sm.revision();
    let o = publish(&mut sm, "a", None);
    assert_eq!(version(&o), 1);
    assert_eq!(sm.revision(), rev);
}

#[test]
fn cas_guards_the_version() {
    let mut sm = machine();
    assert_eq!(version(&publish(&mut sm, "a", Some(0))), 1);
    assert_eq!(
        publish(&mut sm, "b", Some(0)),
        Outcome::Refused(StateError::ConfigCasFailed { current: 1 })
    );
    assert_eq!(version(&publish(&mut sm, "b", Some(1))), 2);
}

#[test]
fn rollback_publishes_an_old_version_anew() {
    let mut sm = machine();
    publish(&mut sm, "a", None);
    publish(&mut sm, "b", None);
    let o = apply_ok(
        &mut sm,
        Command::ConfigRollback {
            key: key(),
            version: 1,
            meta: meta("back"),
        },
    );
    assert_eq!(version(&o), 3);
    let cur = sm.config(&key()).unwrap().current().unwrap().clone();
    assert_eq!((cur.content.as_str(), cur.comment.as_str()), ("a", "back"));
    assert!(matches!(
        apply_refused(
            &mut sm,
            Command::ConfigRollback {
                key: key(),
                version: 9,
                meta: meta("x"),
            }
        ),
        StateError::ConfigVersionNotFound { version: 9, .. }
    ));
}

#[test]
fn delete_keeps_counting_versions() {
    let mut sm = machine();
    publish(&mut sm, "a", None);
    let before = sm.revision();
    apply_ok(
        &mut sm,
        Command::ConfigDelete {
            key: key(),
            at_ms: 5,
        },
    );
    assert!(sm.config(&key()).unwrap().current().is_none());
    assert_eq!(sm.configs_in("prod", None).count(), 0);
    assert_eq!(
        config_events(&sm, before),
        [(ConfigEventKind::Delete, 1, String::new())]
    );
    assert!(matches!(
        apply_refused(
            &mut sm,
            Command::ConfigDelete {
                key: key(),
                at_ms: 5
            }
        ),
        StateError::ConfigNotFound(_)
    ));
    assert_eq!(version(&publish(&mut sm, "b", Some(0))), 2, "never reused");
    assert_eq!(sm.config(&key()).unwrap().history.len(), 1);
}

#[test]
fn gray_is_staged_promoted_and_cancelled() {
    let mut sm = machine();
    let gray = |sm: &mut StateMachine, content: &str| {
        sm.apply(Command::ConfigGray {
            key: key(),
            content: content.to_owned(),
            sha256: format!("sha-{content}"),
            selector: GraySelector {
                tags: vec!["canary".into()],
                ..GraySelector::default()
            },
            at_ms: 2,
        })
    };
    assert!(matches!(
        gray(&mut sm, "g"),
        Outcome::Refused(StateError::ConfigNotFound(_))
    ));
    publish(&mut sm, "a", None);
    let before = sm.revision();
    assert!(matches!(gray(&mut sm, "g1"), Outcome::ConfigGray { .. }));
    assert_eq!(sm.config(&key()).unwrap().current().unwrap().content, "a");
    apply_ok(
        &mut sm,
        Command::ConfigGrayCancel {
            key: key(),
            at_ms: 3,
        },
    );
    assert!(sm.config(&key()).unwrap().gray.is_none());
    gray(&mut sm, "g2");
    let o = apply_ok(
        &mut sm,
        Command::ConfigGrayPromote {
            key: key(),
            meta: meta("go"),
        },
    );
    assert_eq!(version(&o), 2);
    assert_eq!(sm.config(&key()).unwrap().current().unwrap().content, "g2");
    assert!(sm.config(&key()).unwrap().gray.is_none());
    assert_eq!(
        config_events(&sm, before),
        [
            (ConfigEventKind::Gray, 1, "g1".into()),
            (ConfigEventKind::GrayCancel, 1, "a".into()),
            (ConfigEventKind::Gray, 1, "g2".into()),
            (ConfigEventKind::Publish, 2, "g2".into()),
        ]
    );
    assert!(matches!(
        apply_refused(
            &mut sm,
            Command::ConfigGrayPromote {
                key: key(),
                meta: meta("x")
            }
        ),
        StateError::NoGray(_)
    ));
}

#[test]
fn listing_is_by_namespace_and_group() {
    let mut sm = machine();
    for (ns, group, id) in [("prod", "a", "x"), ("prod", "b", "y"), ("dev", "a", "x")] {
        apply_ok(
            &mut sm,
            Command::ConfigPublish {
                key: ConfigKey::new(ns, group, id),
                format: ConfigFormat::Text,
                content: "c".into(),
                sha256: "s".into(),
                cas: None,
                meta: meta(""),
            },
        );
    }
    assert_eq!(sm.configs_in("prod", None).count(), 2);
    assert_eq!(sm.configs_in("prod", Some("b")).count(), 1);
    assert_eq!(sm.configs_in("dev", None).count(), 1);
    assert_eq!(sm.config_count(), 3);
    // Snapshots carry config items.
    let back = StateMachine::restore(&sm.snapshot(), Default::default()).expect("restore");
    assert_eq!(back, sm);
}
