//! `RaftNode`: one running openraft instance with its storage and peer server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use concord_state::{Command, HistoryLimits, Outcome, StateMachine};
use openraft::error::{CheckIsLeaderError, Fatal, ForwardToLeader, InitializeError};
use openraft::{RaftMetrics, ServerState, SnapshotPolicy};
use redb::Database;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::client_addrs::ClientAddrs;
use crate::error::{ProposeError, RaftError};
use crate::log_store::{LogShared, LogStore};
use crate::network::{self, Network};
use crate::peer_server::{self, LeaderContact};
use crate::promoter;
use crate::proposer::{self, Pending, ProposerStats};
use crate::regroup::HoldCounters;
use crate::relay::Relay;
use crate::snapshot_files::{SnapshotFiles, StoredSnapshot};
use crate::state_machine::{ApplyObserver, StateMachineStore};
use crate::type_config::{NodeInfo, Raft};

/// Per-chunk deadline for sending and installing a snapshot; generous because the
/// last chunk includes restoring the whole state machine and an fsync on the follower.
const INSTALL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many already-snapshotted entries stay in the log, so a briefly
/// lagging follower catches up from the log instead of a full snapshot.
const MAX_LOG_KEPT_BEHIND_SNAPSHOT: u64 = 1000;
/// Entries per AppendEntries request. Each entry is a proposal batch of up to
/// ~1 MiB (see `proposer.rs`), so a request stays well under the peer body limit.
const MAX_ENTRIES_PER_APPEND: u64 = 64;
/// How long `shutdown` waits for the peer server to finish in-flight requests.
const SERVER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `shutdown` waits for openraft's tasks to release the redb file.
const STORAGE_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a node needs to start. The peer listener is bound by the caller, so
/// a port conflict is the caller's error and tests can use port 0.
pub struct RaftOptions {
    /// This node's id; unique in the cluster and stable across restarts.
    pub node_id: u64,
    /// Holds `raft.redb` (log and vote) and `snapshots/`.
    pub data_dir: PathBuf,
    /// Where peers reach this node's Raft routes.
    pub peer_listener: tokio::net::TcpListener,
    /// The peer address other members use for this node (stored in the membership).
    pub advertise_peer_addr: String,
    /// This node's client API address, stored in the membership so followers can name the leader's.
    pub client_addr: String,
    /// Take a snapshot every this many applied entries and purge the log behind it.
    pub snapshot_every: u64,
    /// Leader heartbeat period; also openraft's deadline for one AppendEntries RPC.
    pub heartbeat_interval: Duration,
    /// Followers start an election after a random timeout in `[min, max)`.
    pub election_timeout: (Duration, Duration),
    /// Event history kept by the state machine for watches.
    pub history: HistoryLimits,
    /// Told how long each applied batch took (for the server's metrics).
    pub on_apply: Option<ApplyObserver>,
    /// Dial overrides: this node reaches member `id` at `peer_routes[id]` instead
    /// of the peer address in the membership (fault-injection proxies, NAT).
    /// Applies to Raft RPCs and `/raft/info` lookups alike.
    pub peer_routes: HashMap<u64, String>,
}

impl std::fmt::Debug for RaftOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftOptions")
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("advertise_peer_addr", &self.advertise_peer_addr)
            .field("client_addr", &self.client_addr)
            .field("snapshot_every", &self.snapshot_every)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout", &self.election_timeout)
            .field("history", &self.history)
            .field("on_apply", &self.on_apply.is_some())
            .field("peer_routes", &self.peer_routes)
            .finish_non_exhaustive()
    }
}

/// Who leads, and in which term. Changes only when either changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The known leader, if any.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
}

/// One cluster member as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub peer_addr: String,
    pub client_addr: String,
    /// Voters count toward quorums; learners only receive the log.
    pub voter: bool,
}

