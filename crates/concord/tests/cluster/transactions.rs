//! Sagas under crashes: the coordinator must neither lose, nor stall, nor
//! double-apply a transaction when leaders die in the middle of one.
//!
//! Two SQLite ledgers ([`ledger`], behind the SDK's barrier) are the
//! participants: bank A with accounts a0..a4 and bank B with b0..b4, 1000 each.
//! Clients send transfer sagas with their own ids to random nodes: debit one
//! bank, credit the other (each step compensated by the opposite delta). Some
//! debit more than all the money there is, so the first step is refused and the
//! saga aborts; some add a third step that is refused after two took effect, so
//! compensation runs. A client that gets no answer sends the same id again.
//!
//! Meanwhile the rounds ([`Round`]): `kill -9` of the leader at a random moment
//! and a restart; and fault points, where every node restarts with
//! `CONCORD_FAULT_POINTS=<point>:<n>` (`txn.before_call`, `txn.after_call`,
//! `txn.after_advance`), so whichever node leads aborts at exactly that persisted
//! transition, and every node that died restarts without the variable.
//!
//! After healing, every transaction the cluster acknowledged must exist and end
//! `succeeded` or `aborted`; the refused ones must abort; the participants must
//! have seen each action of a succeeded saga take effect exactly once and no
//! compensation, and in an aborted one each action that took effect compensated
//! exactly once; every balance must be what the succeeded sagas make it (so the
//! money adds up); and every node, read with `consistency=stale`, must report the
//! same view of a sample of transactions.
//!
//! The short run (`transactions_crash_short`: three leader kills, then each fault
//! point once) takes about a minute. The long run mixes both kinds at random:
//!
//! ```text
//! CONCORD_FAULT_SECS=1800 CONCORD_FAULT_NODES=5 \
//!   cargo test -p concord --test cluster transactions_crash_long -- --ignored --nocapture
//! ```
//!
//! `CONCORD_FAULT_SECS` (default 600) and `CONCORD_FAULT_NODES` (3 or 5,
//! default 3) size it; `CONCORD_FAULT_SEED` fixes the random choices,
//! `CONCORD_FAULT_SNAPSHOT_EVERY` (default 500) sets `--snapshot-every` and
//! `CONCORD_KEEP_CLUSTER=1` keeps the nodes' logs and data of a failed run, as
//! for the other runs of this suite.

#[path = "../common/ledger.rs"]
#[allow(dead_code)] // the scripted misbehaviour is for the `it` suite
mod ledger;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::converge::{SETTLE, put_marker};
use crate::scenarios::{env_u64, seed};
use ledger::Ledger;

/// The server's fault-point variable (`concord-server/src/fault.rs`).
const FAULT_POINTS_ENV: &str = "CONCORD_FAULT_POINTS";
/// Every persisted transition of the driver that has a fault point.
const POINTS: [&str; 3] = ["txn.before_call", "txn.after_call", "txn.after_advance"];
const BANKS: [&str; 2] = ["a", "b"];
const ACCOUNTS: usize = 5;
const INITIAL_BALANCE: i64 = 1000;
/// Transfers move 1..=MAX_AMOUNT: small against the balances, so a compensation
/// (which may debit) is never refused for want of money.
const MAX_AMOUNT: i64 = 20;
/// More than all the money there is: a debit of this is always refused.
const HUGE: i64 = 1_000_000_000;
/// Per submission; a `wait` answer comes when the saga ends, a second or so.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a client keeps resending one id before calling its outcome unknown.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(45);
/// A fault-point round fails if no armed leader reaches its point in this long.
const POINT_LIMIT: Duration = Duration::from_secs(40);
/// After a fault-point death, how long to watch for the next armed leader's.
const CASCADE_WATCH: Duration = Duration::from_secs(2);
/// Longest a node that died at a fault point stays down waiting for another
/// leader (two dead nodes of three leave no majority).
const DOWN_AT_MOST: Duration = Duration::from_secs(3);
/// How long every transaction gets to end once the cluster is healed.
const DRAIN: Duration = Duration::from_secs(90);
/// Transactions whose views every node must agree on.
const SAMPLE: usize = 12;

