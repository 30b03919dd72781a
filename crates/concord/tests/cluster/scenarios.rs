//! The fault-injection runs: start a cluster, run the workload and the watches,
//! inject faults round by round (each followed by healing and a calm spell),
//! then converge and check everything.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use concord_check::{Budget, Op, Verdict, check_register_with};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::faults::Fault;
use crate::verify;
use crate::watches::{Watcher, fetch_history};
use crate::workload::{self, ClientLog, Config, PREFIX, Workload};

/// One run at a time: two clusters sharing two cores would starve each other's
/// elections, and the long variant must not overlap the short ones.
static SERIAL: Mutex<()> = Mutex::new(());

/// The key written last, after the clients stop: every node and stream must reach it.
const MARKER_KEY: &str = "lin/marker";
const MARKER_VALUE: &str = "end";
/// Deadline for the cluster to settle after a heal.
const SETTLE: Duration = Duration::from_secs(60);

/// Which faults, and for how long.
#[derive(Debug, Clone)]
enum Rounds {
    /// Each of these once, in order.
    Each(Vec<Fault>),
    /// Random faults until this much time has passed.
    For(Duration),
}

#[derive(Debug, Clone)]
struct Plan {
    nodes: u64,
    rounds: Rounds,
    /// How long each fault lasts, under load.
    fault: Duration,
    /// Load on the healed cluster after each round.
    calm: Duration,
    /// Rounds per key epoch (fresh keys keep per-key histories short).
    rounds_per_epoch: usize,
    workload: Config,
}

impl Plan {
    /// The CI variant: every fault kind once, a few seconds each.
    fn short(nodes: u64) -> Plan {
        Plan {
            nodes,
            rounds: Rounds::Each(Fault::ALL.to_vec()),
            fault: Duration::from_secs(3),
            calm: Duration::from_secs(2),
            rounds_per_epoch: 4,
            workload: Config {
                clients: 6,
                keys: 4,
                request_timeout: Duration::from_millis(2500),
                think_ms: (10, 30),
                max_ops_per_client: 5000,
                stale_reads: false,
                seed: seed(),
            },
        }
    }