/// A point-in-time view of this node's Raft state, for status endpoints and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    /// Log index of the last entry known committed (0 before any).
    pub commit_index: u64,
    /// Log index of the last entry applied to the state machine (0 before any).
    pub applied_index: u64,
    /// Log index of the last entry in this node's log (0 when empty).
    pub last_log_index: u64,
    /// Log index covered by the newest snapshot, if one was taken or installed.
    pub snapshot_index: Option<u64>,
    /// Entries up to this log index were purged from the log (they live in the snapshot).
    pub purged_index: Option<u64>,
    /// Members; a client address missing from the membership (members bootstrapped
    /// by an initial-cluster list) is filled from the lookup cache when known.
    pub members: Vec<MemberInfo>,
    /// Log index of the membership config this node follows, if it has one.
    pub membership_index: Option<u64>,
    /// `Some(0)` on the leader; on a follower, time since the leader last reached
    /// it (`None` if never since start). Drives stale-read headers.
    pub millis_since_leader_contact: Option<u64>,
}

/// Counters of the write path: how proposals were grouped into log entries and fsyncs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Commands proposed through this node.
    pub proposals: u64,
    /// Log entries those proposals were packed into (one per group commit).
    pub proposal_batches: u64,
    /// Log appends, each one redb transaction and one fsync (leader and follower).
    pub log_appends: u64,
    /// Entries written by those appends.
    pub log_entries_appended: u64,
    /// Durable commits of any kind: appends, votes, truncations, purges.
    pub log_syncs: u64,
    /// Batches (the proposer's or the relay's) held for the writers just answered.
    pub batch_holds: u64,
    /// Holds that ran out of time first; many mean the writers do not come back
    /// quickly (or at all), and the holds cost latency.
    pub batch_hold_timeouts: u64,
}

/// A running Raft node. Cheap to clone; call [`RaftNode::shutdown`] to stop it
/// (dropping the handles does not).
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: u64,
    self_info: NodeInfo,
    raft: Raft,
    sm: Arc<RwLock<StateMachine>>,
    applied_rx: watch::Receiver<u64>,
    leadership_rx: watch::Receiver<Leadership>,
    log: Arc<LogShared>,
    proposals: crate::regroup::Intake,
    /// Carries proposals made while a follower to the leader.
    relay: Relay,
    proposer_stats: Arc<ProposerStats>,
    /// How often the proposer and the relay held a batch for returning writers.
    holds: Arc<HoldCounters>,
    contact: Arc<LeaderContact>,
    addrs: Arc<ClientAddrs>,
    /// Which members answer pings.
    liveness: Arc<crate::liveness::Liveness>,
    /// Shares read-index requests to the leader among concurrent follower reads.
    read_index: crate::read_index::ReadIndexBatcher,
    /// The redb database; `shutdown` waits for it to be dropped so a restart can reopen it.
    db: Weak<Database>,
    tasks: Mutex<Option<Tasks>>,
}

struct Tasks {
    server_stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    leadership: JoinHandle<()>,
    proposer: JoinHandle<()>,
    read_index: JoinHandle<()>,
    relay: JoinHandle<()>,
    liveness: JoinHandle<()>,
    promoter: Option<JoinHandle<()>>,
}

