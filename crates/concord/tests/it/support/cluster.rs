//! Multi-node clusters of real `concord server` processes on loopback.
//!
//! Ports are reserved up front (bind port 0, note the port, release it) because
//! `--initial-cluster` must name every peer address before any node starts; a
//! restarted node gets the same ports back. A released port can be taken by
//! someone else (any outgoing connection of a parallel test) before the node
//! binds it, so a node that exits with a bind error is started again on fresh
//! ports (the whole cluster, for a static bootstrap), a bounded number of times.
//! Each node logs to a file in the cluster's temp dir; when a test panics, the
//! tail of every log is printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{START_DEADLINE, bin};

/// Attempts at starting a node (or a static cluster) whose ports were taken.
const BIND_ATTEMPTS: usize = 5;

/// Short Raft timings so elections and failovers take well under a second.
pub const FAST_RAFT: [&str; 4] = ["--election-timeout-ms", "300-600", "--heartbeat-ms", "60"];

/// One node's addresses, data and process.
pub struct ClusterNode {
    pub id: u64,
    /// `127.0.0.1:PORT` of the client API.
    pub client_addr: String,
    /// `127.0.0.1:PORT` of the peer (Raft) listener.
    pub peer_addr: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    /// The client API base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.client_addr)
    }

    /// The URL of a path on this node.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Nodes by id, all under one temp dir; every process is killed on drop.
pub struct Cluster {
    pub nodes: BTreeMap<u64, ClusterNode>,
    tmp: tempfile::TempDir,
    /// Reservations made so far; names each data dir uniquely.
    reserved: u64,
}

/// Reserves `n` distinct free loopback ports. They are free when this returns;
/// another process could take one before a node binds it, which on a test
/// machine is rare enough to accept.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

