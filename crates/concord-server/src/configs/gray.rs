//! Whether a registered instance gets an item's gray candidate.

use concord_api::config::GraySelector;
use concord_state::StateMachine;

/// The instance a request or watch speaks for: registry namespace, service, id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asker {
    pub(crate) namespace: String,
    pub(crate) service: String,
    pub(crate) id: String,
}

impl Asker {
    /// Parses `SERVICE/ID`; the registry namespace defaults to the config's.
    pub(crate) fn parse(spec: &str, namespace: &str) -> Option<Asker> {
        let (service, id) = spec.split_once('/')?;
        concord_api::validate::service_name(service).ok()?;
        concord_api::validate::instance_id(id).ok()?;
        Some(Asker {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Whether the instance is registered and `selector` picks it.
    pub(crate) fn selected(&self, state: &StateMachine, selector: &GraySelector) -> bool {
        state
            .instance(&self.namespace, &self.service, &self.id)
            .is_some_and(|r| {
                selector.matches(&self.service, &self.id, &r.instance.tags, &r.instance.meta)
            })
    }
}