/// One fault round.
#[derive(Debug, Clone, Copy)]
enum Round {
    /// `kill -9` the leader at a random moment, restart it.
    KillLeader,
    /// Restart every node with `CONCORD_FAULT_POINTS=point:n`.
    FaultPoint { point: &'static str, n: u64 },
}

impl Round {
    fn random(rng: &mut StdRng, max_n: u64) -> Round {
        if rng.random_bool(0.5) {
            Round::KillLeader
        } else {
            Round::FaultPoint {
                point: POINTS.choose(rng).expect("points"),
                n: rng.random_range(1..=max_n),
            }
        }
    }
}

enum Rounds {
    Each(Vec<Round>),
    For(Duration),
}

struct Plan {
    nodes: u64,
    rounds: Rounds,
    clients: u64,
    max_per_client: usize,
    snapshot_every: u64,
    seed: u64,
}

impl Plan {
    /// Three leader kills, then each fault point once with n in 1..=3.
    fn short() -> Plan {
        let seed = seed();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7478);
        let mut rounds = vec![Round::KillLeader; 3];
        rounds.extend(POINTS.map(|point| Round::FaultPoint {
            point,
            n: rng.random_range(1..=3),
        }));
        Plan {
            nodes: 3,
            rounds: Rounds::Each(rounds),
            clients: 4,
            max_per_client: 250,
            snapshot_every: env_u64("CONCORD_FAULT_SNAPSHOT_EVERY", 500),
            seed,
        }
    }

    fn long() -> Plan {
        let nodes = env_u64("CONCORD_FAULT_NODES", 3);
        assert!(
            nodes == 3 || nodes == 5,
            "CONCORD_FAULT_NODES must be 3 or 5"
        );
        Plan {
            nodes,
            rounds: Rounds::For(Duration::from_secs(env_u64("CONCORD_FAULT_SECS", 600))),
            max_per_client: 1_000_000,
            ..Plan::short()
        }
    }
}

#[test]
fn transactions_crash_short() {
    run_on_own_runtime(Plan::short());
}

/// The long variant; see the module docs for how to run it.
#[test]
#[ignore = "long: run with --ignored, CONCORD_FAULT_SECS and CONCORD_FAULT_NODES"]
fn transactions_crash_long() {
    run_on_own_runtime(Plan::long());
}

fn run_on_own_runtime(plan: Plan) {
    let seed = plan.seed;
    let problems = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(plan));
    assert!(
        problems.is_empty(),
        "{} problem(s) (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- the sagas ----

/// What a saga is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Debit one bank, credit the other.
    Transfer,
    /// The debit is refused: nothing takes effect.
    Refused,
    /// A transfer, then a refused third step: both effects are compensated.
    LateRefusal,
}

/// One step: `delta` to `account` of bank `bank`; its compensation is `-delta`.
#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    bank: usize,
    account: String,
    delta: i64,
}

#[derive(Debug, Clone)]
struct Saga {
    id: String,
    kind: Kind,
    steps: Vec<Step>,
    wait: bool,
}

impl Saga {
    fn random(rng: &mut StdRng, id: String) -> Saga {
        let from = rng.random_range(0..BANKS.len());
        let to = 1 - from;
        let account = |bank: usize, rng: &mut StdRng| {
            format!("{}{}", BANKS[bank], rng.random_range(0..ACCOUNTS))
        };
        let roll = rng.random_range(0..100);
        let kind = match roll {
            0..10 => Kind::Refused,
            10..20 => Kind::LateRefusal,
            _ => Kind::Transfer,
        };
        let x = if kind == Kind::Refused {
            HUGE
        } else {
            rng.random_range(1..=MAX_AMOUNT)
        };
        let mut steps = vec![
            Step {
                name: "debit",
                bank: from,
                account: account(from, rng),
                delta: -x,
            },
            Step {
                name: "credit",
                bank: to,
                account: account(to, rng),
                delta: x,
            },
        ];
        if kind == Kind::LateRefusal {
            let bank = rng.random_range(0..BANKS.len());
            steps.push(Step {
                name: "overdraw",
                bank,
                account: account(bank, rng),
                delta: -HUGE,
            });
        }
        Saga {
            id,
            kind,
            steps,
            wait: rng.random_bool(0.5),
        }
    }