    /// The long variant: `CONCORD_FAULT_SECS` (default 600) of random faults on
    /// `CONCORD_FAULT_NODES` (3 or 5, default 3) nodes.
    fn long() -> Plan {
        let secs = env_u64("CONCORD_FAULT_SECS", 600);
        let nodes = env_u64("CONCORD_FAULT_NODES", 3);
        assert!(
            nodes == 3 || nodes == 5,
            "CONCORD_FAULT_NODES must be 3 or 5"
        );
        let mut plan = Plan::short(nodes);
        plan.rounds = Rounds::For(Duration::from_secs(secs));
        plan.workload.max_ops_per_client = usize::MAX;
        plan
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

/// `CONCORD_FAULT_SEED` or the clock; printed, so a run's choices can be replayed
/// (the interleavings, being real concurrency, cannot).
fn seed() -> u64 {
    std::env::var("CONCORD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Runs a plan on its own runtime, one plan at a time.
fn run_serial(plan: Plan) -> Outcome {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(plan))
}

/// What a run found.
struct Outcome {
    seed: u64,
    /// Everything that went wrong, linearizability included.
    problems: Vec<String>,
    verdict: Verdict,
}

impl Outcome {
    fn assert_clean(&self) {
        assert!(
            self.problems.is_empty(),
            "{} problem(s) (seed {}):\n{}",
            self.problems.len(),
            self.seed,
            self.problems.join("\n")
        );
    }
}

#[test]
fn three_nodes_faults_short() {
    run_serial(Plan::short(3)).assert_clean();
}

#[test]
fn five_nodes_faults_short() {
    run_serial(Plan::short(5)).assert_clean();
}

/// The long variant; see the crate docs for how to run it.
#[test]
#[ignore = "long: run with --ignored, CONCORD_FAULT_SECS and CONCORD_FAULT_NODES"]
fn faults_long() {
    run_serial(Plan::long()).assert_clean();
}

/// The suite's own mutation test: clients that read with `consistency=stale`
/// while leaders are isolated and paused must be caught reading stale values.
/// Ignored because whether a stale read happens is up to timing (it did in
/// every run so far); run it after changing the harness or the checker.
#[test]
#[ignore = "probabilistic self-test of the suite; run after changing the harness"]
fn stale_reads_are_caught() {
    let mut plan = Plan::short(3);
    plan.rounds = Rounds::Each(vec![
        Fault::IsolateLeader,
        Fault::PauseLeader,
        Fault::IsolateLeader,
        Fault::LeaderOutboundCut,
    ]);
    plan.workload.stale_reads = true;
    let outcome = run_serial(plan);
    assert!(
        matches!(outcome.verdict, Verdict::NotLinearizable { .. }),
        "stale reads went unnoticed: {:?}",
        outcome.verdict
    );
}

/// What a round did, for the summary.
struct RoundLog {
    fault: String,
    leader_before: u64,
    leader_during: Option<u64>,
    leader_after: u64,
    settle: Duration,
}

async fn run(plan: Plan) -> Outcome {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.workload.seed);
    eprintln!(
        "fault run: {} nodes, seed {} (CONCORD_FAULT_SEED)",
        plan.nodes, plan.workload.seed
    );
    let mut cluster = Cluster::start(plan.nodes).await;
    let first_leader = cluster.leader(Duration::from_secs(30)).await;
    wait_links_used(&cluster, first_leader).await;
    let nodes: Vec<(u64, String)> = cluster.nodes().map(|n| (n.id, n.url(""))).collect();

    let mut watchers: Vec<Watcher> = cluster
        .ids()
        .into_iter()
        .map(|id| Watcher::start(id, nodes.clone(), PREFIX))
        .collect();
    let load = Workload::start(nodes.clone(), plan.workload.clone());

    let mut rounds = Vec::new();
    let deadline = match &plan.rounds {
        Rounds::For(d) => Some(Instant::now() + *d),
        Rounds::Each(_) => None,
    };
    let mut i = 0;
    loop {
        let fault = match (&plan.rounds, deadline) {
            (Rounds::Each(list), _) => match list.get(i) {
                Some(f) => *f,
                None => break,
            },
            (Rounds::For(_), Some(d)) if Instant::now() < d => {
                *Fault::ALL.choose(&mut rng).expect("faults")
            }
            _ => break,
        };
        let leader_before = cluster.leader(SETTLE).await;
        let fault_desc = fault.inject(&mut cluster, leader_before);
        let hold = if matches!(plan.rounds, Rounds::For(_)) {
            plan.fault.mul_f64(rng.random_range(0.5..2.0))
        } else {
            plan.fault
        };
        // The fault's duration, with the load running: not a wait for anything.
        tokio::time::sleep(hold).await;
        let leader_during = cluster.majority_leader().await;
        cluster.heal_all();
        let healed = Instant::now();
        let leader_after = cluster.wait_all_agree(SETTLE).await;
        let settle = healed.elapsed();
        tokio::time::sleep(plan.calm).await;
        rounds.push(RoundLog {
            fault: fault_desc,
            leader_before,
            leader_during,
            leader_after,
            settle,
        });
        i += 1;
        if i % plan.rounds_per_epoch == 0 {
            load.next_epoch();
        }
    }
    let load_time = load.started.elapsed();
    let logs = load.stop().await;

    // Converge: everyone up, one leader, a marker write everyone must apply.
    cluster.heal_all();
    let leader = cluster.wait_all_agree(SETTLE).await;
    let marker = put_marker(&cluster).await;
    let mut problems = Vec::new();
    let finals = final_listings(&cluster, leader, marker).await;
    let until = finals.revision;
    for w in &mut watchers {
        if !w.wait_for(until, SETTLE).await {
            problems.push(format!("a watch stream never reached revision {until}"));
        }
    }
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(w.stop().await);
    }

    let mut histories = Vec::new();
    for n in cluster.nodes() {
        match fetch_history(n.id, &n.url(""), PREFIX, until, SETTLE).await {
            Ok(h) => histories.push(h),
            Err(e) => problems.push(format!("cannot read the history: {e}")),
        }
    }
    let (reference, p) = verify::merge_histories(&histories, until);
    problems.extend(p);
    for s in &streams {
        problems.extend(verify::stream_problems(&reference, s));
    }
    let (p, acked_checked) = verify::acked_write_problems(&reference, &logs);
    problems.extend(p);
    problems.extend(verify::phantom_problems(&reference, &logs, MARKER_VALUE));
    problems.extend(workload::revisions_going_backwards(&logs));
    // `no_leader` promises the write was not applied (safe to retry elsewhere).
    for (why, u) in verify::applied_unknowns(&reference, &logs) {
        if why.contains("no_leader") && u.applied > 0 {
            problems.push(format!(
                "{} of {} writes answered {why} were applied anyway (e.g. {:?}): a client retrying them writes twice",
                u.applied, u.total, u.applied_example
            ));
        }
    }
    problems.extend(finals.problems(&reference));

    let history: Vec<Op> = logs
        .iter()
        .flat_map(|l| l.records.iter().map(|r| r.op.clone()))
        .collect();
    let report = check_register_with(&history, Budget::default()).expect("well-formed history");
    match &report.verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, explanation } => {
            problems.push(format!("NOT LINEARIZABLE on {key}: {explanation}"))
        }
        Verdict::Unknown { key, reason } => problems.push(format!(
            "linearizability of {key} undecided: {reason} (shrink the workload or raise the budget)"
        )),
    }

    print_summary(Summary {
        plan: &plan,
        rounds: &rounds,
        logs: &logs,
        streams: &streams,
        reference: &reference,
        acked_checked,
        report: &report,
        load_time,
        total: started.elapsed(),
        unused_links: cluster.unused_links(),
        late_writes: finals.late_writes,
    });
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    if !problems.is_empty() {
        cluster.report_failure();
    }
    Outcome {
        seed: plan.workload.seed,
        problems,
        verdict: report.verdict,
    }
}

