//! N real `concord server` processes on loopback, with every peer link routed
//! through its own [`Proxy`], and the faults a test can inject: cutting links,
//! `kill -9` and restart, SIGSTOP and SIGCONT.
//!
//! Node i reaches node j only through the proxy for i->j (`--peer-route
//! j=PROXY`), so partitions are exact and per direction. Client traffic (and a
//! follower's forwarding of writes to the leader, which uses client addresses)
//! does not go through the proxies: a partition isolates Raft, not clients.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy::Proxy;

/// Short Raft timings so failovers take well under a second (and, on a loaded
/// two-core machine, spurious elections happen too: more faults for free).
const RAFT_TIMING: [&str; 4] = ["--election-timeout-ms", "300-600", "--heartbeat-ms", "60"];
/// Progress events every second keep idle watch streams' resume points fresh.
const PROGRESS_MS: &str = "1000";
/// Generous: starting N debug binaries on a busy 2-core machine is slow.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Per request; a node that does not answer in this long is treated as down.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether some test of this binary has a cluster up. Two clusters sharing two
/// cores would starve each other's elections, so [`Cluster::start`] waits for
/// the previous one to be dropped, whichever test started it.
static CLUSTER_UP: Mutex<bool> = Mutex::new(false);
static CLUSTER_DOWN: Condvar = Condvar::new();

/// This test's turn to run a cluster; the next one's starts when it drops.
struct Turn;

impl Turn {
    /// Blocks the (test's own runtime) thread until no other cluster is up.
    fn take() -> Turn {
        let mut up = CLUSTER_UP.lock().unwrap_or_else(|e| e.into_inner());
        while *up {
            up = CLUSTER_DOWN.wait(up).unwrap_or_else(|e| e.into_inner());
        }
        *up = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *CLUSTER_UP.lock().unwrap_or_else(|e| e.into_inner()) = false;
        CLUSTER_DOWN.notify_one();
    }
}

/// One member: its fixed addresses, data directory and (maybe) process.
pub struct Node {
    pub id: u64,
    pub client_addr: SocketAddr,
    log: PathBuf,
    /// Every argument after `concord`, identical on each (re)start.
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// The URL of a path on this node's client API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.client_addr)
    }

    /// Started and not killed (it may be paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Running and not paused: expected to answer.
    pub fn is_up(&self) -> bool {
        self.is_running() && !self.paused
    }
}

/// The cluster; dropping it kills every process and prints their logs' tails if
/// the test is failing.
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    /// The proxy node `from` dials node `to` through, by `(from, to)`.
    links: BTreeMap<(u64, u64), Proxy>,
    http: reqwest::Client,
    tmp: tempfile::TempDir,
    /// Dropped last, after [`Drop for Cluster`](Cluster) killed the processes.
    _turn: Turn,
}

/// Reserves a free loopback port. The listener is returned so the port stays
/// taken until just before the node binds it.
fn reserve_port() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}