impl Cluster {
    /// Starts nodes `1..=n` with one `--initial-cluster` list and waits until
    /// every one of them is ready.
    pub async fn start(n: u64) -> Cluster {
        let mut cluster = Cluster::empty();
        'attempt: for attempt in 1..=BIND_ATTEMPTS {
            for id in 1..=n {
                cluster.reserve(id);
            }
            let list = cluster.initial_cluster();
            for id in 1..=n {
                cluster.spawn(id, &["--initial-cluster", &list]);
            }
            for id in 1..=n {
                if let Err(log) = cluster.wait_serving(id).await {
                    assert!(
                        attempt < BIND_ATTEMPTS && lost_port(&log),
                        "node {id} exited:\n{log}"
                    );
                    for id in 1..=n {
                        cluster.kill9(id);
                    }
                    continue 'attempt;
                }
            }
            break;
        }
        for id in 1..=n {
            cluster.wait_ready(id).await;
        }
        cluster
    }

    /// Reserves ports for a new node `id` and starts it with `extra` flags,
    /// waiting until it serves HTTP (not until it is ready: a node that waits to
    /// be added never is).
    pub async fn launch(&mut self, id: u64, extra: &[&str]) {
        for attempt in 1..=BIND_ATTEMPTS {
            self.reserve(id);
            self.spawn(id, extra);
            match self.wait_serving(id).await {
                Ok(()) => return,
                Err(log) => assert!(
                    attempt < BIND_ATTEMPTS && lost_port(&log),
                    "node {id} exited:\n{log}"
                ),
            }
        }
    }

    /// Starts stopped node `id` again on its ports and data dir with `extra`
    /// flags, and waits until it is ready. If another process holds one of its
    /// ports, tries again (its peer address cannot change).
    pub async fn restart(&mut self, id: u64, extra: &[&str]) {
        for attempt in 1..=BIND_ATTEMPTS {
            self.spawn(id, extra);
            match self.wait_serving(id).await {
                Ok(()) => break,
                Err(log) => {
                    assert!(
                        attempt < BIND_ATTEMPTS && lost_port(&log),
                        "node {id} exited:\n{log}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.wait_ready(id).await;
    }

    /// No nodes yet.
    pub fn empty() -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            tmp: tempfile::tempdir().expect("tempdir"),
            reserved: 0,
        }
    }

    /// Gives node `id` fresh ports and a fresh data dir without starting it.
    pub fn reserve(&mut self, id: u64) -> &ClusterNode {
        let ports = free_ports(2);
        self.reserved += 1;
        let name = format!("node{id}-{}", self.reserved);
        let node = ClusterNode {
            id,
            client_addr: format!("127.0.0.1:{}", ports[0]),
            peer_addr: format!("127.0.0.1:{}", ports[1]),
            data_dir: self.tmp.path().join(&name),
            log: self.tmp.path().join(format!("{name}.log")),
            child: None,
        };
        self.nodes.insert(id, node);
        &self.nodes[&id]
    }

    /// `1=127.0.0.1:P1,2=...` for every reserved node.
    pub fn initial_cluster(&self) -> String {
        self.nodes
            .values()
            .map(|n| format!("{}={}", n.id, n.peer_addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[&id]
    }

    /// Starts `concord server` for reserved node `id` with its ports, data dir,
    /// fast Raft timings and `extra` flags. Does not wait.
    pub fn spawn(&mut self, id: u64, extra: &[&str]) {
        let node = self.nodes.get_mut(&id).expect("reserved node");
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let child = Command::new(bin())
            .args(["server", "--node-id", &id.to_string(), "--data-dir"])
            .arg(&node.data_dir)
            .args(["--client-addr", &node.client_addr])
            .args(["--peer-addr", &node.peer_addr])
            .args(FAST_RAFT)
            .args(extra)
            .env("RUST_LOG", "warn,concord_server=info,concord_raft=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn concord server");
        node.child = Some(child);
    }

    /// `kill -9` node `id` and reap it.
    pub fn kill9(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Polls node `id`'s `/v1/health` until it answers; `Err(log)` if the
    /// process exited first (it could not bind, or refused its flags).
    async fn wait_serving(&mut self, id: u64) -> Result<(), String> {
        let url = self.node(id).url("/v1/health");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let node = self.nodes.get_mut(&id).expect("node");
            let exited = node
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                node.child = None;
                return Err(std::fs::read_to_string(&node.log).unwrap_or_default());
            }
            if let Some((200, _)) = request(reqwest::Method::GET, &url, None).await {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not serving within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls node `id`'s `/v1/ready` until it answers 200.
    pub async fn wait_ready(&self, id: u64) {
        let url = self.node(id).url("/v1/ready");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some((200, _)) = request(reqwest::Method::GET, &url, None).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not ready within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node names the same running leader; returns it.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(l) = self.agreed_leader().await {
                return l;
            }
            assert!(Instant::now() < deadline, "no agreed leader in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<u64> {
        let mut seen = Vec::new();
        for n in self.nodes.values().filter(|n| n.is_running()) {
            let (_, body) = request(reqwest::Method::GET, &n.url("/v1/status"), None).await?;
            seen.push(body["leader_id"].as_u64()?);
        }
        let first = *seen.first()?;
        let running = self.nodes.get(&first).is_some_and(|n| n.is_running());
        (running && seen.iter().all(|l| *l == first)).then_some(first)
    }

    /// `PUT /v1/kv/{key}` on the current leader, retried through elections until
    /// [`START_DEADLINE`]; returns the revision.
    pub async fn put(&self, key: &str, value: &str) -> u64 {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let leader = self.leader().await;
            let url = self.node(leader).url(&format!("/v1/kv/{key}"));
            if let Some((200, b)) = request_raw(&url, value.as_bytes().to_vec()).await {
                return b["revision"].as_u64().expect("revision");
            }
            assert!(
                Instant::now() < deadline,
                "put {key}={value} never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything node `id`'s processes have logged so far.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// The `GET /v1/cluster/members` list of node `id`.
    pub async fn members(&self, id: u64) -> Vec<Value> {
        let (status, body) = request(
            reqwest::Method::GET,
            &self.node(id).url("/v1/cluster/members"),
            None,
        )
        .await
        .expect("members request");
        assert_eq!(status, 200, "{body}");
        body["members"].as_array().expect("members").clone()
    }
}

/// Whether a node's log says it exited because a port was taken.
fn lost_port(log: &str) -> bool {
    log.contains("cannot bind")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill9(id);
        }
        if std::thread::panicking() {
            for n in self.nodes.values() {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("---- node {} log (last {} lines) ----", n.id, tail.len());
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A JSON request that tolerates a dead node: `None` on connection failure or timeout.
pub async fn request(
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut req = http().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.ok()?;
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// `PUT url` with a raw body, tolerating a dead node.
pub async fn request_raw(url: &str, body: Vec<u8>) -> Option<(u16, Value)> {
    let resp = http().put(url).body(body).send().await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.ok()?;
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(70))
        .build()
        .expect("http client")
}
