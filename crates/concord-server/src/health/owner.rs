//! Probed checks (http, tcp, grpc): which ones this node runs, and turning damped
//! probe results into logged status changes.
//!
//! Every node computes the same owner for each check by rendezvous hashing of the
//! check's name over the members it sees alive, so the checks spread evenly and
//! only the dead node's share moves when a node dies. Each owner keeps a damper
//! per check, seeded from the logged status, and proposes a change (guarded by
//! the status it expects) only when the damper says so.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use concord_api::registry::{CheckSpec, CheckType, HealthStatus};
use concord_state::{Command, InstanceRecord, InstanceRef, StateMachine};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::CheckKey;
use crate::checks::{
    CheckHealth, Damper, ProbeRunner, ProbeTarget, RunnerConfig, Scheduled, Thresholds,
};
use crate::metrics::ProbeLabels;
use crate::node::SharedNode;

/// How often ownership and the probe set are recomputed from state.
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// A proposed change not yet seen in state is trusted this long before the
/// damper is re-seeded from the log.
const PROPOSAL_GRACE: Duration = Duration::from_secs(10);

/// The node that owns `check_name` among `live`: the highest hash of (name, node).
pub(crate) fn owner(check_name: &str, live: &BTreeSet<u64>) -> Option<u64> {
    live.iter()
        .copied()
        .max_by_key(|id| (score(check_name, *id), *id))
}

/// FNV-1a of the name, mixed with the node id (splitmix64): stable across
/// processes and builds, unlike std's hasher.
fn score(name: &str, node: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ node.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The name a check is hashed and scheduled under.
fn check_name(at: &InstanceRef, check: &str) -> String {
    format!("{}/{}/{}/{check}", at.namespace, at.service, at.id)
}

/// What the probe of `spec` does; `None` for TTL checks (nothing to probe).
fn target(spec: &CheckSpec) -> Option<ProbeTarget> {
    match spec.kind {
        CheckType::Http => Some(ProbeTarget::Http {
            url: spec.url.clone()?,
            method: spec.method.clone().unwrap_or_else(|| "GET".to_owned()),
            expect: spec
                .expect_status
                .as_deref()
                .and_then(|e| e.parse().ok())
                .unwrap_or_default(),
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        CheckType::Tcp => Some(ProbeTarget::Tcp {
            address: spec.address.clone()?,
        }),
        CheckType::Grpc => Some(ProbeTarget::Grpc {
            address: spec.address.clone()?,
            service: spec.service.clone().unwrap_or_default(),
        }),
        CheckType::Ttl => None,
    }
}

fn to_health(status: HealthStatus) -> CheckHealth {
    match status {
        HealthStatus::Passing => CheckHealth::Passing,
        HealthStatus::Warning => CheckHealth::Warning,
        HealthStatus::Critical | HealthStatus::Maintenance => CheckHealth::Critical,
    }
}

fn to_status(health: CheckHealth) -> HealthStatus {
    match health {
        CheckHealth::Passing => HealthStatus::Passing,
        CheckHealth::Warning => HealthStatus::Warning,
        CheckHealth::Critical => HealthStatus::Critical,
    }
}

/// One owned check as the log has it.
struct Owned {
    key: CheckKey,
    kind: CheckType,
    /// `None` while the check has no result yet.
    logged: Option<HealthStatus>,
    thresholds: Thresholds,
    scheduled: Scheduled,
}

/// The probed checks this node owns, by name.
fn owned_checks(state: &StateMachine, me: u64, live: &BTreeSet<u64>) -> HashMap<String, Owned> {
    let mut out = HashMap::new();
    for (at, record) in state.instances_with_health() {
        for spec in &record.health.checks {
            let Some(target) = target(spec) else { continue };
            let name = check_name(&at, &spec.id);
            if owner(&name, live) != Some(me) {
                continue;
            }
            out.insert(
                name,
                Owned {
                    key: (at.clone(), spec.id.clone()),
                    kind: spec.kind,
                    logged: logged_status(record, &spec.id),
                    thresholds: thresholds(record),
                    scheduled: Scheduled {
                        target,
                        interval: Duration::from_secs(u64::from(spec.interval_secs())),
                        timeout: Duration::from_millis(u64::from(spec.timeout_ms())),
                    },
                },
            );
        }
    }
    out
}

fn logged_status(record: &InstanceRecord, check: &str) -> Option<HealthStatus> {
    if record.unchecked.contains(check) {
        return None;
    }
    record
        .instance
        .checks
        .iter()
        .find(|c| c.id == check)
        .map(|c| c.status)
}

fn thresholds(record: &InstanceRecord) -> Thresholds {
    let nz = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
    Thresholds {
        healthy: nz(record.health.healthy_threshold),
        unhealthy: nz(record.health.unhealthy_threshold),
    }
}

/// A damper per owned check, and whether a change it asked for is in flight.
struct Tracked {
    key: CheckKey,
    kind: CheckType,
    damper: Damper,
    thresholds: Thresholds,
    proposed_at: Option<Instant>,
}

/// Runs this node's share of the probed checks until `shutdown` flips.
pub(crate) async fn run(node: SharedNode, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut results) = mpsc::channel(4096);
    let runner = match ProbeRunner::new(RunnerConfig::default(), tx) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "health checks disabled: cannot build the probe HTTP client");
            return;
        }
    };
    let me = node.raft.node_id();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut sync = tokio::time::interval(SYNC_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { return },
            _ = sync.tick() => {
                let live = node.raft.live_members();
                let owned = owned_checks(&node.state(), me, &live);
                reconcile(&mut tracked, &owned);
                runner.set(owned.into_iter().map(|(name, o)| (name, o.scheduled)).collect());
            }
            Some((name, result, latency)) = results.recv() => {
                let Some(t) = tracked.get_mut(&name) else { continue };
                node.metrics
                    .probe_latency
                    .get_or_create(&ProbeLabels { check_type: kind_name(t.kind).to_owned() })
                    .observe(latency.as_secs_f64());
                let expected = t.damper.current().map(to_status);
                if let Some(new) = t.damper.observe(result.status) {
                    t.proposed_at = Some(Instant::now());
                    let (at, check) = t.key.clone();
                    let cmd = Command::CheckStatus {
                        at,
                        check,
                        status: to_status(new),
                        output: result.output,
                        expected,
                    };
                    let node = node.clone();
                    tokio::spawn(async move { propose(node, cmd).await });
                }
            }
        }
    }
}