impl Cluster {
    /// Starts nodes `1..=n` from one `--initial-cluster` list, each dialing its
    /// peers through proxies, and waits until every node is ready and they agree
    /// on a leader. Nodes snapshot every `snapshot_every` entries, so restarts and
    /// lagging followers go through snapshot loading and installation.
    pub async fn start(n: u64, snapshot_every: u64) -> Cluster {
        let turn = Turn::take();
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut held = Vec::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let (cl, client) = reserve_port();
            let (pl, peer) = reserve_port();
            held.push(cl);
            held.push(pl);
            addrs.insert(id, (client, peer));
        }
        let mut links = BTreeMap::new();
        for from in 1..=n {
            for to in (1..=n).filter(|&to| to != from) {
                let proxy = Proxy::start(addrs[&to].1).await.expect("start proxy");
                links.insert((from, to), proxy);
            }
        }
        let initial = addrs
            .iter()
            .map(|(id, (_, peer))| format!("{id}={peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for (&id, &(client_addr, peer_addr)) in &addrs {
            let data_dir = tmp.path().join(format!("node{id}"));
            let mut args: Vec<String> = vec![
                "server".into(),
                "--node-id".into(),
                id.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--client-addr".into(),
                client_addr.to_string(),
                "--peer-addr".into(),
                peer_addr.to_string(),
                "--initial-cluster".into(),
                initial.clone(),
                "--progress-interval-ms".into(),
                PROGRESS_MS.into(),
                "--snapshot-every".into(),
                snapshot_every.to_string(),
            ];
            args.extend(RAFT_TIMING.iter().map(|s| s.to_string()));
            for to in (1..=n).filter(|&to| to != id) {
                args.push("--peer-route".into());
                args.push(format!("{to}={}", links[&(id, to)].addr()));
            }
            nodes.insert(
                id,
                Node {
                    id,
                    client_addr,
                    log: tmp.path().join(format!("node{id}.log")),
                    args,
                    child: None,
                    paused: false,
                },
            );
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(STATUS_TIMEOUT)
            .build()
            .expect("http client");
        let mut cluster = Cluster {
            nodes,
            links,
            http,
            tmp,
            _turn: turn,
        };
        // Release the reserved ports only now, right before the nodes bind them.
        drop(held);
        for id in 1..=n {
            cluster.spawn(id);
        }
        for id in 1..=n {
            cluster.wait_ready(id).await;
        }
        cluster.leader(START_DEADLINE).await;
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Where the logs and data directories are (printed when something fails).
    pub fn dir(&self) -> &std::path::Path {
        self.tmp.path()
    }

    fn spawn(&mut self, id: u64) {
        self.spawn_with_env(id, &[]);
    }

    /// Starts node `id` with extra environment variables (this start only).
    fn spawn_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        let node = self.nodes.get_mut(&id).expect("node");
        assert!(node.child.is_none(), "node {id} already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(&node.args)
            .env("RUST_LOG", "warn,concord_server=info,concord_raft=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn concord server");
        node.child = Some(child);
        node.paused = false;
    }

    /// `kill -9` and reap (also ends a paused process).
    pub fn kill9(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.paused = false;
    }

    /// Starts a killed node again: same ports, flags and data directory
    /// (`--initial-cluster` is ignored once the directory holds state).
    pub fn restart(&mut self, id: u64) {
        self.spawn(id);
    }

    /// [`Cluster::restart`] with extra environment variables for this start only
    /// (e.g. `CONCORD_FAULT_POINTS`, so the process aborts at a chosen point).
    pub fn restart_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        self.spawn_with_env(id, env);
    }

    /// Whether node `id` was started and its process has ended on its own (a
    /// fault point, or a crash). [`Cluster::kill9`] reaps it.
    pub fn has_exited(&mut self, id: u64) -> bool {
        let node = self.nodes.get_mut(&id).expect("node");
        node.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Everything node `id` has logged so far, across restarts.
    pub fn log_text(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[&id].log).unwrap_or_default()
    }

    /// SIGSTOP: the process freezes with its sockets open, like a long GC pause.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, "-STOP");
        self.nodes.get_mut(&id).expect("node").paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) {
        self.signal(id, "-CONT");
        self.nodes.get_mut(&id).expect("node").paused = false;
    }

