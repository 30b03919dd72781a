//! The fault-injection runs: start a cluster, run the workload and the watches,
//! inject faults round by round (each followed by healing and a calm spell),
//! then converge and check everything.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use concord_check::{Budget, Op, Verdict, check_register_with};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::Cluster;
use crate::converge::{MARKER_VALUE, SETTLE, final_listings, put_marker};
use crate::faults::Fault;
use crate::summary::{RoundLog, Summary, print_summary};
use crate::verify;
use crate::watches::{Watcher, fetch_history};
use crate::workload::{self, Config, PREFIX, Workload};

/// One run at a time: two clusters sharing two cores would starve each other's
/// elections, and the long variant must not overlap the short ones.
static SERIAL: Mutex<()> = Mutex::new(());

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
    /// `--snapshot-every`: small, so snapshots are taken, loaded on restart and
    /// installed on lagging followers during the run.
    snapshot_every: u64,
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
            snapshot_every: env_u64("CONCORD_FAULT_SNAPSHOT_EVERY", 500),
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

pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

/// `CONCORD_FAULT_SEED` or the clock; printed, so a run's choices can be replayed
/// (the interleavings, being real concurrency, cannot).
pub(crate) fn seed() -> u64 {
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

async fn run(plan: Plan) -> Outcome {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.workload.seed);
    eprintln!(
        "fault run: {} nodes, seed {} (CONCORD_FAULT_SEED)",
        plan.nodes, plan.workload.seed
    );
    let mut cluster = Cluster::start(plan.nodes, plan.snapshot_every).await;
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

    let log_index = match cluster.status(leader).await {
        Some(st) => st["commit_index"].as_u64().unwrap_or(0),
        None => 0,
    };
    print_summary(Summary {
        nodes: plan.nodes,
        snapshot_every: plan.snapshot_every,
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
        log_index,
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