    fn body(&self, banks: &[Ledger]) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let bank = &banks[s.bank];
                json!({
                    "name": s.name,
                    "action": bank.call(&s.account, s.delta),
                    "compensate": bank.call(&s.account, -s.delta),
                })
            })
            .collect();
        // Many attempts: every leader change restarts a running call as a new
        // attempt, and a compensation that ran out of them would be stuck.
        json!({
            "id": self.id,
            "mode": "saga",
            "wait": self.wait,
            "timeout_secs": 30,
            "step_timeout_ms": 3000,
            "retry": {"initial_backoff_ms": 50, "max_backoff_ms": 500, "max_attempts": 30},
            "steps": steps,
        })
    }
}

/// A saga as its client saw it.
#[derive(Debug)]
struct Submission {
    saga: Saga,
    /// Some answer said 200 or 202: the cluster owns it.
    acked: bool,
    /// Every answer, in order (`n2:202`, `n1:timeout`), for reports.
    answers: Vec<String>,
    /// An answer no retry can fix (e.g. 409: the same id with another body).
    refused: Option<String>,
}

// ---- the clients ----

struct Clients {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Submission>>>,
}

impl Clients {
    fn start(plan: &Plan, nodes: &[(u64, String)], banks: &Arc<Vec<Ledger>>) -> Clients {
        let (stop, stop_rx) = watch::channel(false);
        let nodes = Arc::new(nodes.to_vec());
        let tasks = (0..plan.clients)
            .map(|c| {
                let client = Client {
                    id: c,
                    nodes: nodes.clone(),
                    banks: banks.clone(),
                    http: reqwest::Client::builder()
                        .no_proxy()
                        .timeout(REQUEST_TIMEOUT)
                        .connect_timeout(Duration::from_secs(1))
                        .build()
                        .expect("http client"),
                    rng: StdRng::seed_from_u64(plan.seed.wrapping_mul(1000).wrapping_add(c)),
                    max: plan.max_per_client,
                };
                tokio::spawn(client.run(stop_rx.clone()))
            })
            .collect();
        Clients { stop, tasks }
    }

    /// Stops the clients (each finishes the saga it is sending) and returns what
    /// they sent.
    async fn stop(self) -> Vec<Submission> {
        let _ = self.stop.send(true);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("client task"));
        }
        all
    }
}

struct Client {
    id: u64,
    nodes: Arc<Vec<(u64, String)>>,
    banks: Arc<Vec<Ledger>>,
    http: reqwest::Client,
    rng: StdRng,
    max: usize,
}

