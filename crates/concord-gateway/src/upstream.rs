//! The live endpoint sets of every target routes use, and their balancers.
//!
//! One [`Upstream`] per [`TargetKey`]; it holds the passing instances as
//! discovery last saw them and one balancer per policy that routes ask for
//! (two routes with different `lb` on the same target share the endpoints,
//! not the balancer). Discovery pushes endpoint changes into every balancer
//! from its background task; picks never wait for it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use concord_api::registry::Instance;
use concord_balance::{Balancer, Endpoint, Policy};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::route::{EndpointSource, TargetKey};

/// One target's endpoints and balancers.
#[derive(Debug)]
pub struct Upstream {
    /// Which instances.
    pub key: TargetKey,
    inner: Mutex<Inner>,
    loaded: watch::Sender<bool>,
    task: Mutex<Option<AbortHandle>>,
}

#[derive(Debug, Default)]
struct Inner {
    endpoints: Arc<Vec<Endpoint>>,
    revision: u64,
    balancers: HashMap<Policy, Arc<Balancer>>,
}

/// The endpoint of a registry instance: its id, `address:port` (IPv6 in
/// brackets) and registry weight.
pub fn endpoint_of(instance: &Instance) -> Endpoint {
    let host = if instance.address.contains(':') && !instance.address.starts_with('[') {
        format!("[{}]", instance.address)
    } else {
        instance.address.clone()
    };
    Endpoint::new(
        instance.id.clone(),
        format!("{host}:{}", instance.port),
        instance.weight,
    )
}

impl EndpointSource for Upstream {
    fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        Arc::clone(&self.lock().endpoints)
    }
}

impl Upstream {
    fn new(key: TargetKey) -> Self {
        Upstream {
            key,
            inner: Mutex::new(Inner::default()),
            loaded: watch::Sender::new(false),
            task: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The balancer for `policy`, created with the current endpoints.
    pub fn balancer(&self, policy: Policy) -> Arc<Balancer> {
        let mut inner = self.lock();
        if let Some(b) = inner.balancers.get(&policy) {
            return Arc::clone(b);
        }
        let balancer = Arc::new(Balancer::new(policy));
        if let Err(e) = balancer.set_endpoints(inner.endpoints.to_vec()) {
            tracing::warn!(target = %self.key, %policy, "cannot use endpoints: {e}");
        }
        inner.balancers.insert(policy, Arc::clone(&balancer));
        balancer
    }

    /// Replaces the endpoints in every balancer.
    pub fn set_endpoints(&self, endpoints: Vec<Endpoint>, revision: u64) {
        let mut inner = self.lock();
        let changed = *inner.endpoints != endpoints;
        inner.revision = revision;
        if changed {
            for (policy, balancer) in &inner.balancers {
                if let Err(e) = balancer.set_endpoints(endpoints.clone()) {
                    tracing::warn!(target = %self.key, %policy, "cannot use endpoints: {e}");
                }
            }
            tracing::debug!(target = %self.key, endpoints = endpoints.len(), revision, "endpoints changed");
            inner.endpoints = Arc::new(endpoints);
        }
        drop(inner);
        self.loaded.send_replace(true);
    }

    /// The endpoints as last seen, and the registry revision they are from.
    pub fn endpoints(&self) -> (Arc<Vec<Endpoint>>, u64) {
        let inner = self.lock();
        (Arc::clone(&inner.endpoints), inner.revision)
    }

    /// The balancers, by policy name.
    pub fn balancers(&self) -> Vec<(Policy, Arc<Balancer>)> {
        let mut all: Vec<_> = self
            .lock()
            .balancers
            .iter()
            .map(|(p, b)| (*p, Arc::clone(b)))
            .collect();
        all.sort_by_key(|(p, _)| p.as_str());
        all
    }

    /// Whether the endpoints have been read at least once.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Waits until the endpoints have been read once, up to `timeout`;
    /// returns whether they were.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let mut rx = self.loaded.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|loaded| *loaded))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Remembers the task that follows this target, to stop it on removal.
    pub fn set_task(&self, task: AbortHandle) {
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    fn stop(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// Every target in use.
#[derive(Debug, Default)]
pub struct Upstreams {
    map: Mutex<HashMap<TargetKey, Arc<Upstream>>>,
}

impl Upstreams {
    /// The upstream for `key`, and whether it was just created (and so needs
    /// a discovery task).
    pub fn get_or_insert(&self, key: &TargetKey) -> (Arc<Upstream>, bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(u) = map.get(key) {
            return (Arc::clone(u), false);
        }
        let u = Arc::new(Upstream::new(key.clone()));
        map.insert(key.clone(), Arc::clone(&u));
        (u, true)
    }

    /// Forgets (and stops following) every target not in `keep`.
    pub fn retain(&self, keep: &HashSet<TargetKey>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|key, upstream| {
            let used = keep.contains(key);
            if !used {
                tracing::debug!(target = %key, "target no longer used");
                upstream.stop();
            }
            used
        });
    }

    /// Every upstream, sorted by target.
    pub fn list(&self) -> Vec<Arc<Upstream>> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Stops every discovery task (on shutdown).
    pub fn stop_all(&self) {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        for upstream in map.values() {
            upstream.stop();
        }
    }
}
