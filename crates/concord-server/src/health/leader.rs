//! The leader's health loop: fails TTL checks that were not updated in time and
//! reaps instances that stayed critical past `deregister_critical_after_secs`.

use std::time::{Duration, Instant};

use concord_api::registry::{CheckType, HealthStatus};
use concord_state::{Command, InstanceRef, StateMachine};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{CheckKey, secs};
use crate::node::SharedNode;

/// How often the leader looks for expired TTL checks and instances to reap.
const TICK: Duration = Duration::from_millis(500);

/// Runs until `shutdown` flips.
pub(crate) async fn run(node: SharedNode, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let leading = node.leading_term();
        let (ttl, critical) = {
            let state = node.state();
            (ttl_checks(&state), critical_instances(&state))
        };
        let now = Instant::now();
        for key in node.health.ttl.due(leading, ttl, now) {
            let node = node.clone();
            tokio::spawn(async move { expire_ttl(node, key).await });
        }
        for key in node.health.critical.due(leading, critical, now) {
            let node = node.clone();
            tokio::spawn(async move { reap(node, key).await });
        }
    }
}

/// Every TTL check that is not critical yet, with its TTL.
fn ttl_checks(state: &StateMachine) -> Vec<(CheckKey, Duration)> {
    let mut out = Vec::new();
    for (at, record) in state.instances_with_health() {
        for (spec, check) in record.health.checks.iter().zip(&record.instance.checks) {
            if spec.kind == CheckType::Ttl
                && check.status != HealthStatus::Critical
                && let Some(ttl) = spec.ttl_secs
            {
                out.push(((at.clone(), spec.id.clone()), secs(ttl)));
            }
        }
    }
    out
}

/// Every critical instance that asks to be reaped, keyed by when its spell began.
fn critical_instances(state: &StateMachine) -> Vec<((InstanceRef, u64), Duration)> {
    state
        .instances_with_health()
        .filter(|(_, r)| r.instance.status == HealthStatus::Critical)
        .filter_map(|(at, r)| {
            let after = r.health.deregister_critical_after_secs?;
            Some(((at, r.status_revision), secs(after)))
        })
        .collect()
}

async fn expire_ttl(node: SharedNode, key: CheckKey) {
    let (at, check) = key.clone();
    let current = node
        .state()
        .instance(&at.namespace, &at.service, &at.id)
        .and_then(|r| r.instance.checks.iter().find(|c| c.id == check))
        .map(|c| c.status);
    let Some(current) = current else {
        return;
    };
    let cmd = Command::CheckStatus {
        at: at.clone(),
        check: check.clone(),
        status: HealthStatus::Critical,
        output: "TTL expired: no update within ttl_secs".to_owned(),
        expected: Some(current),
    };
    match node.write(cmd).await {
        Ok(_) => {
            node.metrics.observe_transition(HealthStatus::Critical);
            debug!(instance = %at, check, "TTL check expired");
        }
        Err(e) => {
            node.health.ttl.retry(&key);
            warn!(instance = %at, check, error = %e.message, "could not fail an expired TTL check");
        }
    }
}

async fn reap(node: SharedNode, key: (InstanceRef, u64)) {
    let (at, since) = key.clone();
    match node
        .write(Command::ReapCritical {
            at: at.clone(),
            since,
        })
        .await
    {
        Ok(_) => debug!(instance = %at, "reaped an instance critical for too long"),
        Err(e) => {
            node.health.critical.retry(&key);
            warn!(instance = %at, error = %e.message, "could not reap a critical instance");
        }
    }
}