impl RaftNode {
    /// Opens storage, loads the newest snapshot into the state machine (openraft then
    /// replays only the committed log after it), starts openraft and serves the peer
    /// routes on `opts.peer_listener`.
    pub async fn start(opts: RaftOptions) -> Result<RaftNode, RaftError> {
        let config = build_config(&opts)?;
        let data_dir = opts.data_dir.clone();
        let (log_store, files, loaded) =
            tokio::task::spawn_blocking(move || open_storage(&data_dir))
                .await
                .map_err(|e| RaftError::Storage(format!("storage open task failed: {e}")))??;
        let log = log_store.shared();
        let db = log_store.db_weak();
        let (sm_store, handles) =
            StateMachineStore::new(files, loaded, opts.history, opts.on_apply)
                .map_err(|e| RaftError::Snapshot(e.to_string()))?;
        let http = network::peer_http_client().map_err(|e| RaftError::Network(e.to_string()))?;
        let routes = Arc::new(opts.peer_routes);
        let addrs = Arc::new(ClientAddrs::new(http.clone(), routes.clone()));
        let (read_index, read_index_task) =
            crate::read_index::ReadIndexBatcher::start(http.clone(), routes.clone());
        let network = Network::new(opts.node_id, http.clone(), routes.clone());
        let raft = Raft::new(opts.node_id, Arc::new(config), network, log_store, sm_store)
            .await
            .map_err(|e| RaftError::Raft(e.to_string()))?;

        let contact = Arc::new(LeaderContact::default());
        let holds = Arc::new(HoldCounters::default());
        let (proposals, queue) = crate::regroup::channel(proposer::QUEUE_DEPTH, holds.clone());
        let app = peer_server::router(
            raft.clone(),
            opts.node_id,
            opts.client_addr.clone(),
            contact.clone(),
            proposals.clone(),
        );
        let (server_stop, stop_rx) = oneshot::channel::<()>();
        let listener = opts.peer_listener;
        let node_id = opts.node_id;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(node_id, error = %e, "peer server failed");
            }
        });

        let (leadership_tx, leadership_rx) = watch::channel(Leadership::default());
        let leadership = tokio::spawn(follow_leadership(node_id, raft.metrics(), leadership_tx));

        let proposer_stats = Arc::new(ProposerStats::default());
        let redirect_raft = raft.clone();
        let redirect_addrs = addrs.clone();
        let not_leader: proposer::NotLeader =
            Arc::new(move |f| not_leader(&redirect_raft, &redirect_addrs, f));
        let proposer = tokio::spawn(proposer::run(
            raft.clone(),
            queue,
            proposer_stats.clone(),
            not_leader,
        ));
        let lookup_raft = raft.clone();
        let leader: crate::relay::LeaderLookup = Arc::new(move || leader_peer(&lookup_raft));
        let (relay, relay_task) = Relay::start(
            node_id,
            http,
            routes,
            leader,
            proposals.clone(),
            holds.clone(),
        );

        let liveness = Arc::new(crate::liveness::Liveness::default());
        let liveness_task = tokio::spawn(crate::liveness::run(
            node_id,
            raft.clone(),
            addrs.clone(),
            liveness.clone(),
        ));
        let node = RaftNode {
            inner: Arc::new(Inner {
                node_id,
                self_info: NodeInfo {
                    peer_addr: opts.advertise_peer_addr,
                    client_addr: opts.client_addr,
                },
                raft,
                sm: handles.sm,
                applied_rx: handles.revision_rx,
                leadership_rx,
                log,
                proposals,
                relay,
                proposer_stats,
                holds,
                contact,
                addrs,
                read_index,
                liveness,
                db,
                tasks: Mutex::new(Some(Tasks {
                    server_stop,
                    server,
                    leadership,
                    proposer,
                    read_index: read_index_task,
                    relay: relay_task,
                    liveness: liveness_task,
                    promoter: None,
                })),
            }),
        };
        let promoter = tokio::spawn(promoter::run(node.clone()));
        if let Ok(mut tasks) = node.inner.tasks.lock()
            && let Some(t) = tasks.as_mut()
        {
            t.promoter = Some(promoter);
        }
        Ok(node)
    }

    /// Whether this node has joined a cluster: it holds log entries or has voted.
    /// A fresh data directory is not initialized until it is bootstrapped or a
    /// leader replicates to it.
    pub async fn is_initialized(&self) -> Result<bool, RaftError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| RaftError::Raft(e.to_string()))
    }

    /// Bootstraps a one-member cluster of this node. `Ok` without effect when the
    /// node is already initialized (a restart on an existing data directory).
    pub async fn initialize_single(&self) -> Result<(), RaftError> {
        let members = BTreeMap::from([(self.inner.node_id, self.inner.self_info.clone())]);
        self.initialize(members).await
    }

    /// Bootstraps a cluster with these voters. `Ok` without effect when this node
    /// is already initialized. It may be called on every one of them (static
    /// bootstrap), provided every node passes the identical map: each writes the
    /// same first log entry, so their logs agree.
    pub async fn initialize(&self, members: BTreeMap<u64, NodeInfo>) -> Result<(), RaftError> {
        // Checked first because openraft logs a refused initialize at error level.
        match self.inner.raft.is_initialized().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(RaftError::Raft(e.to_string())),
        }
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(openraft::error::RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::debug!(reason = %e, "already initialized; initialize is a no-op");
                Ok(())
            }
            Err(e) => Err(RaftError::Initialize(e.to_string())),
        }
    }

    /// Appends `cmd` to the log and waits until it is committed and applied;
    /// returns what the state machine answered. Concurrent proposals are grouped
    /// into shared log entries (one fsync per group), in arrival order. On a
    /// follower the command is relayed to the leader (batched with others) and the
    /// answer is the leader's, once applied there; this node applies it a moment
    /// later. `NotLeader` only when no leader is known.
    ///
    /// There is no deadline inside: a leader cut off from its quorum waits until it
    /// steps down, so callers wrap this in their own timeout.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        if !self.is_leader() && leader_peer(&self.inner.raft).is_some() {
            return self.inner.relay.propose(cmd).await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .proposals
            .send(Pending { cmd, reply })
            .await
            .map_err(|_| ProposeError::Unavailable("the raft node is shutting down".to_string()))?;
        answer.await.map_err(|_| {
            ProposeError::Unavailable(
                "raft stopped before the write was answered; it may or may not be applied"
                    .to_string(),
            )
        })?
    }

    /// Read index: confirms leadership with a quorum and waits until the state
    /// machine has applied everything committed before the call, so reads of
    /// [`RaftNode::state`] afterwards are linearizable.
    ///
    /// On a follower this asks the leader for its read index over the peer network
    /// and waits until the local state machine has applied that far.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        if !self.is_leader() {
            let leader = {
                let metrics = self.inner.raft.metrics();
                let m = metrics.borrow();
                m.current_leader
                    .filter(|l| *l != self.inner.node_id)
                    .and_then(|l| {
                        m.membership_config
                            .membership()
                            .get_node(&l)
                            .map(|n| (l, n.peer_addr.clone()))
                    })
            };
            if let Some((leader, peer_addr)) = leader {
                return crate::read_index::follower_barrier(
                    &self.inner.raft,
                    &self.inner.read_index,
                    leader,
                    &peer_addr,
                )
                .await;
            }
        }
        match self.inner.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(openraft::error::RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(not_leader(&self.inner.raft, &self.inner.addrs, f))
            }
            Err(openraft::error::RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(ProposeError::Unavailable(e.to_string()))
            }
            Err(openraft::error::RaftError::Fatal(f)) => Err(fatal_to_propose(f)),
        }
    }

    /// The state machine. Lock it briefly and never across an `.await`: applies wait for it.
    pub fn state(&self) -> Arc<RwLock<StateMachine>> {
        self.inner.sm.clone()
    }

    /// The store revision, updated after each applied batch that changed it.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.inner.applied_rx.clone()
    }

    /// This node's view of the cluster right now.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                peer_addr: node.peer_addr.clone(),
                client_addr: self.known_client_addr(*id, node),
                voter: voters.contains(id),
            })
            .collect();
        let applied_index = m.last_applied.map_or(0, |id| id.index);
        let commit_index = self
            .inner
            .log
            .committed_index()
            .unwrap_or(0)
            .max(applied_index);
        let millis_since_leader_contact = if m.state == ServerState::Leader {
            Some(0)
        } else {
            self.inner
                .contact
                .elapsed()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        RaftStatus {
            node_id: self.inner.node_id,
            leader_id: m.current_leader,
            term: m.current_term,
            commit_index,
            applied_index,
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|id| id.index),
            purged_index: m.purged.map(|id| id.index),
            members,
            membership_index: m.membership_config.log_id().map(|id| id.index),
            millis_since_leader_contact,
        }
    }

    /// Leader and term, for components that act only on the leader (lease expiry, health checks).
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.inner.leadership_rx.clone()
    }

    /// Whether this node is the leader right now (it may be deposed a moment later).
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Members (voters and learners) that answered a ping in the last few
    /// seconds, always including this node; sorted.
    pub fn live_members(&self) -> BTreeSet<u64> {
        let members: Vec<u64> = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        };
        self.inner
            .liveness
            .live(self.inner.node_id, members.into_iter())
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The openraft instance, for the membership code.
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The client-address lookup cache.
    pub(crate) fn addrs(&self) -> &Arc<ClientAddrs> {
        &self.inner.addrs
    }

    /// How this node describes itself (advertised peer address, client address).
    pub(crate) fn self_info(&self) -> &NodeInfo {
        &self.inner.self_info
    }

    /// Member `id`'s client address without network I/O: this node's own, the
    /// membership's, or a cached lookup; empty when none is known yet.
    fn known_client_addr(&self, id: u64, node: &NodeInfo) -> String {
        if id == self.inner.node_id {
            return self.inner.self_info.client_addr.clone();
        }
        if !node.client_addr.is_empty() {
            return node.client_addr.clone();
        }
        self.inner
            .addrs
            .cached(id, &node.peer_addr)
            .unwrap_or_default()
    }

    /// Write-path counters (proposals, batches, appends, fsyncs), for metrics.
    pub fn write_stats(&self) -> WriteStats {
        let log = self.inner.log.counters();
        WriteStats {
            proposals: self.inner.proposer_stats.proposals.load(Ordering::Relaxed),
            proposal_batches: self.inner.proposer_stats.batches.load(Ordering::Relaxed),
            log_appends: log.appends,
            log_entries_appended: log.entries,
            log_syncs: log.syncs,
            batch_holds: self.inner.holds.holds.load(Ordering::Relaxed),
            batch_hold_timeouts: self.inner.holds.timeouts.load(Ordering::Relaxed),
        }
    }

    /// Stops openraft and the peer server and waits until the data directory is
    /// released, so the node can be started again on it. Later calls are no-ops.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        let tasks = match self.inner.tasks.lock() {
            Ok(mut t) => t.take(),
            Err(_) => return Err(RaftError::Shutdown("node state lock poisoned".to_string())),
        };
        let Some(tasks) = tasks else {
            return Ok(());
        };
        let raft_result = self.inner.raft.shutdown().await;
        let _ = tasks.server_stop.send(());
        let server_abort = tasks.server.abort_handle();
        if tokio::time::timeout(SERVER_DRAIN_TIMEOUT, tasks.server)
            .await
            .is_err()
        {
            tracing::warn!(
                node_id = self.inner.node_id,
                "peer server did not drain in time; aborted"
            );
            server_abort.abort();
        }
        tasks.leadership.abort();
        if let Some(promoter) = tasks.promoter {
            promoter.abort();
        }
        // Queued proposals are answered `Unavailable` when their reply senders drop.
        tasks.proposer.abort();
        tasks.read_index.abort();
        tasks.relay.abort();
        tasks.liveness.abort();
        raft_result.map_err(|e| RaftError::Shutdown(format!("raft core task: {e}")))?;
        wait_released(&self.inner.db).await
    }
}