    fn signal(&self, id: u64, sig: &str) {
        let child = self.nodes[&id].child.as_ref().expect("node running");
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} node {id} failed");
    }

    /// Cuts the link `from -> to` (blackhole).
    pub fn cut(&self, from: u64, to: u64) {
        self.links[&(from, to)].cut();
    }

    /// Cuts every link between the two groups, both ways; `reset` aborts with
    /// RSTs instead of blackholing.
    pub fn split(&self, a: &[u64], b: &[u64], reset: bool) {
        for &x in a {
            for &y in b {
                for link in [&self.links[&(x, y)], &self.links[&(y, x)]] {
                    if reset {
                        link.cut_reset();
                    } else {
                        link.cut();
                    }
                }
            }
        }
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self.ids().into_iter().filter(|&o| o != id).collect();
        self.split(&[id], &others, false);
    }

    /// Adds latency to every link.
    pub fn delay_all(&self, delay: Duration) {
        for l in self.links.values() {
            l.delay(delay);
        }
    }

    /// Heals every link and removes delays; resumes paused nodes and restarts
    /// killed ones.
    pub fn heal_all(&mut self) {
        for l in self.links.values() {
            l.heal();
            l.delay(Duration::ZERO);
        }
        for id in self.ids() {
            let node = &self.nodes[&id];
            if !node.is_running() {
                self.restart(id);
            } else if node.paused {
                self.resume(id);
            }
        }
    }

    /// Whether every link has carried at least one connection: proof that the
    /// nodes really dial each other through the proxies (`--peer-route` works),
    /// so a cut is a real partition.
    pub fn unused_links(&self) -> Vec<(u64, u64)> {
        self.links
            .iter()
            .filter(|(_, p)| p.accepted() == 0)
            .map(|(&k, _)| k)
            .collect()
    }

    /// `GET /v1/status` of node `id`, or `None` if it does not answer.
    pub async fn status(&self, id: u64) -> Option<Value> {
        let resp = self
            .http
            .get(self.nodes[&id].url("/v1/status"))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.json().await.ok()
    }

    /// Waits until node `id` answers `/v1/ready` with 200.
    pub async fn wait_ready(&self, id: u64) {
        let url = self.nodes[&id].url("/v1/ready");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not ready within {START_DEADLINE:?}; logs in {}",
                self.dir().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader as a majority of the nodes sees it right now: a node that
    /// claims leadership and that more than half of all nodes (itself included)
    /// name. `None` during an election or when no majority can talk.
    pub async fn majority_leader(&self) -> Option<u64> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        let mut claims = Vec::new();
        for n in self.nodes.values().filter(|n| n.is_up()) {
            let Some(st) = self.status(n.id).await else {
                continue;
            };
            if let Some(l) = st["leader_id"].as_u64() {
                *votes.entry(l).or_default() += 1;
                if l == n.id {
                    claims.push(l);
                }
            }
        }
        let majority = self.nodes.len() / 2 + 1;
        claims
            .into_iter()
            .find(|l| votes.get(l).is_some_and(|&v| v >= majority))
    }

    /// Waits for [`Cluster::majority_leader`].
    pub async fn leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.majority_leader().await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no leader agreed by a majority within {within:?}; logs in {}",
                self.dir().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node is up and names the same leader, which leads.
    pub async fn wait_all_agree(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.all_agree().await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "the nodes did not agree on a leader within {within:?}; logs in {}",
                self.dir().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn all_agree(&self) -> Option<u64> {
        let mut leader = None;
        for n in self.nodes.values() {
            if !n.is_up() {
                return None;
            }
            let l = self.status(n.id).await?["leader_id"].as_u64()?;
            if *leader.get_or_insert(l) != l {
                return None;
            }
        }
        let l = leader?;
        (self.status(l).await?["leader_id"].as_u64()? == l).then_some(l)
    }
}

impl Cluster {
    /// Prints the tail of every node's log and, with `CONCORD_KEEP_CLUSTER` set,
    /// keeps the logs and data directories. Called when a run failed.
    pub fn report_failure(&mut self) {
        for n in self.nodes.values() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!("---- node {} log, last {} lines ----", n.id, tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
        if std::env::var_os("CONCORD_KEEP_CLUSTER").is_some() {
            let kept = std::mem::replace(&mut self.tmp, tempfile::tempdir().expect("tempdir"));
            eprintln!("cluster files kept in {}", kept.keep().display());
        } else {
            eprintln!("set CONCORD_KEEP_CLUSTER=1 to keep the nodes' logs and data");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill9(id);
        }
        if std::thread::panicking() {
            self.report_failure();
        }
    }
}
