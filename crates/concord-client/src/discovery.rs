//! [`Discovery`]: a live local cache of one service's usable instances.
//!
//! Reading the registry on every call would put the registry on every
//! request's path; the cache is filled once by a read and then kept current by
//! a watch from that read's revision, so it sees every change exactly once and
//! in order. A broken watch resumes from the last revision seen (progress
//! events keep it recent); when the server no longer has that revision
//! (`410 compacted`), or says it is behind it (a progress event's `head`: a
//! store restored from an older backup), the cache is rebuilt from a fresh
//! read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use concord_api::registry::{HealthStatus, Instance};
use concord_api::watch::{ServiceEvent, ServiceEventKind};
use concord_balance::{Balancer, Endpoint, Pick, Policy, hash_key};
use futures::StreamExt;
use tokio::sync::watch;

use crate::client::Client;
use crate::error::ClientError;
use crate::watch::WatchEvent;

/// Pause before reconnecting a broken watch; doubles up to [`RECONNECT_MAX`].
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Whether an instance should get traffic: passing and not in maintenance.
pub(crate) fn is_usable(instance: &Instance) -> bool {
    instance.status == HealthStatus::Passing && instance.maintenance.is_none()
}

/// A cache of one service's passing, non-maintenance instances, kept current
/// by a watch, with a [`Balancer`] over them.
///
/// Cheap to clone; clones share the cache and the watch task, which stops when
/// the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Discovery {
    handle: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    /// The generation [`Discovery::changed`] last returned at.
    seen: Mutex<u64>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Shared {
    service: String,
    /// Every instance the registry has (usable or not), by id.
    all: Mutex<BTreeMap<String, Instance>>,
    /// The usable ones, swapped whole on a change.
    usable: RwLock<Arc<Vec<Instance>>>,
    balancer: Balancer,
    /// Bumped on each change of `usable`.
    generation: watch::Sender<u64>,
}

impl Discovery {
    /// Reads `service`'s instances (in the client's namespace) and starts the
    /// watch that keeps them current; picks with the default policy, p2c_ewma.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), concord_client::ClientError> {
    /// let client = concord_client::Client::new("http://127.0.0.1:7600");
    /// let orders = concord_client::Discovery::start(client, "orders").await?;
    /// if let Some(instance) = orders.pick(None) {
    ///     println!("call http://{}:{}", instance.address, instance.port);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(client: Client, service: &str) -> Result<Discovery, ClientError> {
        Discovery::with_policy(client, service, Policy::default()).await
    }

    /// As [`Discovery::start`], balancing with `policy` (ring_hash or maglev
    /// for key affinity, see [`Discovery::pick`]).
    pub async fn with_policy(
        client: Client,
        service: &str,
        policy: Policy,
    ) -> Result<Discovery, ClientError> {
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            service: service.to_owned(),
            all: Mutex::new(BTreeMap::new()),
            usable: RwLock::new(Arc::new(Vec::new())),
            balancer: Balancer::new(policy),
            generation,
        });
        let revision = shared.resync(&client).await?;
        let task = tokio::spawn(follow(client, Arc::clone(&shared), revision));
        Ok(Discovery {
            handle: Arc::new(Handle {
                shared,
                task,
                seen: Mutex::new(0),
            }),
        })
    }

    /// The service this cache follows.
    pub fn service(&self) -> &str {
        &self.handle.shared.service
    }

    /// The usable instances now, ordered by id.
    pub fn instances(&self) -> Vec<Instance> {
        self.handle.shared.usable().to_vec()
    }

    /// Picks one usable instance with the balancer; `key` is hashed for the
    /// hash policies (ring_hash, maglev) and ignored by the others. `None` when
    /// no instance is usable.
    pub fn pick(&self, key: Option<&[u8]>) -> Option<Instance> {
        self.pick_tracked(key).map(|(instance, _)| instance)
    }

    /// A pick that keeps its in-flight slot: finish it with the call's latency
    /// so p2c_ewma learns which instance is fast.
    pub(crate) fn pick_tracked(&self, key: Option<&[u8]>) -> Option<(Instance, Pick)> {
        let shared = &self.handle.shared;
        let pick = shared.balancer.pick(key.map(hash_key))?;
        let usable = shared.usable();
        let instance = usable.iter().find(|i| i.id == pick.endpoint.id)?.clone();
        Some((instance, pick))
    }

    /// Resolves when the cache changes, or at once if it changed since the
    /// last call returned (shared by clones) — for tests and UIs that want to
    /// react to membership changes.
    pub async fn changed(&self) {
        let mut rx = self.handle.shared.generation.subscribe();
        loop {
            let now = *rx.borrow_and_update();
            {
                let mut seen = self
                    .handle
                    .seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if now != *seen {
                    *seen = now;
                    return;
                }
            }
            if rx.changed().await.is_err() {
                // The task is gone; nothing will change any more.
                return std::future::pending().await;
            }
        }
    }
}