/// The leader heartbeats every follower, so each of its outgoing links must
/// carry a connection soon: proof that `--peer-route` sends Raft traffic
/// through the proxies and a cut is a real partition.
async fn wait_links_used(c: &Cluster, leader: u64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let unused: Vec<_> = c
            .unused_links()
            .into_iter()
            .filter(|(from, _)| *from == leader)
            .collect();
        if unused.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leader {leader} never dialed through the proxies {unused:?}: is --peer-route honoured?"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// Writes the marker through the leader, retrying until acknowledged; returns its revision.
async fn put_marker(c: &Cluster) -> u64 {
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
struct FinalListings {
    revision: u64,
    states: Vec<(String, BTreeMap<String, String>)>,
    /// Writes that landed after the cluster had converged: unknown-outcome
    /// requests still in flight somewhere. Legal; the listing is taken again.
    late_writes: usize,
    errors: Vec<String>,
}

impl FinalListings {
    /// Every listing must be the same, and the one the history leads to.
    fn problems(&self, reference: &verify::Reference) -> Vec<String> {
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
async fn final_listings(c: &Cluster, leader: u64, marker: u64) -> FinalListings {
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

struct Summary<'a> {
    plan: &'a Plan,
    rounds: &'a [RoundLog],
    logs: &'a [ClientLog],
    streams: &'a [crate::watches::StreamLog],
    reference: &'a verify::Reference,
    acked_checked: usize,
    report: &'a concord_check::Report,
    load_time: Duration,
    total: Duration,
    unused_links: Vec<(u64, u64)>,
    late_writes: usize,
}

fn print_summary(s: Summary<'_>) {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in s.logs.iter().flat_map(|l| &l.records) {
        let what = match (&r.op.call, r.op.completion.as_ref().map(|c| &c.ret)) {
            (concord_check::Call::Get, _) => "get",
            (concord_check::Call::Put { .. }, Some(_)) => "put acked",
            (concord_check::Call::Put { .. }, None) => "put unknown",
            (_, Some(concord_check::Ret::Swapped(true))) => "cas swapped",
            (_, Some(_)) => "cas not swapped",
            (_, None) => "cas unknown",
        };
        *counts.entry(what).or_default() += 1;
    }
    let total: u64 = counts.values().sum();
    let not_sent: u64 = s.logs.iter().map(|l| l.not_sent).sum();
    let dropped: u64 = s.logs.iter().map(|l| l.dropped_reads).sum();
    let mut reasons: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for l in s.logs {
        for (k, (n, msg)) in &l.unknown_reasons {
            let e = reasons.entry(k.as_str()).or_insert((0, msg.as_str()));
            e.0 += n;
        }
    }
    eprintln!("==== fault run summary ({} nodes) ====", s.plan.nodes);
    for (i, r) in s.rounds.iter().enumerate() {
        eprintln!(
            "round {i}: {} | leader {} -> during {:?} -> after {} | settled in {:?}",
            r.fault, r.leader_before, r.leader_during, r.leader_after, r.settle
        );
    }
    eprintln!(
        "ops: {total} recorded {counts:?}; {not_sent} writes not sent (connect failed), {dropped} reads without answer; {} late writes after convergence",
        s.late_writes
    );
    eprintln!(
        "unknown outcomes by reason: count, how many the history shows applied, first message:"
    );
    let applied = verify::applied_unknowns(s.reference, s.logs);
    for (why, (n, msg)) in &reasons {
        match applied.get(*why) {
            Some(u) if u.applied > 0 => eprintln!(
                "  {why}: {n}, {} applied, e.g. {:?} (first: {msg:?})",
                u.applied,
                u.applied_example.as_deref().unwrap_or_default()
            ),
            _ => eprintln!("  {why}: {n}, none applied (first: {msg:?})"),
        }
    }
    eprintln!(
        "history: {} events through revision {} (complete after {}); {} acknowledged writes found in it",
        s.reference
            .by_revision
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        s.reference.until,
        s.reference.after,
        s.acked_checked
    );
    for st in s.streams {
        eprintln!(
            "watch on node {}: {} segment(s), {} events, connections {:?}, breaks {:?}",
            st.home,
            st.segments.len(),
            st.segments.iter().map(|g| g.changes.len()).sum::<usize>(),
            st.connections,
            st.breaks
        );
    }
    eprintln!(
        "checker: {:?} on {} keys, {} ops, {} steps, {:?}",
        s.report.verdict.is_linearizable(),
        s.report.keys,
        s.report.ops,
        s.report.steps,
        s.report.elapsed
    );
    eprintln!("links never used: {:?}", s.unused_links);
    eprintln!("time: {:?} under load, {:?} in total", s.load_time, s.total);
}
