//! A Concord node: the HTTP API, watch hub, leases, metrics, over the Raft core.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod api;
pub mod backup;
pub mod checks;
pub mod config;
mod configs;
pub mod dns;
mod dns_source;
mod error;
mod fault;
mod forward;
mod health;
mod join;
mod leases;
mod membership;
mod metrics;
mod node;
mod params;
mod transactions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use concord_raft::{RaftNode, RaftOptions};
use concord_state::HistoryLimits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use config::ServerConfig;

use crate::node::{Node, SharedNode};

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    /// The cluster flags contradict each other or are malformed.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A started node. Dropping it does not stop it: call `shutdown`.
pub struct RunningServer {
    /// The bound client API address (useful when started on port 0).
    pub client_addr: SocketAddr,
    /// The bound peer address.
    pub peer_addr: SocketAddr,
    /// The bound DNS address (UDP and TCP), when DNS is served.
    pub dns_addr: Option<SocketAddr>,
    node: SharedNode,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    /// Set when a background task fails for good (joining the cluster gave up).
    fatal: watch::Receiver<Option<String>>,
}

/// UDP and TCP sockets on one port. For port 0 the port UDP got may already be
/// taken for TCP (by any outgoing connection), so a few fresh ports are tried.
async fn bind_dns(addr: SocketAddr) -> Result<(tokio::net::UdpSocket, TcpListener), ServerError> {
    const ATTEMPTS: usize = 16;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let port_addr = udp.local_addr()?;
        match TcpListener::bind(port_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) if addr.port() == 0 && attempt < ATTEMPTS => {
                tracing::debug!(%port_addr, error = %source, "DNS port taken for TCP; trying another");
            }
            Err(source) => {
                return Err(ServerError::Bind {
                    addr: port_addr,
                    source,
                });
            }
        }
    }
}

/// Binds UDP and TCP on one port (see `bind_dns`) and serves DNS from the
/// node's state until `stop` flips.
async fn start_dns(
    node: &SharedNode,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), ServerError> {
    let (udp, tcp) = bind_dns(addr).await?;
    let bound = udp.local_addr()?;
    let source = Arc::new(dns_source::StateSource(node.state.clone()));
    let config = dns::DnsConfig {
        ttl_secs: node.config.dns_ttl_secs,
        ..dns::DnsConfig::default()
    };
    let metrics = node.metrics.dns.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = dns::serve(udp, tcp, source, config, metrics, shutdown).await {
            tracing::error!(error = %e, "DNS server failed");
        }
    });
    info!(dns_addr = %bound, "serving DNS");
    Ok((bound, task))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Starts a node: opens storage, starts Raft and the listeners, returns once they are bound.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    membership::check(&config)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let client_listener = bind(config.client_addr).await?;
    let peer_listener = bind(config.peer_addr).await?;
    let client_addr = client_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let metrics = metrics::Metrics::new();
    let apply_latency = metrics.apply_latency.clone();
    let advertised = membership::advertised_peer_addr(&config, peer_addr);
    let raft = RaftNode::start(RaftOptions {
        node_id: config.node_id,
        data_dir: config.data_dir.clone(),
        peer_listener,
        advertise_peer_addr: advertised.clone(),
        client_addr: client_addr.to_string(),
        snapshot_every: config.snapshot_every,
        heartbeat_interval: config.heartbeat_interval,
        election_timeout: config.election_timeout,
        history: HistoryLimits {
            max_events: config.history_max_events,
            max_bytes: config.history_max_bytes,
        },
        on_apply: Some(Arc::new(move |d| apply_latency.observe(d.as_secs_f64()))),
        peer_routes: config.peer_routes.clone(),
    })
    .await
    .map_err(|e| ServerError::Raft(e.to_string()))?;
    let join = membership::initialize(&raft, &config, &advertised, client_addr).await?;
    let node: SharedNode = Arc::new(Node {
        state: raft.state(),
        raft,
        config,
        leases: Default::default(),
        health: Default::default(),
        metrics,
        forwarder: forward::client(),
        ready: AtomicBool::new(false),
    });
    let (stop, stop_rx) = watch::channel(false);
    let (fatal_tx, fatal) = watch::channel(None);
    let mut background = vec![
        tokio::spawn(leases::run(node.clone(), stop_rx.clone())),
        tokio::spawn(health::leader::run(node.clone(), stop_rx.clone())),
        tokio::spawn(health::owner::run(node.clone(), stop_rx.clone())),
        tokio::spawn(track_readiness(node.clone(), stop_rx.clone())),
        tokio::spawn(transactions::driver::run(node.clone(), stop_rx.clone())),
        tokio::spawn(transactions::retention::run(node.clone(), stop_rx.clone())),
    ];
    if let Some(plan) = join {
        background.push(tokio::spawn(join::run(
            node.clone(),
            plan,
            stop_rx.clone(),
            fatal_tx,
        )));
    }
    let dns_addr = match node.config.dns_addr {
        Some(addr) => {
            let (bound, task) = start_dns(&node, addr, stop_rx.clone()).await?;
            background.push(task);
            Some(bound)
        }
        None => None,
    };
    let app = api::router(node.clone());
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(client_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    info!(%client_addr, %peer_addr, node_id = node.config.node_id, "concord node started");
    Ok(RunningServer {
        client_addr,
        peer_addr,
        dns_addr,
        node,
        stop,
        http,
        background,
        fatal,
    })
}

