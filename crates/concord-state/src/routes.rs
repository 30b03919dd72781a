//! Gateway routes: named, validated JSON documents the gateways follow by watch.
//!
//! Stored as the canonical JSON the server produced after validating, so the log
//! encoding does not depend on the route schema.

use concord_api::gateway::RouteEventKind;
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::history::EventKind;
use crate::machine::StateMachine;

/// One stored route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// The route as canonical JSON.
    pub json: String,
    /// Revision of its last change.
    pub revision: u64,
}

impl StateMachine {
    /// `Command::RoutePut`: create or replace a route. The same JSON again is no change.
    pub(crate) fn route_put(&mut self, name: String, json: String) -> Outcome {
        if self.routes.get(&name).is_some_and(|r| r.json == json) {
            return Outcome::RouteChanged {
                revision: self.revision,
            };
        }
        let mut change = self.begin();
        change.emit(EventKind::Route {
            kind: RouteEventKind::Put,
            name: name.clone(),
            json: json.clone(),
        });
        self.routes.insert(
            name,
            RouteEntry {
                json,
                revision: change.rev,
            },
        );
        Outcome::RouteChanged {
            revision: self.commit(change),
        }
    }

    /// `Command::RouteDelete`.
    pub(crate) fn route_delete(&mut self, name: String) -> Outcome {
        if !self.routes.contains_key(&name) {
            return Outcome::Refused(StateError::RouteNotFound(name));
        }
        let mut change = self.begin();
        self.routes.remove(&name);
        change.emit(EventKind::Route {
            kind: RouteEventKind::Delete,
            name,
            json: String::new(),
        });
        Outcome::RouteChanged {
            revision: self.commit(change),
        }
    }

    /// Every route, by name.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &RouteEntry)> {
        self.routes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One route.
    pub fn route(&self, name: &str) -> Option<&RouteEntry> {
        self.routes.get(name)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{apply_ok, apply_refused, events_since, machine};
    use crate::{Command, EventKind, StateError, StateMachine};

    #[test]
    fn put_replace_delete() {
        let mut sm = machine();
        let put = |sm: &mut StateMachine, json: &str| {
            apply_ok(
                sm,
                Command::RoutePut {
                    name: "orders".into(),
                    json: json.into(),
                },
            )
        };
        put(&mut sm, "{\"a\":1}");
        let rev = sm.revision();
        put(&mut sm, "{\"a\":1}");
        assert_eq!(sm.revision(), rev, "same JSON is no change");
        put(&mut sm, "{\"a\":2}");
        assert_eq!(sm.route("orders").unwrap().json, "{\"a\":2}");
        apply_ok(
            &mut sm,
            Command::RouteDelete {
                name: "orders".into(),
            },
        );
        assert!(sm.route("orders").is_none());
        assert!(matches!(
            apply_refused(
                &mut sm,
                Command::RouteDelete {
                    name: "orders".into()
                }
            ),
            StateError::RouteNotFound(_)
        ));
        let kinds: Vec<_> = events_since(&sm, 0)
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Route { kind, .. } => Some(kind),
                _ => None,
            })
            .collect();
        assert_eq!(kinds.len(), 3);
        let back = StateMachine::restore(&sm.snapshot(), Default::default()).unwrap();
        assert_eq!(back, sm);
    }
}