impl Client {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Vec<Submission> {
        let mut sent = Vec::new();
        while !*stop.borrow() && sent.len() < self.max {
            let saga = Saga::random(&mut self.rng, format!("c{}-{}", self.id, sent.len()));
            sent.push(self.submit(saga).await);
            let think = self.rng.random_range(10..=40);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(think)) => {}
                _ = stop.changed() => {}
            }
        }
        sent
    }

    /// Sends the saga to random nodes until one answers 200 or 202 (resending
    /// the same id is idempotent), or patience runs out.
    async fn submit(&mut self, saga: Saga) -> Submission {
        let body = saga.body(&self.banks);
        let mut sub = Submission {
            saga,
            acked: false,
            answers: Vec::new(),
            refused: None,
        };
        let give_up = Instant::now() + SUBMIT_PATIENCE;
        loop {
            let (node, base) = self.nodes.choose(&mut self.rng).expect("nodes").clone();
            let answer = match self
                .http
                .post(format!("{base}/v1/transactions"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    Ok((status, text))
                }
                Err(e) if e.is_connect() => Err("connect"),
                Err(e) if e.is_timeout() => Err("timeout"),
                Err(_) => Err("broken"),
            };
            match answer {
                Ok((status @ (200 | 202), _)) => {
                    sub.answers.push(format!("n{node}:{status}"));
                    sub.acked = true;
                    return sub;
                }
                Ok((status @ (400 | 409 | 413 | 422), text)) => {
                    sub.answers.push(format!("n{node}:{status}"));
                    sub.refused = Some(format!("n{node} answered {status}: {text}"));
                    return sub;
                }
                Ok((status, _)) => sub.answers.push(format!("n{node}:{status}")),
                Err(why) => sub.answers.push(format!("n{node}:{why}")),
            }
            if Instant::now() >= give_up {
                return sub;
            }
            // Pacing between resends, not a wait for anything.
            let pause = self.rng.random_range(50..=250);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

// ---- the faults ----

/// What a round did, for the summary.
struct RoundLog {
    what: String,
    /// Nodes that died, in order (fault points may take down several leaders).
    deaths: Vec<u64>,
    leader_after: u64,
    took: Duration,
}

/// Watches the processes for `pace`: a node that exits on its own is a crash (a
/// problem, with its log); it is restarted so the run goes on.
async fn watch_for(c: &mut Cluster, pace: Duration, problems: &mut Vec<String>) {
    let until = Instant::now() + pace;
    loop {
        reap_crashes(c, &BTreeSet::new(), problems);
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Restarts nodes that exited by themselves, other than `armed` ones.
fn reap_crashes(c: &mut Cluster, armed: &BTreeSet<u64>, problems: &mut Vec<String>) {
    for id in c.ids() {
        if !armed.contains(&id) && c.has_exited(id) {
            problems.push(format!(
                "node {id} exited on its own; its log ends with:\n{}",
                tail(&c.log_text(id), 20)
            ));
            c.kill9(id);
            c.restart(id);
        }
    }
}

/// Restarts (without fault points) the nodes in `down` once another node leads,
/// so that one takes over; or after [`DOWN_AT_MOST`], when the others may not
/// make a majority without them.
async fn restart_after_failover(c: &mut Cluster, down: &mut BTreeMap<u64, Instant>) {
    if down.is_empty() {
        return;
    }
    let led = c.majority_leader().await.is_some();
    for (id, since) in down.clone() {
        if led || since.elapsed() >= DOWN_AT_MOST {
            c.restart(id);
            down.remove(&id);
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn kill_leader(c: &mut Cluster, rng: &mut StdRng, problems: &mut Vec<String>) -> RoundLog {
    let started = Instant::now();
    watch_for(
        c,
        Duration::from_millis(rng.random_range(300..1500)),
        problems,
    )
    .await;
    let leader = c.leader(SETTLE).await;
    c.kill9(leader);
    // Down until another node leads: the new leader must take over its sagas.
    c.leader(SETTLE).await;
    watch_for(c, Duration::from_millis(rng.random_range(0..500)), problems).await;
    c.restart(leader);
    let leader_after = c.leader(SETTLE).await;
    watch_for(
        c,
        Duration::from_millis(rng.random_range(300..1000)),
        problems,
    )
    .await;
    RoundLog {
        what: format!("kill -9 leader {leader}"),
        deaths: vec![leader],
        leader_after,
        took: started.elapsed(),
    }
}

/// Restarts every node armed with `point:n`; restarts each one that dies
/// without the variable; disarms the survivors when no more die.
async fn fault_point(
    c: &mut Cluster,
    point: &'static str,
    n: u64,
    problems: &mut Vec<String>,
) -> RoundLog {
    let started = Instant::now();
    let spec = format!("{point}:{n}");
    let mut armed: BTreeSet<u64> = c.ids().into_iter().collect();
    let mut aborts_logged = BTreeMap::new();
    for &id in &armed {
        c.kill9(id);
        aborts_logged.insert(id, c.log_text(id).matches("fault point").count());
    }
    for &id in &armed {
        c.restart_with_env(id, &[(FAULT_POINTS_ENV, spec.as_str())]);
    }
    let mut deaths = Vec::new();
    let mut down: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut last_death: Option<Instant> = None;
    let limit = Instant::now() + POINT_LIMIT;
    loop {
        for id in armed.clone() {
            if !c.has_exited(id) {
                continue;
            }
            if c.log_text(id).matches("fault point").count() <= aborts_logged[&id] {
                problems.push(format!(
                    "node {id}, armed with {spec}, exited without reaching it; its log ends with:\n{}",
                    tail(&c.log_text(id), 20)
                ));
            }
            c.kill9(id);
            armed.remove(&id);
            deaths.push(id);
            down.insert(id, Instant::now());
            last_death = Some(Instant::now());
        }
        restart_after_failover(c, &mut down).await;
        reap_crashes(c, &armed, problems);
        let calm = last_death.is_some_and(|t| t.elapsed() >= CASCADE_WATCH);
        if down.is_empty() && (calm || armed.is_empty()) {
            break;
        }
        if Instant::now() >= limit {
            if deaths.is_empty() {
                problems.push(format!(
                    "no leader reached fault point {spec} within {POINT_LIMIT:?}"
                ));
            }
            for id in std::mem::take(&mut down).into_keys() {
                c.restart(id);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &id in &armed {
        c.kill9(id);
        c.restart(id);
    }
    let leader_after = c.leader(SETTLE).await;
    watch_for(c, Duration::from_millis(500), problems).await;
    RoundLog {
        what: format!("fault point {spec} on every node, disarmed {armed:?} after"),
        deaths,
        leader_after,
        took: started.elapsed(),
    }
}

// ---- the run ----

async fn run(plan: Plan) -> Vec<String> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    eprintln!(
        "transaction crash run: {} nodes, seed {} (CONCORD_FAULT_SEED)",
        plan.nodes, plan.seed
    );
    let banks = Arc::new(vec![start_bank(0).await, start_bank(1).await]);
    let mut cluster = Cluster::start(plan.nodes, plan.snapshot_every).await;
    let nodes: Vec<(u64, String)> = cluster.nodes().map(|n| (n.id, n.url(""))).collect();
    let clients = Clients::start(&plan, &nodes, &banks);

    let mut problems = Vec::new();
    let mut rounds = Vec::new();
    let deadline = match plan.rounds {
        Rounds::For(d) => Some(Instant::now() + d),
        Rounds::Each(_) => None,
    };
    for i in 0.. {
        let round = match (&plan.rounds, deadline) {
            (Rounds::Each(list), _) => match list.get(i) {
                Some(r) => *r,
                None => break,
            },
            (Rounds::For(_), Some(d)) if Instant::now() < d => Round::random(&mut rng, 5),
            _ => break,
        };
        let log = match round {
            Round::KillLeader => kill_leader(&mut cluster, &mut rng, &mut problems).await,
            Round::FaultPoint { point, n } => {
                fault_point(&mut cluster, point, n, &mut problems).await
            }
        };
        rounds.push(log);
    }
    let load_time = started.elapsed();
    let subs = clients.stop().await;

    cluster.heal_all();
    cluster.wait_all_agree(SETTLE).await;
    let marker = put_marker(&cluster).await;
    let views = drain(&cluster, &subs).await;
    problems.extend(check_outcomes(&subs, &views, &banks).await);
    problems.extend(check_views_agree(&cluster, marker, &views).await);
    for id in cluster.ids() {
        if cluster.log_text(id).contains("panicked at") {
            problems.push(format!("node {id} logged a panic"));
        }
    }

    print_summary(&rounds, &subs, &views, &banks, load_time, started.elapsed());
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    if !problems.is_empty() {
        cluster.report_failure();
    }
    problems
}

async fn start_bank(bank: usize) -> Ledger {
    let names: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("{}{i}", BANKS[bank]))
        .collect();
    let accounts: Vec<(&str, i64)> = names
        .iter()
        .map(|n| (n.as_str(), INITIAL_BALANCE))
        .collect();
    Ledger::start(&accounts).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// A transaction as a node reports it: `Ok(None)` when it does not exist.
async fn fetch_view(http: &reqwest::Client, url: String) -> Result<Option<Value>, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        200 => r.json().await.map(Some).map_err(|e| e.to_string()),
        404 => Ok(None),
        s => Err(format!("status {s}")),
    }
}

fn is_final(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("succeeded" | "aborted" | "resolved")
    )
}

/// Polls the leader until every submitted id is final or absent; returns the
/// last view of each (`None`: absent). Runs after the marker write, so no create
/// can still be on its way through the log; absent ids are looked up again on
/// every pass anyway, in case a relayed create was still in flight.
async fn drain(c: &Cluster, subs: &[Submission]) -> BTreeMap<String, Option<Value>> {
    let http = http();
    let start = Instant::now();
    let mut views: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let mut open: BTreeSet<&str> = subs.iter().map(|s| s.saga.id.as_str()).collect();
    loop {
        let leader = c.leader(SETTLE).await;
        for id in open.clone() {
            let url = c.node(leader).url(&format!("/v1/transactions/{id}"));
            match fetch_view(&http, url).await {
                Ok(Some(v)) => {
                    if is_final(&v) {
                        open.remove(id);
                    }
                    views.insert(id.to_owned(), Some(v));
                }
                Ok(None) => {
                    views.insert(id.to_owned(), None);
                }
                Err(_) => {}
            }
        }
        let unsettled = open.iter().any(|id| !matches!(views.get(*id), Some(None)));
        if !unsettled && start.elapsed() >= Duration::from_secs(2) {
            return views;
        }
        if start.elapsed() >= DRAIN {
            return views;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The history of a view, one line per entry, for reports.
fn history(view: &Value) -> String {
    let mut out = format!(
        "status {} reason {}\n",
        view["status"],
        view["reason"].as_str().unwrap_or("-")
    );
    for h in view["history"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "    {} {} {} #{} {} http={} err={}\n",
            h["at"].as_str().unwrap_or(""),
            h["step"].as_str().unwrap_or("-"),
            h["op"].as_str().unwrap_or(""),
            h["attempt"],
            h["outcome"].as_str().unwrap_or(""),
            h["http_status"],
            h["error"].as_str().unwrap_or("-"),
        ));
    }
    out
}

/// Calls each participant saw, by transaction: (step, op, attempt, outcome).
type Seen = BTreeMap<String, Vec<(String, String, u32, String)>>;

fn seen_by_txn(banks: &[Ledger]) -> Seen {
    let mut by: Seen = BTreeMap::new();
    for (b, bank) in banks.iter().enumerate() {
        for s in bank.seen() {
            by.entry(s.txn.clone()).or_default().push((
                format!("{}:{}", BANKS[b], s.step),
                s.op,
                s.attempt,
                s.outcome,
            ));
        }
    }
    by
}

/// (step, op) -> how many times it took effect.
fn effects(calls: &[(String, String, u32, String)]) -> BTreeMap<(String, String), u32> {
    let mut n = BTreeMap::new();
    for (step, op, _, outcome) in calls {
        if matches!(outcome.as_str(), "ran" | "lost_response") {
            *n.entry((step.clone(), op.clone())).or_default() += 1;
        }
    }
    n
}

async fn check_outcomes(
    subs: &[Submission],
    views: &BTreeMap<String, Option<Value>>,
    banks: &[Ledger],
) -> Vec<String> {
    let seen = seen_by_txn(banks);
    let mut problems = Vec::new();
    let mut expected: BTreeMap<(usize, String), i64> = BTreeMap::new();
    for sub in subs {
        let id = &sub.saga.id;
        let calls = seen.get(id).map(Vec::as_slice).unwrap_or_default();
        let trace = || {
            calls
                .iter()
                .map(|(s, op, a, o)| format!("{s}:{op}#{a}:{o}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Some(why) = &sub.refused {
            problems.push(format!("{id}: submission refused: {why}"));
        }
        let view = match views.get(id) {
            Some(Some(v)) => v,
            _ => {
                if sub.acked {
                    problems.push(format!(
                        "{id} LOST: acknowledged ({:?}) but not found",
                        sub.answers
                    ));
                } else if !calls.is_empty() {
                    problems.push(format!(
                        "{id}: not found, yet participants saw calls: {}",
                        trace()
                    ));
                }
                continue;
            }
        };
        let status = view["status"].as_str().unwrap_or("?");
        let want_abort = sub.saga.kind != Kind::Transfer;
        let wrong = match status {
            "succeeded" => want_abort.then_some("succeeded although a step must be refused"),
            "aborted" => None,
            _ => Some("did not end succeeded or aborted"),
        };
        let effect_problem = effect_problem(&sub.saga, status, &effects(calls));
        if let Some(why) = wrong.map(str::to_owned).or(effect_problem) {
            problems.push(format!(
                "{id} ({:?}, answers {:?}): {why}\n  participants: {}\n  history: {}",
                sub.saga.kind,
                sub.answers,
                trace(),
                history(view)
            ));
        }
        if status == "succeeded" {
            for s in &sub.saga.steps {
                *expected.entry((s.bank, s.account.clone())).or_default() += s.delta;
            }
        }
    }
    // Calls are at-least-once across leaders, but each attempt number is made
    // once: a new leader restarts a lost call as the next attempt.
    let mut attempts: BTreeMap<(String, String, String, u32), u32> = BTreeMap::new();
    for c in banks.iter().flat_map(Ledger::seen) {
        *attempts
            .entry((c.txn, c.step, c.op, c.attempt))
            .or_default() += 1;
    }
    for ((txn, step, op, attempt), n) in attempts {
        if n > 1 {
            let shown = match views.get(&txn) {
                Some(Some(v)) => history(v),
                _ => "not found".to_owned(),
            };
            let origin = banks.iter().flat_map(Ledger::seen).next().map(|c| c.at);
            let arrivals: Vec<String> = banks
                .iter()
                .flat_map(Ledger::seen)
                .filter(|c| c.txn == txn && c.step == step && c.op == op && c.attempt == attempt)
                .map(|c| {
                    format!(
                        "{} at +{:?} from {}",
                        c.outcome,
                        origin.map(|o| c.at - o),
                        c.from
                    )
                })
                .collect();
            let shown = format!("{shown}  arrivals: {arrivals:?}");
            problems.push(format!(
                "{txn}: {step} {op} attempt {attempt} was sent {n} times\n  history: {shown}"
            ));
        }
    }
    let sent: BTreeSet<&str> = subs.iter().map(|s| s.saga.id.as_str()).collect();
    for id in seen.keys() {
        if !sent.contains(id.as_str()) {
            problems.push(format!("participants saw calls of {id}, which nobody sent"));
        }
    }
    problems.extend(check_balances(banks, &expected).await);
    problems
}

/// Succeeded: each action took effect once, nothing compensated. Aborted: each
/// action that took effect was compensated exactly once.
fn effect_problem(
    saga: &Saga,
    status: &str,
    effects: &BTreeMap<(String, String), u32>,
) -> Option<String> {
    let count = |step: &Step, op: &str| {
        let key = (format!("{}:{}", BANKS[step.bank], step.name), op.to_owned());
        effects.get(&key).copied().unwrap_or(0)
    };
    let known: usize = saga
        .steps
        .iter()
        .map(|s| usize::from(count(s, "action") > 0) + usize::from(count(s, "compensate") > 0))
        .sum();
    let total_keys = effects.len();
    for s in &saga.steps {
        let (a, c) = (count(s, "action"), count(s, "compensate"));
        let bad = match status {
            "succeeded" => a != 1 || c != 0,
            _ => a > 1 || c != a,
        };
        if bad {
            return Some(format!(
                "{status} but step {} took effect {a}x and its compensation {c}x",
                s.name
            ));
        }
    }
    (known != total_keys).then(|| format!("effects on steps it does not have: {effects:?}"))
}

async fn check_balances(banks: &[Ledger], net: &BTreeMap<(usize, String), i64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut total = 0;
    for (b, bank) in banks.iter().enumerate() {
        for i in 0..ACCOUNTS {
            let account = format!("{}{i}", BANKS[b]);
            let want = INITIAL_BALANCE + net.get(&(b, account.clone())).copied().unwrap_or(0);
            let got = bank.balance(&account).await;
            if got != want {
                problems.push(format!(
                    "balance of {account} is {got}, the succeeded sagas make it {want}"
                ));
            }
        }
        total += bank.total().await;
    }
    let initial = INITIAL_BALANCE * (ACCOUNTS * BANKS.len()) as i64;
    if total != initial {
        problems.push(format!(
            "the banks hold {total} in all, {initial} at the start"
        ));
    }
    problems
}

/// Waits until every node has applied the marker and they report one revision.
async fn converged(c: &Cluster, marker: u64) -> Result<u64, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut revs = Vec::new();
        for id in c.ids() {
            let st = c.status(id).await;
            revs.push(st.and_then(|s| s["revision"].as_u64()).unwrap_or(0));
        }
        if revs[0] >= marker && revs.iter().all(|&r| r == revs[0]) {
            return Ok(revs[0]);
        }
        if Instant::now() >= deadline {
            return Err(format!("nodes did not converge past {marker}: {revs:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node, read with `consistency=stale` once converged, reports the same
/// view of a sample of final transactions as the leader's linearizable read.
async fn check_views_agree(
    c: &Cluster,
    marker: u64,
    views: &BTreeMap<String, Option<Value>>,
) -> Vec<String> {
    if let Err(e) = converged(c, marker).await {
        return vec![e];
    }
    let finals: Vec<(&String, &Value)> = views
        .iter()
        .filter_map(|(id, v)| v.as_ref().filter(|v| is_final(v)).map(|v| (id, v)))
        .collect();
    let step = (finals.len() / SAMPLE).max(1);
    let http = http();
    let mut problems = Vec::new();
    for (id, leader_view) in finals.iter().step_by(step).take(SAMPLE) {
        for n in c.nodes() {
            let url = n.url(&format!("/v1/transactions/{id}?consistency=stale"));
            match fetch_view(&http, url).await {
                Ok(Some(v)) if &v == *leader_view => {}
                Ok(other) => problems.push(format!(
                    "node {} reports {id} as {other:?}, the leader as {leader_view}",
                    n.id
                )),
                Err(e) => problems.push(format!("node {} cannot show {id}: {e}", n.id)),
            }
        }
    }
    problems
}

fn print_summary(
    rounds: &[RoundLog],
    subs: &[Submission],
    views: &BTreeMap<String, Option<Value>>,
    banks: &[Ledger],
    load_time: Duration,
    total: Duration,
) {
    eprintln!("---- transaction crash run ----");
    for (i, r) in rounds.iter().enumerate() {
        eprintln!(
            "round {i:>2}: {:<60} died {:?}, leader after {}, {:.1}s",
            r.what,
            r.deaths,
            r.leader_after,
            r.took.as_secs_f64()
        );
    }
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for s in subs {
        let status = match views.get(&s.saga.id) {
            Some(Some(v)) => v["status"].as_str().unwrap_or("?").to_owned(),
            _ => "absent".to_owned(),
        };
        let acked = if s.acked { "acked" } else { "unknown" };
        *outcomes
            .entry(format!("{:?} {acked} {status}", s.saga.kind))
            .or_default() += 1;
    }
    let resent = subs.iter().filter(|s| s.answers.len() > 1).count();
    eprintln!(
        "{} sagas in {:.1}s ({resent} sent more than once):",
        subs.len(),
        load_time.as_secs_f64()
    );
    for (k, n) in &outcomes {
        eprintln!("  {n:>5} {k}");
    }
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    for s in banks.iter().flat_map(Ledger::seen) {
        *calls.entry(format!("{} {}", s.op, s.outcome)).or_default() += 1;
        if s.attempt > 1 {
            *calls.entry("attempt > 1".to_owned()).or_default() += 1;
        }
    }
    eprintln!("participant calls: {calls:?}");
    eprintln!("total {:.1}s", total.as_secs_f64());
}