/// Marks the node ready once it knows a leader, is in the membership (a joining
/// node: has applied its own admission), and has applied the log up to the
/// commit index it saw at that moment.
async fn track_readiness(node: SharedNode, mut stop: watch::Receiver<bool>) {
    let mut target = None;
    loop {
        let st = node.raft.status();
        if st.leader_id.is_some() && membership::is_settled_member(&st) {
            let t = *target.get_or_insert(st.commit_index);
            if st.applied_index >= t {
                if !apply_seed(&node).await {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        _ = stop.changed() => return,
                    }
                }
                node.ready.store(true, Ordering::Release);
                info!(applied = st.applied_index, "node ready");
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Applies a backup left by `concord snapshot restore` as the first change of a
/// fresh store. Returns false to be called again (not leader yet, or the write failed).
async fn apply_seed(node: &SharedNode) -> bool {
    let seed = node.config.data_dir.join(backup::SEED_FILE);
    if !seed.exists() {
        return true;
    }
    let done = |suffix: &str| {
        if let Err(e) = std::fs::rename(&seed, seed.with_extension(suffix)) {
            tracing::warn!(error = %e, "could not set the restore seed aside");
        }
    };
    if node.state().revision() != 0 {
        tracing::warn!(seed = %seed.display(), "the store already holds data; restore seed ignored");
        done("ignored");
        return true;
    }
    if !node.raft.is_leader() {
        return false;
    }
    let bytes = match std::fs::read(&seed)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            backup::decode(&b)
                .map(|d| d.snapshot.to_vec())
                .map_err(|e| e.to_string())
        }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(seed = %seed.display(), error = %e, "restore seed unusable; starting empty");
            done("invalid");
            return true;
        }
    };
    match node
        .write(concord_state::Command::Restore { snapshot: bytes })
        .await
    {
        Ok(outcome) => {
            info!(?outcome, "store restored from backup");
            done("applied");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "restoring the backup failed; retrying");
            false
        }
    }
}

impl RunningServer {
    /// Resolves when the node failed for good in the background (it could not
    /// join its cluster), with the reason; never resolves otherwise. The node
    /// still needs `shutdown`.
    pub async fn fatal_error(&self) -> String {
        let mut fatal = self.fatal.clone();
        match fatal.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone().unwrap_or_default(),
            // The sender is gone (no join task, or it finished): nothing can fail.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops accepting requests, lets in-flight ones finish (watch streams are cut),
    /// shuts Raft down and flushes storage.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        // Open watch streams would hold graceful shutdown forever; give requests a grace period.
        match tokio::time::timeout(Duration::from_secs(5), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e.into()),
            Ok(Err(join)) => return Err(ServerError::Raft(format!("http task failed: {join}"))),
            Err(_) => tracing::warn!("in-flight requests did not finish in 5 s; closing"),
        }
        for task in self.background {
            task.abort();
        }
        self.node
            .raft
            .shutdown()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        info!("concord node stopped");
        Ok(())
    }
}