impl Shared {
    fn usable(&self) -> Arc<Vec<Instance>> {
        Arc::clone(&self.usable.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the cache with a fresh read; returns its revision.
    async fn resync(&self, client: &Client) -> Result<u64, ClientError> {
        let detail = client.get_service(&self.service, &[]).await?;
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        *all = detail
            .instances
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        self.publish(&all);
        Ok(detail.revision)
    }

    fn apply(&self, event: ServiceEvent) {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        match event.kind {
            ServiceEventKind::Register | ServiceEventKind::Update => {
                all.insert(event.instance.id.clone(), event.instance);
            }
            ServiceEventKind::Deregister | ServiceEventKind::Expire => {
                all.remove(&event.instance.id);
            }
        }
        self.publish(&all);
    }

    /// Recomputes the usable set from `all`; tells waiters only when it changed.
    fn publish(&self, all: &BTreeMap<String, Instance>) {
        let usable: Vec<Instance> = all.values().filter(|i| is_usable(i)).cloned().collect();
        if *self.usable() == usable {
            return;
        }
        let endpoints = usable
            .iter()
            .map(|i| Endpoint::new(&i.id, format!("{}:{}", i.address, i.port), i.weight))
            .collect();
        if let Err(e) = self.balancer.set_endpoints(endpoints) {
            tracing::warn!(service = %self.service, error = %e, "cannot balance over the instances");
        }
        *self.usable.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(usable);
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The watch loop: follows the service from `revision`, reconnecting (and
/// resyncing on `compacted`) until the task is aborted.
async fn follow(client: Client, shared: Arc<Shared>, mut revision: u64) {
    let mut failures: u32 = 0;
    loop {
        match client.watch_service(&shared.service, Some(revision)).await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(WatchEvent::Change(event)) => {
                            revision = revision.max(event.revision);
                            shared.apply(event);
                            failures = 0;
                        }
                        Ok(WatchEvent::Progress(p)) if p.head.is_some_and(|h| h < revision) => {
                            // The node is behind what this cache has seen: lagging,
                            // or restored from an older backup. Re-read (a
                            // linearizable read waits out a lag) and follow from there.
                            revision = resync_or_keep(&client, &shared, revision).await;
                            break;
                        }
                        Ok(WatchEvent::Progress(p)) => {
                            revision = revision.max(p.revision);
                            failures = 0;
                        }
                        Err(e) if e.is_compacted() => {
                            revision = resync_or_keep(&client, &shared, revision).await;
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(service = %shared.service, error = %e, "service watch broke");
                            break;
                        }
                    }
                }
            }
            Err(e) if e.is_compacted() => {
                revision = resync_or_keep(&client, &shared, revision).await;
            }
            Err(e) => {
                tracing::debug!(service = %shared.service, error = %e, "service watch failed to open");
            }
        }
        failures += 1;
        let delay =
            concord_balance::retry::backoff_between(failures, RECONNECT_BASE, RECONNECT_MAX);
        tokio::time::sleep(delay).await;
    }
}

async fn resync_or_keep(client: &Client, shared: &Shared, revision: u64) -> u64 {
    match shared.resync(client).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(service = %shared.service, error = %e, "resync failed");
            revision
        }
    }
}
