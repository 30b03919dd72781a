//! An in-memory `DnsSource` for tests, with the registry's tag and health semantics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{DnsSource, DnsTarget};

struct Instance {
    target: DnsTarget,
    tags: Vec<String>,
    passing: bool,
}

/// Services keyed by `(namespace, service)`; a key with no instances is a known,
/// empty service.
#[derive(Default)]
pub struct FakeSource {
    services: Mutex<BTreeMap<(String, String), Vec<Instance>>>,
}

impl FakeSource {
    /// Adds a passing instance (creating the service).
    pub fn add(&self, namespace: &str, service: &str, id: &str, address: &str, tags: &[&str]) {
        self.insert(namespace, service, id, address, tags, true);
    }

    /// Adds an instance whose checks fail: it must never be answered.
    pub fn add_failing(&self, namespace: &str, service: &str, id: &str, address: &str) {
        self.insert(namespace, service, id, address, &[], false);
    }

    /// Sets the SRV fields of an instance added before.
    pub fn set_port_weight(
        &self,
        namespace: &str,
        service: &str,
        id: &str,
        port: u16,
        weight: u32,
    ) {
        let mut services = self.services.lock().unwrap();
        let key = (namespace.to_owned(), service.to_owned());
        for i in services.get_mut(&key).into_iter().flatten() {
            if i.target.id == id {
                i.target.port = port;
                i.target.weight = weight;
            }
        }
    }

    fn insert(
        &self,
        namespace: &str,
        service: &str,
        id: &str,
        address: &str,
        tags: &[&str],
        passing: bool,
    ) {
        let instance = Instance {
            target: DnsTarget {
                id: id.to_owned(),
                address: address.to_owned(),
                port: 8080,
                weight: 10,
            },
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            passing,
        };
        self.services
            .lock()
            .unwrap()
            .entry((namespace.to_owned(), service.to_owned()))
            .or_default()
            .push(instance);
    }
}

impl DnsSource for FakeSource {
    fn has_namespace(&self, namespace: &str) -> bool {
        let services = self.services.lock().unwrap();
        services.keys().any(|(ns, _)| ns == namespace)
    }

    fn lookup(&self, namespace: &str, service: &str, tag: Option<&str>) -> Option<Vec<DnsTarget>> {
        let services = self.services.lock().unwrap();
        let instances = services.get(&(namespace.to_owned(), service.to_owned()))?;
        Some(
            instances
                .iter()
                .filter(|i| i.passing)
                .filter(|i| tag.is_none_or(|t| i.tags.iter().any(|x| x == t)))
                .map(|i| i.target.clone())
                .collect(),
        )
    }
}