/// Builds `NotLeader`, naming the leader's client address from the membership
/// or, for members bootstrapped without one, from the lookup cache.
/// The current leader's id and peer address, when one is known.
fn leader_peer(raft: &Raft) -> Option<(u64, String)> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let leader = m.current_leader?;
    let node = m.membership_config.membership().get_node(&leader)?;
    Some((leader, node.peer_addr.clone()))
}

pub(crate) fn not_leader(
    raft: &Raft,
    addrs: &ClientAddrs,
    f: ForwardToLeader<u64, NodeInfo>,
) -> ProposeError {
    let node = match (f.leader_node, f.leader_id) {
        (Some(node), _) => Some(node),
        (None, Some(id)) => raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned(),
        (None, None) => None,
    };
    let leader_client_addr = match (node, f.leader_id) {
        (Some(n), _) if !n.client_addr.is_empty() => Some(n.client_addr),
        (Some(n), Some(id)) => addrs.cached(id, &n.peer_addr),
        _ => None,
    };
    ProposeError::NotLeader {
        leader_id: f.leader_id,
        leader_client_addr,
    }
}

/// Maps an openraft fatal error: a stopped node is unavailable, anything else is fatal.
pub(crate) fn fatal_to_propose(f: Fatal<u64>) -> ProposeError {
    match f {
        Fatal::Stopped => ProposeError::Unavailable("the raft node is shutting down".to_string()),
        other => ProposeError::Fatal(other.to_string()),
    }
}

