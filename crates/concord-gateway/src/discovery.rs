//! Following Concord: routes by watch, and each target's passing instances.
//!
//! Routes: list them, then follow `watch_routes` from the listed revision;
//! a broken stream reconnects from the last revision seen (with backoff), a
//! `compacted` answer or an undecodable event lists again. Every change
//! compiles the changed routes (unchanged ones keep their state: rate-limit
//! buckets, retry budget), waits briefly for new targets' first endpoint
//! lists, and swaps the snapshot.
//!
//! Targets: read the passing instances (`passing=true` plus the target's
//! tags), then follow `watch_service` from that revision and read them again
//! after every burst of events. A status change (a failing check,
//! maintenance) is an `update` event, so an instance stops getting traffic as
//! soon as Concord knows.
//!
//! Nothing here is ever cleared on an error: when Concord is unreachable the
//! gateway keeps serving the last good routes and endpoints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use concord_api::gateway::{RouteEventKind, StoredRoute};
use concord_api::registry::InstanceFilter;
use concord_balance::Policy;
use concord_client::{Client, ClientError, WatchEvent};
use futures::{FutureExt, StreamExt};
use rand::Rng;

use crate::config::GatewayConfig;
use crate::matching::RouteTable;
use crate::route::{Route, TargetKey, TargetSource};
use crate::state::{Shared, Snapshot};
use crate::upstream::{Upstream, Upstreams, endpoint_of};

/// Exponential backoff with jitter between reconnection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
            failures: 0,
        }
    }

    /// Records a failure; returns how long to wait.
    pub fn fail(&mut self) -> Duration {
        self.failures += 1;
        self.delay()
    }

    /// The wait before the next attempt (between half and all of the current
    /// step), without counting a failure: a stream that ended is normal.
    pub fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Whether the last failure was the first since a success: worth a
    /// warning; the repeats are only debug noise.
    pub fn is_first_failure(&self) -> bool {
        self.failures == 1
    }

    /// Records a success.
    pub fn reset(&mut self) {
        self.next = self.min;
        self.failures = 0;
    }
}

/// Logs a failure to talk to Concord: a warning the first time, debug after.
macro_rules! log_failure {
    ($backoff:expr, $($arg:tt)+) => {
        if $backoff.is_first_failure() {
            tracing::warn!($($arg)+);
        } else {
            tracing::debug!($($arg)+);
        }
    };
}

/// The background task that keeps the snapshot and the balancers current.
pub struct Discovery {
    client: Client,
    shared: Arc<Shared>,
    upstreams: Arc<Upstreams>,
    config: GatewayConfig,
    routes: BTreeMap<String, StoredRoute>,
    compiled: HashMap<String, Arc<Route>>,
    revision: u64,
}

/// Why following the route watch stopped.
enum End {
    /// The stream broke: reconnect from the last revision.
    Reconnect,
    /// We may have missed changes: list again.
    Relist,
}

impl Discovery {
    /// Discovery against `client`, publishing into `shared` and `upstreams`.
    pub fn new(
        client: Client,
        shared: Arc<Shared>,
        upstreams: Arc<Upstreams>,
        config: GatewayConfig,
    ) -> Self {
        Discovery {
            client,
            shared,
            upstreams,
            config,
            routes: BTreeMap::new(),
            compiled: HashMap::new(),
            revision: 0,
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.config.reconnect_min, self.config.reconnect_max)
    }

