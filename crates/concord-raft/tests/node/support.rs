//! Helpers shared by the node tests.

use std::path::Path;
use std::time::{Duration, Instant};

use concord_raft::{RaftNode, RaftOptions};
use concord_state::{Command, HistoryLimits};
use tokio::net::TcpListener;

/// Long enough for a 2-core machine busy with other builds.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Binds a loopback listener on `port` (0: any), retrying while a just-closed
/// listener on the same port is still being torn down.
pub async fn bind(port: u16) -> TcpListener {
    let started = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) if started.elapsed() < DEADLINE => {
                eprintln!("bind 127.0.0.1:{port}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot bind 127.0.0.1:{port}: {e}"),
        }
    }
}

/// Options for node `id` listening on `listener`, with timeouts tolerant of a loaded machine.
pub fn options(
    id: u64,
    data_dir: &Path,
    listener: TcpListener,
    snapshot_every: u64,
) -> RaftOptions {
    let addr = listener.local_addr().expect("listener address");
    RaftOptions {
        node_id: id,
        data_dir: data_dir.to_path_buf(),
        peer_listener: listener,
        advertise_peer_addr: addr.to_string(),
        client_addr: client_addr(id),
        snapshot_every,
        heartbeat_interval: Duration::from_millis(100),
        election_timeout: (Duration::from_millis(700), Duration::from_millis(1400)),
        history: HistoryLimits::default(),
        on_apply: None,
        peer_routes: Default::default(),
    }
}

/// A made-up client API address for node `id` (nothing listens there; it only travels in the membership).
pub fn client_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 17600 + id)
}

/// Starts a node on `data_dir`, bootstraps it as a single-member cluster and waits until it leads.
pub async fn start_single(data_dir: &Path, snapshot_every: u64) -> RaftNode {
    let node = RaftNode::start(options(1, data_dir, bind(0).await, snapshot_every))
        .await
        .expect("start");
    node.initialize_single().await.expect("initialize_single");
    wait_for("the single node to lead", || node.is_leader()).await;
    node
}

pub fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        lease: None,
        cas: None,
    }
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after [`DEADLINE`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value stored under `key`, as a string.
pub fn value_of(node: &RaftNode, key: &str) -> Option<String> {
    let state = node.state();
    let sm = state.read().expect("state lock");
    sm.kv_get(key)
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

/// The store revision.
pub fn revision_of(node: &RaftNode) -> u64 {
    node.state().read().expect("state lock").revision()
}
