//! The balancer: one policy, the current endpoint set, and per-endpoint load.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use crate::config::{Config, ConfigError};
use crate::endpoint::Endpoint;
use crate::pick::Pick;
use crate::policy::Policy;
use crate::rng::Rng;
use crate::snapshot::{Member, PickContext, Snapshot};
use crate::stats::{EndpointStats, EwmaParams, Stats};

/// Chooses an endpoint per request with one [`Policy`].
///
/// Share it (`Arc<Balancer>`) between the request path, which calls
/// [`pick`](Balancer::pick), and a background task that follows discovery and
/// calls [`set_endpoints`](Balancer::set_endpoints). Picks never wait for an
/// update: the new set, tables included, is built first and then swapped in
/// whole.
pub struct Balancer {
    policy: Policy,
    config: Config,
    ewma: EwmaParams,
    rng: Rng,
    /// Round-robin position; outlives sets so swaps do not restart cycles.
    cursor: AtomicU64,
    /// The current set. The lock is held only to clone the `Arc`.
    current: RwLock<Arc<Snapshot>>,
    /// Stats by id for every endpoint of the current set, including weight-0
    /// ones, so draining and restoring an endpoint keeps its history. The lock
    /// also serialises updaters; picks never take it.
    stats: Mutex<HashMap<String, Arc<Stats>>>,
}

/// Why [`Balancer::set_endpoints`] refused a set; the previous set stays.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointsError {
    /// Ids key per-endpoint stats and hash placement, so they must be unique.
    #[error("endpoint id {0:?} appears more than once in the set")]
    DuplicateId(String),
    /// A Maglev table gives every endpoint at least one slot.
    #[error(
        "{endpoints} endpoints do not fit a maglev table of {table_size} slots; \
         raise maglev_table_size"
    )]
    TooManyForMaglev {
        /// Endpoints with weight above zero.
        endpoints: usize,
        /// The configured table size.
        table_size: u64,
    },
}

impl Balancer {
    /// A balancer with the default [`Config`] and no endpoints.
    pub fn new(policy: Policy) -> Self {
        Self::with_config(policy, Config::default()).expect("the default config is valid")
    }

    /// A balancer with explicit tuning and no endpoints.
    pub fn with_config(policy: Policy, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            policy,
            ewma: EwmaParams {
                decay_ns: config.ewma_decay.as_nanos() as f64,
                failure_penalty_ns: config.failure_penalty.as_nanos() as f64,
            },
            rng: Rng::new(config.seed),
            cursor: AtomicU64::new(0),
            current: RwLock::new(Arc::new(Snapshot::empty())),
            stats: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The policy this balancer was built with.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The tuning this balancer was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the endpoint set. Endpoints whose id was already present keep
    /// their in-flight count and latency estimate; new ids start from the
    /// prior ([`Config::default_rtt`]); removed ids are forgotten (picks still
    /// holding one settle on their own). Weight-0 endpoints are kept for their
    /// stats but never chosen. On error the previous set stays in place.
    pub fn set_endpoints(&self, endpoints: Vec<Endpoint>) -> Result<(), EndpointsError> {
        let mut known = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut next = HashMap::with_capacity(endpoints.len());
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let stats = match next.entry(endpoint.id.clone()) {
                Entry::Occupied(_) => return Err(EndpointsError::DuplicateId(endpoint.id)),
                Entry::Vacant(slot) => Arc::clone(
                    slot.insert(
                        known
                            .get(&endpoint.id)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Stats::new(self.config.default_rtt, now))),
                    ),
                ),
            };
            if endpoint.weight > 0 {
                members.push(Member {
                    endpoint: Arc::new(endpoint),
                    stats,
                });
            }
        }
        let snapshot = Snapshot::build(self.policy, members, &self.config)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        *known = next;
        Ok(())
    }

    /// Chooses an endpoint for one request, or `None` when no endpoint has a
    /// weight above zero. `key` routes the hash policies (see [`hash_key`](crate::hash_key));
    /// they pick a weighted random endpoint without one, and other policies
    /// ignore it. Lock-free apart from cloning the current set's `Arc` (and a
    /// short lock for weighted round robin); it never allocates.
    pub fn pick(&self, key: Option<u64>) -> Option<Pick> {
        let snapshot = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        let cx = PickContext {
            rng: &self.rng,
            cursor: &self.cursor,
            decay_ns: self.ewma.decay_ns,
        };
        let member = &snapshot.members[snapshot.choose(key, &cx)?];
        let learns_latency = self.policy == Policy::P2cEwma;
        Some(Pick::new(
            Arc::clone(&member.endpoint),
            Arc::clone(&member.stats),
            learns_latency.then_some(self.ewma),
        ))
    }

    /// How many endpoints the current set can choose from (weight above
    /// zero); what a pick sees, for policies layered on top such as outlier
    /// ejection's cap on the share of ejected endpoints.
    pub fn len(&self) -> usize {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .members
            .len()
    }

    /// Whether no endpoint can be chosen (see [`len`](Balancer::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current load of endpoint `id`, if it is in the set (weight 0
    /// included); for metrics and debugging, not the request path.
    pub fn stats(&self, id: &str) -> Option<EndpointStats> {
        let known = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = known.get(id)?;
        Some(stats.snapshot(Instant::now(), self.ewma.decay_ns))
    }

    #[cfg(test)]
    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        f.debug_struct("Balancer")
            .field("policy", &self.policy)
            .field("eligible_endpoints", &snapshot.members.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