/// Keeps a damper per owned check, re-seeding it when the log disagrees with it
/// (another owner changed the status, or a proposal was lost).
fn reconcile(tracked: &mut HashMap<String, Tracked>, owned: &HashMap<String, Owned>) {
    tracked.retain(|name, _| owned.contains_key(name));
    for (name, o) in owned {
        let fresh = || Tracked {
            key: o.key.clone(),
            kind: o.kind,
            damper: Damper::new(o.logged.map(to_health), o.thresholds),
            thresholds: o.thresholds,
            proposed_at: None,
        };
        match tracked.get_mut(name) {
            None => {
                tracked.insert(name.clone(), fresh());
            }
            Some(t) => {
                let agrees = t.damper.current().map(to_status) == o.logged;
                let waiting = t.proposed_at.is_some_and(|p| p.elapsed() < PROPOSAL_GRACE);
                if t.thresholds != o.thresholds || (!agrees && !waiting) {
                    *t = fresh();
                } else if agrees {
                    t.proposed_at = None;
                }
            }
        }
    }
}

async fn propose(node: SharedNode, cmd: Command) {
    let Command::CheckStatus {
        at, check, status, ..
    } = &cmd
    else {
        return;
    };
    let (at, check, status) = (at.clone(), check.clone(), *status);
    match node.write(cmd).await {
        Ok(_) => {
            node.metrics.observe_transition(status);
            debug!(instance = %at, check, status = status.as_str(), "check status changed");
        }
        Err(e) => {
            warn!(instance = %at, check, error = %e.message, "could not record a check status")
        }
    }
}

fn kind_name(kind: CheckType) -> &'static str {
    match kind {
        CheckType::Http => "http",
        CheckType::Tcp => "tcp",
        CheckType::Grpc => "grpc",
        CheckType::Ttl => "ttl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_stable_and_only_the_dead_nodes_share_moves() {
        let all = BTreeSet::from([1, 2, 3]);
        let without_2 = BTreeSet::from([1, 3]);
        let names: Vec<String> = (0..600).map(|i| format!("default/web/{i}/http")).collect();
        let mut per_node = HashMap::new();
        for n in &names {
            let before = owner(n, &all).expect("owner");
            *per_node.entry(before).or_insert(0) += 1;
            let after = owner(n, &without_2).expect("owner");
            if before != 2 {
                assert_eq!(before, after, "{n} moved although its owner lives");
            } else {
                assert_ne!(after, 2);
            }
        }
        for id in [1, 2, 3] {
            let share = per_node[&id];
            assert!(
                (120..=280).contains(&share),
                "node {id} owns {share} of 600"
            );
        }
        assert_eq!(owner("x", &BTreeSet::new()), None);
    }
}