    /// Runs until aborted.
    pub async fn run(mut self) {
        let mut backoff = self.backoff();
        loop {
            let list = match self.client.route_list().await {
                Ok(list) => list,
                Err(e) => {
                    let wait = backoff.fail();
                    log_failure!(
                        backoff,
                        server = self.client.base_url(),
                        "cannot list routes: {e}; keeping the last good state, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            backoff.reset();
            self.routes = list
                .routes
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect();
            self.revision = list.revision;
            self.apply().await;
            self.follow_routes(&mut backoff).await;
        }
    }

    /// Follows the route watch until a relist is needed.
    async fn follow_routes(&mut self, backoff: &mut Backoff) {
        loop {
            match self.client.watch_routes(Some(self.revision)).await {
                Ok(stream) => match self.consume(stream, backoff).await {
                    End::Relist => return,
                    End::Reconnect => {}
                },
                Err(e) if e.is_compacted() => return,
                Err(e) => {
                    let wait = backoff.fail();
                    log_failure!(backoff, "cannot watch routes: {e}; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            tokio::time::sleep(backoff.delay()).await;
        }
    }

    /// Applies route events as they come, a burst at a time.
    async fn consume(
        &mut self,
        stream: concord_client::WatchStream<concord_api::gateway::RouteEvent>,
        backoff: &mut Backoff,
    ) -> End {
        let mut stream = stream.fuse();
        while let Some(first) = stream.next().await {
            let mut batch = vec![first];
            while let Some(Some(more)) = stream.next().now_or_never() {
                batch.push(more);
            }
            let mut changed = false;
            let mut end = None;
            for item in batch {
                match item {
                    Ok(WatchEvent::Change(ev)) => {
                        self.revision = self.revision.max(ev.revision);
                        changed = true;
                        match (ev.kind, ev.route) {
                            (RouteEventKind::Put, Some(route)) => {
                                let stored = StoredRoute {
                                    name: ev.name.clone(),
                                    route,
                                    revision: ev.revision,
                                };
                                self.routes.insert(ev.name, stored);
                            }
                            (RouteEventKind::Put, None) => end = Some(End::Relist),
                            (RouteEventKind::Delete, _) => {
                                self.routes.remove(&ev.name);
                            }
                        }
                    }
                    Ok(WatchEvent::Progress(p)) => self.revision = self.revision.max(p.revision),
                    Err(e) if e.is_compacted() || matches!(e, ClientError::Decode(_)) => {
                        tracing::warn!("route watch: {e}; listing routes again");
                        end = Some(End::Relist);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("route watch ended: {e}; reconnecting");
                        end = Some(End::Reconnect);
                        break;
                    }
                }
            }
            if changed {
                self.apply().await;
            }
            match end {
                Some(end) => return end,
                None => backoff.reset(),
            }
        }
        End::Reconnect
    }

    /// Compiles what changed, warms new targets, swaps the snapshot and
    /// drops targets no route uses any more.
    async fn apply(&mut self) {
        let mut warming: Vec<Arc<Upstream>> = Vec::new();
        let mut compiled = HashMap::new();
        {
            let upstreams = &self.upstreams;
            let client = &self.client;
            let config = &self.config;
            let mut source_for = |key: &TargetKey, policy: Policy| -> TargetSource {
                let (upstream, new) = upstreams.get_or_insert(key);
                if new {
                    spawn_follower(client, Arc::clone(&upstream), config);
                }
                if !upstream.is_loaded() {
                    warming.push(Arc::clone(&upstream));
                }
                TargetSource {
                    balancer: upstream.balancer(policy),
                    endpoints: upstream,
                }
            };
            for (name, stored) in &self.routes {
                if let Some(old) = self.compiled.get(name)
                    && old.revision == stored.revision
                    && old.spec == stored.route
                {
                    compiled.insert(name.clone(), Arc::clone(old));
                    continue;
                }
                match Route::compile(stored, &mut source_for) {
                    Ok(route) => {
                        compiled.insert(name.clone(), Arc::new(route));
                    }
                    Err(e) => tracing::warn!(route = %name, "cannot serve route: {e}; skipping it"),
                }
            }
        }
        // New targets get a moment to load their endpoints, so moving traffic
        // to a new service does not open a window of 503s.
        let timeout = self.config.warm_up_timeout;
        let waits = warming.iter().map(|u| u.wait_loaded(timeout));
        let loaded = futures::future::join_all(waits).await;
        for (upstream, ok) in warming.iter().zip(loaded) {
            if !ok {
                tracing::warn!(target = %upstream.key, "no endpoint list yet; applying the route change anyway");
            }
        }
        let table = RouteTable::new(compiled.values().cloned().collect());
        let keep: HashSet<TargetKey> = table
            .routes()
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.key.clone()))
            .collect();
        let routes = table.routes().len();
        self.shared.store(Snapshot {
            table,
            loaded: true,
            revision: self.revision,
        });
        self.upstreams.retain(&keep);
        self.compiled = compiled;
        tracing::info!(routes, revision = self.revision, "routes updated");
    }
}

/// Starts the task that follows one target's instances.
fn spawn_follower(client: &Client, upstream: Arc<Upstream>, config: &GatewayConfig) {
    let client = client
        .clone()
        .with_namespace(upstream.key.namespace.clone());
    let backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let task = tokio::spawn(follow_target(client, Arc::clone(&upstream), backoff));
    upstream.set_task(task.abort_handle());
}

/// Keeps one target's endpoints current; runs until aborted.
async fn follow_target(client: Client, upstream: Arc<Upstream>, mut backoff: Backoff) {
    let key = upstream.key.clone();
    let filter = InstanceFilter {
        passing: true,
        tags: key.tags.clone(),
        meta: Vec::new(),
    };
    loop {
        let revision = match refresh(&client, &upstream, &filter).await {
            Ok(revision) => revision,
            Err(e) => {
                let wait = backoff.fail();
                log_failure!(backoff, target = %key, "cannot read instances: {e}; keeping the last good endpoints, retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        backoff.reset();
        match client.watch_service(&key.service, Some(revision)).await {
            Ok(stream) => {
                if let Err(e) = follow_events(stream, &client, &upstream, &filter).await {
                    tracing::debug!(target = %key, "service watch ended: {e}");
                }
                tokio::time::sleep(backoff.delay()).await;
            }
            Err(e) => {
                let wait = backoff.fail();
                log_failure!(backoff, target = %key, "cannot watch service: {e}; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Reads the instances again after every burst of events, until the stream
/// ends or fails.
async fn follow_events(
    stream: concord_client::WatchStream<concord_api::watch::ServiceEvent>,
    client: &Client,
    upstream: &Upstream,
    filter: &InstanceFilter,
) -> Result<(), ClientError> {
    let mut stream = stream.fuse();
    while let Some(item) = stream.next().await {
        if let WatchEvent::Change(_) = item? {
            // One read covers a burst of changes.
            while let Some(Some(Ok(_))) = stream.next().now_or_never() {}
            refresh(client, upstream, filter).await?;
        }
    }
    Ok(())
}

/// Reads the passing instances into the upstream; returns their revision.
async fn refresh(
    client: &Client,
    upstream: &Upstream,
    filter: &InstanceFilter,
) -> Result<u64, ClientError> {
    let detail = client.discover(&upstream.key.service, filter).await?;
    let endpoints = detail.instances.iter().map(endpoint_of).collect();
    upstream.set_endpoints(endpoints, detail.revision);
    Ok(detail.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let waits: Vec<Duration> = (0..4).map(|_| b.fail()).collect();
        assert!(b.failures == 4 && !b.is_first_failure());
        for (wait, step) in waits.iter().zip([100, 200, 400, 400]) {
            let step = Duration::from_millis(step);
            assert!(*wait >= step / 2 && *wait <= step, "{wait:?} for {step:?}");
        }
        b.reset();
        b.delay();
        assert!(!b.is_first_failure(), "a delay is not a failure");
        b.fail();
        assert!(b.is_first_failure());
        assert_eq!(b.next, Duration::from_millis(400));
    }
}