fn build_config(opts: &RaftOptions) -> Result<openraft::Config, RaftError> {
    if opts.snapshot_every == 0 {
        return Err(RaftError::InvalidOptions(
            "snapshot_every must be at least 1".to_string(),
        ));
    }
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let config = openraft::Config {
        cluster_name: "concord".to_string(),
        heartbeat_interval: millis(opts.heartbeat_interval),
        election_timeout_min: millis(opts.election_timeout.0),
        election_timeout_max: millis(opts.election_timeout.1),
        install_snapshot_timeout: millis(INSTALL_SNAPSHOT_TIMEOUT),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_every),
        max_in_snapshot_log_to_keep: opts.snapshot_every.min(MAX_LOG_KEPT_BEHIND_SNAPSHOT),
        max_payload_entries: MAX_ENTRIES_PER_APPEND,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| RaftError::InvalidOptions(e.to_string()))
}

/// Opens the log and the snapshot directory under `data_dir`. Blocking.
fn open_storage(
    data_dir: &Path,
) -> Result<(LogStore, SnapshotFiles, Option<StoredSnapshot>), RaftError> {
    std::fs::create_dir_all(data_dir).map_err(|source| RaftError::Io {
        context: format!("cannot create the data directory {}", data_dir.display()),
        source,
    })?;
    let db_path = data_dir.join("raft.redb");
    let log = LogStore::open(&db_path)
        .map_err(|e| RaftError::Storage(format!("{}: {e}", db_path.display())))?;
    let snap_dir = data_dir.join("snapshots");
    let (files, loaded) = SnapshotFiles::open(&snap_dir).map_err(|source| RaftError::Io {
        context: format!("cannot read snapshots in {}", snap_dir.display()),
        source,
    })?;
    Ok((log, files, loaded))
}

/// Publishes leader/term changes from openraft's metrics; ends when openraft stops.
async fn follow_leadership(
    node_id: u64,
    mut metrics: watch::Receiver<RaftMetrics<u64, NodeInfo>>,
    tx: watch::Sender<Leadership>,
) {
    loop {
        // The borrow ends before the await below (openraft #1238).
        let now = {
            let m = metrics.borrow_and_update();
            Leadership {
                leader_id: m.current_leader,
                term: m.current_term,
            }
        };
        let changed = tx.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
        if changed && now.leader_id.is_some() {
            tracing::info!(node_id, leader_id = ?now.leader_id, term = now.term, "leader known");
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Waits until the last handle on the redb database is dropped.
async fn wait_released(db: &Weak<Database>) -> Result<(), RaftError> {
    let started = Instant::now();
    while db.strong_count() > 0 {
        if started.elapsed() > STORAGE_RELEASE_TIMEOUT {
            return Err(RaftError::Shutdown(
                "the raft log is still open after shutdown (a task did not stop)".to_string(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
