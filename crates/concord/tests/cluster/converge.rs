//! Bringing a healed cluster to one final state: a marker write after the
//! clients stop, every node applying it, and the keys as each node lists them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::verify;
use crate::workload::PREFIX;

/// The key written last, after the clients stop: every node and stream must reach it.
const MARKER_KEY: &str = "lin/marker";
/// The marker's value (the only value no client writes).
pub const MARKER_VALUE: &str = "end";
/// Deadline for the cluster to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Short requests for the checks (a healthy cluster answers at once).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// Writes the marker through the leader, retrying until acknowledged; returns its revision.
pub async fn put_marker(c: &Cluster) -> u64 {
    let deadline = Instant::now() + SETTLE;
    let http = http();
    loop {
        let leader = c.leader(SETTLE).await;
        let url = c.node(leader).url(&format!("/v1/kv/{MARKER_KEY}"));
        if let Ok(r) = http.put(url).body(MARKER_VALUE).send().await
            && r.status() == 200
            && let Ok(body) = r.json::<Value>().await
            && let Some(rev) = body["revision"].as_u64()
        {
            return rev;
        }
        assert!(
            Instant::now() < deadline,
            "the marker write never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node has applied at least `marker` and all report the same
/// revision; returns it.
async fn converged_revision(c: &Cluster, marker: u64) -> u64 {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut revs = Vec::new();
        for id in c.ids() {
            revs.push(
                c.status(id)
                    .await
                    .and_then(|s| s["revision"].as_u64())
                    .unwrap_or(0),
            );
        }
        let first = revs[0];
        if first >= marker && revs.iter().all(|&r| r == first) {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge on revision >= {marker}: {revs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workload's keys and values as a node lists them, and at which revision.
async fn listing(
    http: &reqwest::Client,
    url: &str,
) -> Result<(u64, BTreeMap<String, String>), String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("status {}", r.status()));
    }
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    let rev = body["revision"].as_u64().ok_or("no revision")?;
    let items = body["items"].as_array().ok_or("no items")?;
    let state = items
        .iter()
        .filter_map(|i| {
            Some((
                i["key"].as_str()?.to_owned(),
                i["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok((rev, state))
}

/// The final state as every node (stale read) and the leader (linearizable
/// read) list it, all at one revision.
pub struct FinalListings {
    pub revision: u64,
    states: Vec<(String, BTreeMap<String, String>)>,
    /// Writes that landed after the cluster had converged: unknown-outcome
    /// requests still in flight somewhere. Legal; the listing is taken again.
    pub late_writes: usize,
    errors: Vec<String>,
}

impl FinalListings {
    /// Every listing must be the same, and the one the history leads to.
    pub fn problems(&self, reference: &verify::Reference) -> Vec<String> {
        let mut problems = self.errors.clone();
        let expected = reference.final_state();
        let Some((first_who, first)) = self.states.first() else {
            return problems;
        };
        for (who, state) in &self.states {
            if state != first {
                problems.push(format!(
                    "{who}: final state {state:?} differs from {first_who}'s {first:?}"
                ));
            }
        }
        if let Some(exp) = expected
            && &exp != first
        {
            problems.push(format!(
                "final state {first:?} is not what the history leads to: {exp:?}"
            ));
        }
        problems
    }
}

/// Waits for convergence past `marker` and lists the keys on every node and on
/// the leader at that revision; retried if a late write moves the revision.
pub async fn final_listings(c: &Cluster, leader: u64, marker: u64) -> FinalListings {
    let http = http();
    let mut late_writes = 0;
    let mut reads = Vec::new();
    for n in c.nodes() {
        reads.push((
            format!("node {} (stale)", n.id),
            n.url(&format!("/v1/kv/{PREFIX}?prefix=true&consistency=stale")),
        ));
    }
    reads.push((
        format!("leader {leader} (linearizable)"),
        c.node(leader).url(&format!("/v1/kv/{PREFIX}?prefix=true")),
    ));
    loop {
        let revision = converged_revision(c, marker).await;
        let mut states = Vec::new();
        let mut errors = Vec::new();
        let mut moved = false;
        for (who, url) in &reads {
            match listing(&http, url).await {
                Err(e) => errors.push(format!("{who}: cannot list the keys: {e}")),
                Ok((rev, _)) if rev != revision => moved = true,
                Ok((_, state)) => states.push((who.clone(), state)),
            }
        }
        if !moved || late_writes >= 5 {
            if moved {
                errors.push(format!(
                    "the revision kept moving after convergence ({late_writes} times)"
                ));
            }
            return FinalListings {
                revision,
                states,
                late_writes,
                errors,
            };
        }
        late_writes += 1;
    }
}
