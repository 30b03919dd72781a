//! Command-line grammar (clap derive): every subcommand, flag and default in one place.
//!
//! `--addr` means two things: on client commands it is the server URL (also
//! from `CONCORD_ADDR`, before or after the subcommand), on `dev` it is the
//! address to listen on. Clap forbids one long flag with two meanings in one
//! command, so the client flag is global only inside the client subcommand
//! trees (`status`, `kv`, `services`, `config`, `lease`, ...), and the top-level `--addr`
//! (before the subcommand) is a plain option that `dev`/`server` ignore.

use std::ffi::OsString;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use concord_api::config::ConfigFormat;
use concord_api::registry::DEFAULT_WEIGHT;
use concord_api::transactions::TxnStatus;
use concord_server::ServerConfig;

use crate::cmd_config::ConfigAddr;

/// concord: a Raft-replicated service registry, KV store, leases and watches in one binary.
#[derive(Debug, Parser)]
#[command(name = "concord", version, propagate_version = true)]
pub struct Cli {
    /// Server URL for client commands (status, kv, services, config, lease, ...).
    #[arg(
        long,
        env = "CONCORD_ADDR",
        default_value = concord_client::DEFAULT_BASE_URL,
        value_name = "URL"
    )]
    pub addr: String,

    /// Print the server's JSON instead of human-readable tables.
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,

    /// Let any node answer reads from its local state (?consistency=stale):
    /// faster and available without a leader, but possibly behind.
    #[arg(long, global = true, help_heading = "Client options")]
    pub stale: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a single development node with embedded storage (bootstraps itself as node 1).
    Dev(DevArgs),
    /// Run the shop demo: a node, a gateway and two instances of each shop service.
    Demo(DemoArgs),
    /// Run one instance of a shop demo service (started by `concord demo`).
    #[command(hide = true)]
    Shop(ShopArgs),
    /// Run one node of a cluster.
    Server(ServerArgs),
    /// Run a gateway: a reverse proxy whose routes and endpoints come from Concord.
    Gateway(GatewayArgs),
    /// Show the node's view of the cluster: leader, term, revision, members.
    Status(StatusArgs),
    /// Read and write keys.
    Kv(KvArgs),
    /// Register, discover and deregister service instances.
    Services(ServicesArgs),
    /// Publish, read, roll back and gray-release configuration items.
    Config(ConfigArgs),
    /// Store, list and remove gateway routes.
    Route(RouteArgs),
    /// Grant, refresh and revoke leases.
    Lease(LeaseArgs),
    /// Back up the store, or seed a new data directory from a backup.
    Snapshot(SnapshotArgs),
    /// List, add and remove cluster members.
    Members(MembersArgs),
    /// Submit and inspect distributed transactions; retry or resolve stuck ones.
    Txn(TxnArgs),
}

/// Flags shared by all client commands; usable anywhere after the subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// Server URL (overrides --addr before the subcommand and CONCORD_ADDR).
    #[arg(
        id = "client_addr",
        long = "addr",
        global = true,
        value_name = "URL",
        help_heading = "Client options"
    )]
    pub addr: Option<String>,
}

impl ClientArgs {
    /// The server URL to talk to: this `--addr` wins over `top_level` (the
    /// `--addr` before the subcommand, itself from CONCORD_ADDR or the default).
    pub fn server_url<'a>(&'a self, top_level: &'a str) -> &'a str {
        self.addr.as_deref().unwrap_or(top_level)
    }
}

/// `concord dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory for the Raft log, vote and snapshots (created if missing).
    #[arg(long, default_value = "./concord-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Client API listen address (HTTP/JSON, SSE, /metrics); port 0 picks a free port.
    #[arg(
        id = "listen_addr",
        long = "addr",
        default_value = "127.0.0.1:7600",
        value_name = "HOST:PORT",
        value_parser = parse_socket_addr
    )]
    pub addr: SocketAddr,

    /// Raft peer listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7601", value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub peer_addr: SocketAddr,

    /// Also run a gateway (`concord gateway`) on this address, following this node.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub gateway_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `concord demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the node's data and the shop's databases (created if missing;
    /// reused, with its orders and balances, on the next run).
    #[arg(long, default_value = "./concord-demo", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Client API listen address; port 0 picks a free port.
    #[arg(
        id = "demo_addr",
        long = "addr",
        default_value = "127.0.0.1:7600",
        value_name = "HOST:PORT",
        value_parser = parse_socket_addr
    )]
    pub addr: SocketAddr,

    /// Raft peer listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7601", value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub peer_addr: SocketAddr,

    /// Gateway listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7680", value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub gateway_addr: SocketAddr,

    /// Serve DNS (UDP and TCP) on this address, e.g. 127.0.0.1:7653; off when absent.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub dns_addr: Option<SocketAddr>,

    /// Instances of each shop service.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=9))]
    pub instances: u8,
}

/// `concord shop SERVICE` (hidden; `concord demo` starts these).
#[derive(Debug, Args)]
pub struct ShopArgs {
    /// Which service: users, inventory or orders.
    pub service: concord_shop::Service,

    /// URL of a Concord node (repeat for a cluster).
    #[arg(long = "server", value_name = "URL", required = true)]
    pub servers: Vec<String>,

    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub listen: SocketAddr,

    /// The service's data directory (its SQLite database, shared by its instances).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Instance id in the registry [default: SERVICE-PID].
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    /// Shut down when stdin reaches end of file: the parent that holds the pipe
    /// died, even by SIGKILL, so the instance does not outlive the demo.
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// `concord server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Raft node id, unique in the cluster and greater than 0.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_id: u64,

    /// Directory for the Raft log, vote and snapshots (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Client API listen address (HTTP/JSON, SSE, /metrics); port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub client_addr: SocketAddr,

    /// Raft peer listen address; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub peer_addr: SocketAddr,

    /// Initialize a new single-node cluster if the data directory is empty
    /// (ignored when it already holds state).
    #[arg(long)]
    pub bootstrap: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `concord gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// URL of a Concord node to take routes and instances from.
    #[arg(
        long,
        env = "CONCORD_ADDR",
        default_value = concord_client::DEFAULT_BASE_URL,
        value_name = "URL"
    )]
    pub server: String,

    /// Where to accept proxied traffic (HTTP/1.1 and h2c); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7680", value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub listen: SocketAddr,

    /// Serve /metrics, /admin/routes, /admin/upstreams and /ready here (keep it private).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    pub admin: Option<SocketAddr>,

    /// Worker threads [default: one per CPU core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Log one line per request (target concord_gateway::access, level info, on stderr).
    #[arg(long)]
    pub access_log: bool,

    /// On SIGTERM, how many seconds in-flight requests get to finish.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub drain_timeout_secs: u64,

    /// Close a client connection with no request in flight for this many
    /// seconds (idle keep-alive, or a request head that never completes).
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub client_idle_timeout_secs: u64,
}

/// How a `concord server` node forms or enters a cluster, and how it dials peers.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// Start a new cluster from a static member list, identical on every node:
    /// ID=HOST:PORT peer addresses, comma-separated (ignored when the data
    /// directory already holds state).
    #[arg(long, value_name = "ID=HOST:PORT,...", conflicts_with_all = ["bootstrap", "join"],
          value_parser = crate::member_list::parse_initial_cluster)]
    pub initial_cluster: Option<std::collections::BTreeMap<u64, String>>,

    /// Join a running cluster through any member's client URL: added as a
    /// learner, promoted to voter once caught up (ignored when the data
    /// directory already holds state).
    #[arg(long, value_name = "URL", conflicts_with = "bootstrap")]
    pub join: Option<String>,

    /// Dial node ID at HOST:PORT instead of the peer address in the membership
    /// (repeatable; for proxies and NAT).
    #[arg(long = "peer-route", value_name = "ID=HOST:PORT",
          value_parser = crate::member_list::parse_peer_route)]
    pub peer_routes: Vec<(u64, String)>,

    /// The peer address other members dial for this node [default: its
    /// --initial-cluster entry, else --peer-addr].
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::member_list::parse_host_port)]
    pub advertise_peer_addr: Option<String>,
}

impl ClusterArgs {
    /// Writes the cluster flags into a config.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), String> {
        let mut routes = std::collections::HashMap::new();
        for (id, addr) in &self.peer_routes {
            if routes.insert(*id, addr.clone()).is_some() {
                return Err(format!("--peer-route gives node {id} twice"));
            }
        }
        config.initial_cluster = self.initial_cluster.clone();
        config.join = self.join.clone();
        config.peer_routes = routes;
        config.advertise_peer_addr = self.advertise_peer_addr.clone();
        Ok(())
    }
}

/// Optional knobs for the rest of `ServerConfig`; defaults come from `ServerConfig::default()`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tuning")]
pub struct TuningArgs {
    /// Take a snapshot (and purge the Raft log behind it) every N applied entries.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().snapshot_every,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,

    /// Largest accepted KV value, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::default().max_value_bytes)]
    pub max_value_bytes: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,

    /// Change events kept for watches and blocking queries (older ones are compacted).
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().history_max_events)]
    pub history_max_events: usize,

    /// Bytes of change-event history kept for watches and blocking queries.
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::default().history_max_bytes)]
    pub history_max_bytes: usize,

    /// Idle watch streams get a progress event at least this often, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = millis(ServerConfig::default().progress_interval),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_interval_ms: u64,

    /// Raft heartbeat interval, in milliseconds; must be below the election timeout.
    #[arg(long, value_name = "MS", default_value_t = millis(ServerConfig::default().heartbeat_interval),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_ms: u64,

    /// Raft election timeout range in milliseconds, as MIN-MAX; each election
    /// picks a random timeout in it.
    #[arg(long, value_name = "MIN-MAX", default_value_t = MsRange::from(ServerConfig::default().election_timeout))]
    pub election_timeout_ms: MsRange,

    /// Versions of each config item kept in its history.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().config_history as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub config_history: u64,

    /// How long finished transactions stay readable before they are forgotten, in
    /// seconds (timed by the leader; a leader change only makes it longer).
    #[arg(long, value_name = "SECS", default_value_t = ServerConfig::default().txn_retention.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub txn_retention_secs: u64,

    /// Most finished transactions kept; the oldest beyond it are forgotten first.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().txn_max_finished)]
    pub txn_max_finished: usize,

    /// Serve DNS (UDP and TCP) on this address, e.g. 127.0.0.1:7653; off when absent.
    #[arg(long, value_name = "ADDR", help_heading = "DNS")]
    pub dns_addr: Option<std::net::SocketAddr>,

    /// TTL of DNS answers, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = ServerConfig::default().dns_ttl_secs, help_heading = "DNS")]
    pub dns_ttl: u32,
}

impl TuningArgs {
    /// Writes the knobs into a config, rejecting combinations Raft cannot work with.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), String> {
        if self.heartbeat_ms >= self.election_timeout_ms.min {
            return Err(format!(
                "--heartbeat-ms ({}) must be less than the minimum election timeout ({})",
                self.heartbeat_ms, self.election_timeout_ms.min
            ));
        }
        config.snapshot_every = self.snapshot_every;
        config.max_value_bytes = self.max_value_bytes;
        config.max_body_bytes = self.max_body_bytes;
        config.history_max_events = self.history_max_events;
        config.history_max_bytes = self.history_max_bytes;
        config.progress_interval = Duration::from_millis(self.progress_interval_ms);
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_ms);
        config.dns_addr = self.dns_addr;
        config.config_history = usize::try_from(self.config_history).unwrap_or(usize::MAX);
        config.dns_ttl_secs = self.dns_ttl;
        config.txn_retention = Duration::from_secs(self.txn_retention_secs);
        config.txn_max_finished = self.txn_max_finished;
        config.election_timeout = (
            Duration::from_millis(self.election_timeout_ms.min),
            Duration::from_millis(self.election_timeout_ms.max),
        );
        Ok(())
    }
}

/// A millisecond range written `MIN-MAX`, for the election timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsRange {
    /// Lower bound, in milliseconds.
    pub min: u64,
    /// Upper bound, in milliseconds.
    pub max: u64,
}

impl From<(Duration, Duration)> for MsRange {
    fn from((min, max): (Duration, Duration)) -> Self {
        MsRange {
            min: millis(min),
            max: millis(max),
        }
    }
}

impl fmt::Display for MsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl FromStr for MsRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (min, max) = s
            .split_once('-')
            .ok_or_else(|| format!("expected MIN-MAX in milliseconds, e.g. 500-1000, got {s:?}"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{v:?} is not a number of milliseconds"))
        };
        let (min, max) = (parse(min)?, parse(max)?);
        if min == 0 || min >= max {
            return Err(format!("need 0 < MIN < MAX, got {min}-{max}"));
        }
        Ok(MsRange { min, max })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `HOST:PORT`, resolving names like `localhost:7600` to their first address.
fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not a HOST:PORT address: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// `concord status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `concord kv ...`.
#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KvCommand,
}

/// The KV subcommands.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a value.
    Put {
        /// The key; may contain '/'.
        key: String,
        /// The value, stored as the exact bytes given.
        #[arg(allow_hyphen_values = true)]
        value: OsString,
        /// Only write if the key's current mod revision is R (0: only if the key is absent).
        #[arg(long, value_name = "R")]
        cas: Option<u64>,
        /// Attach the key to this lease; it is deleted when the lease ends.
        #[arg(long, value_name = "ID")]
        lease: Option<String>,
    },
    /// Read a value.
    Get {
        /// The key.
        key: String,
        /// Print the stored bytes exactly, with no trailing newline.
        #[arg(long)]
        raw: bool,
    },
    /// List the keys (and values) under a prefix.
    Ls {
        /// The prefix; empty lists every key.
        #[arg(default_value = "")]
        prefix: String,
        /// Only print key names.
        #[arg(long)]
        keys_only: bool,
        /// Return at most N keys.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Delete a key, or every key under a prefix.
    Del {
        /// The key (or prefix, with --prefix).
        key: String,
        /// Delete every key starting with KEY.
        #[arg(long)]
        prefix: bool,
        /// Only delete if the key's current mod revision is R.
        #[arg(long, value_name = "R")]
        cas: Option<u64>,
    },
    /// Print changes under a prefix as they happen, one line each, until Ctrl-C.
    Watch {
        /// The prefix; empty watches every key.
        #[arg(default_value = "")]
        prefix: String,
        /// Replay retained history from revision R (sent as from_revision) before live changes.
        #[arg(long = "from", value_name = "R")]
        from: Option<u64>,
    },
}

/// `concord services ...`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Registry namespace every subcommand works in.
    #[arg(long, global = true, default_value = "default", value_name = "NS")]
    pub namespace: String,
    #[command(subcommand)]
    pub command: ServicesCommand,
}

/// The service registry subcommands.
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// List services with their passing and total instance counts.
    Ls,
    /// List namespaces.
    Namespaces,
    /// Show a service's instances.
    Get {
        /// The service name.
        name: String,
        /// Only instances carrying this tag (repeat to require several).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Only instances whose status is passing.
        #[arg(long)]
        passing: bool,
        /// Only instances with this metadata pair KEY=VALUE (repeatable).
        #[arg(long = "meta", value_name = "K=V", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
    },
    /// Take an instance out of service (on) or put it back (off).
    Maintenance {
        /// The service name.
        name: String,
        /// The instance id.
        id: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Why (recorded with the instance).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Report a TTL check: pass, warn or fail.
    Check {
        /// The service name.
        name: String,
        /// The instance id.
        id: String,
        /// The check id.
        check: String,
        /// `pass`, `warn` or `fail`.
        #[arg(value_parser = ["pass", "warn", "fail"])]
        verb: String,
        /// A note recorded as the check's output.
        #[arg(long)]
        output: Option<String>,
    },
    /// Register (or replace) an instance.
    Register {
        /// The service name.
        name: String,
        /// The instance id, unique within the service.
        id: String,
        /// Host or IP clients should connect to.
        #[arg(long)]
        address: String,
        /// Port clients should connect to.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// A tag (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// A metadata pair KEY=VALUE (repeatable).
        #[arg(long = "meta", value_name = "K=V", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
        /// Relative share of traffic for weighted balancing.
        #[arg(long, default_value_t = DEFAULT_WEIGHT)]
        weight: u32,
        /// Make the instance ephemeral: it expires unless heartbeated within S seconds.
        #[arg(long, value_name = "S")]
        ttl: Option<u32>,
        /// Health checks as a JSON array (see docs/api.md), e.g.
        /// '[{"id":"http","type":"http","url":"http://10.0.0.5:8080/health"}]'.
        #[arg(long, value_name = "JSON")]
        checks: Option<String>,
    },
    /// Remove an instance.
    Deregister {
        /// The service name.
        name: String,
        /// The instance id.
        id: String,
    },
    /// Extend an ephemeral instance's TTL once.
    Heartbeat {
        /// The service name.
        name: String,
        /// The instance id.
        id: String,
    },
    /// Print a service's instance changes as they happen, until Ctrl-C.
    Watch {
        /// The service name.
        name: String,
        /// Replay retained history from revision R (sent as from_revision) before live changes.
        #[arg(long = "from", value_name = "R")]
        from: Option<u64>,
    },
}

/// `concord route ...`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: RouteCommand,
}

/// The gateway route subcommands.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Create or replace a route from a JSON file (`-` reads stdin).
    Put {
        /// The route's name.
        name: String,
        /// The route as JSON (see docs/api.md).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// List routes.
    Ls,
    /// Show one route.
    Get {
        /// The route's name.
        name: String,
    },
    /// Delete a route.
    #[command(alias = "delete")]
    Del {
        /// The route's name.
        name: String,
    },
}

/// `concord config ...`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The configuration center subcommands; items are addressed as `NS/GROUP/ID`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Publish a file's content as the item's next version.
    Put {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
        /// The file to publish; `-` reads stdin.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// json, yaml, toml, properties or text; defaults from the file extension,
        /// else the item keeps its current format (text for a new item).
        #[arg(long, value_name = "FORMAT")]
        format: Option<ConfigFormat>,
        /// Recorded with the version in the item's history (printable ASCII).
        #[arg(long)]
        comment: Option<String>,
        /// Only publish if the item's current version is V (0: only if it does not exist).
        #[arg(long, value_name = "V")]
        cas: Option<u64>,
    },
    /// Show an item: a header line, then its content.
    Get {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
        /// Show what this registered instance SERVICE/ID gets (its gray candidate, if selected).
        #[arg(long, value_name = "SERVICE/ID")]
        instance: Option<String>,
        /// Print the content only, exactly as published.
        #[arg(long)]
        raw: bool,
    },
    /// List the items of a namespace.
    Ls {
        /// The namespace.
        #[arg(value_name = "NS")]
        namespace: String,
        /// Only items of this group.
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// List an item's kept versions, newest first.
    History {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
    },
    /// Publish a kept version's content again, as a new version.
    Rollback {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
        /// The version to go back to (see `config history`).
        // The id differs from the field so it does not clash with `--version`.
        #[arg(id = "rollback_version", value_name = "VERSION")]
        version: u64,
    },
    /// Delete an item with its history.
    Delete {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
    },
    /// Stage, promote or cancel a gray release served to selected instances only.
    Gray {
        #[command(subcommand)]
        command: GrayCommand,
    },
    /// Print an item's changes as they happen, with the new content, until Ctrl-C.
    Watch {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
        /// Watch as this registered instance SERVICE/ID: also see gray changes that target it.
        #[arg(long, value_name = "SERVICE/ID")]
        instance: Option<String>,
        /// Replay retained history from revision R (sent as from_revision) before live changes.
        #[arg(long = "from", value_name = "R")]
        from: Option<u64>,
    },
}

/// The gray release subcommands.
#[derive(Debug, Subcommand)]
pub enum GrayCommand {
    /// Stage a file's content for the instances matching any selector flag.
    Put {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
        /// The file to stage; `-` reads stdin.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Select this instance SERVICE/ID (repeatable).
        #[arg(long = "instance", value_name = "SERVICE/ID")]
        instances: Vec<String>,
        /// Select instances carrying this tag (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Select instances with this metadata pair KEY=VALUE (repeatable).
        #[arg(long = "meta", value_name = "K=V", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
    },
    /// Publish the staged candidate to everyone as the next version.
    Promote {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
    },
    /// Withdraw the staged candidate.
    Cancel {
        /// The item, NS/GROUP/ID.
        #[arg(value_name = "NS/GROUP/ID")]
        addr: ConfigAddr,
    },
}

/// `KEY=VALUE` for `--meta`.
fn parse_meta(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `concord members ...`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: MembersCommand,
}

/// The membership subcommands (changes must reach the leader).
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List the members: id, addresses, role, and which one leads.
    Ls,
    /// Add a node as a learner; it is promoted to voter once caught up.
    Add {
        /// The new node's id (> 0, not in the cluster yet).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// HOST:PORT where the new node serves Raft traffic.
        #[arg(value_parser = crate::member_list::parse_host_port)]
        peer_addr: String,
        /// HOST:PORT where the new node serves the client API.
        #[arg(id = "member_client_addr", value_name = "CLIENT_ADDR",
              value_parser = crate::member_list::parse_host_port)]
        client_addr: String,
        /// Wait until the node has caught up and been promoted to voter.
        #[arg(long)]
        voter: bool,
    },
    /// Remove a member (voter or learner).
    Remove {
        /// The member's id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
}

/// `concord snapshot ...`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// The snapshot subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent backup of the whole store to FILE (written atomically).
    Save {
        /// Where to write the backup.
        file: std::path::PathBuf,
    },
    /// Seed a NEW data directory from a backup; the first start of a node on it
    /// (`concord dev`, or `concord server --bootstrap`) restores the data.
    Restore {
        /// The backup file from `snapshot save`.
        file: std::path::PathBuf,
        /// The data directory to create (must not exist or be empty).
        #[arg(long, value_name = "DIR")]
        data_dir: std::path::PathBuf,
    },
}

/// `concord lease ...`.
#[derive(Debug, Args)]
pub struct LeaseArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: LeaseCommand,
}

/// The lease subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Create a lease that expires TTL seconds after its last keepalive.
    Grant {
        /// Time to live, in seconds.
        ttl: u32,
    },
    /// Restart a lease's TTL once.
    Keepalive {
        /// The lease id (16 hex digits).
        id: String,
    },
    /// End a lease now, deleting its keys.
    Revoke {
        /// The lease id.
        id: String,
    },
    /// Show a lease's TTL, time left and keys.
    Info {
        /// The lease id.
        id: String,
    },
}

/// `concord txn ...`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TxnCommand,
}

/// The distributed transaction subcommands.
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactions (one page, ordered by id).
    Ls {
        /// Only transactions in this status.
        #[arg(long, value_parser = txn_status_parser())]
        status: Option<TxnStatus>,
        /// At most N transactions.
        #[arg(long, value_name = "N",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        limit: Option<usize>,
        /// Start after this id (the `next page` of the previous listing).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// Show a transaction's status, steps and history as JSON.
    Get {
        /// The transaction id.
        id: String,
    },
    /// Restart a stuck transaction with fresh retry limits.
    Retry {
        /// The transaction id.
        id: String,
    },
    /// Close a stuck or running transaction by hand, after fixing its effects yourself.
    Resolve {
        /// The transaction id.
        id: String,
        /// Why it was closed by hand; kept in its history.
        #[arg(long)]
        reason: String,
    },
    /// Submit a transaction request (JSON, see docs/transactions.md) and print the answer.
    Submit {
        /// The request file; `-` reads stdin.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
}

/// `--status`: only the wire names, listed in the error and in `--help`.
fn txn_status_parser() -> impl clap::builder::TypedValueParser<Value = TxnStatus> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(TxnStatus::ALL.map(TxnStatus::as_str))
        .try_map(|s| TxnStatus::parse(&s).ok_or("unknown transaction status"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["concord"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let mut argv = vec!["concord"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect_err("should not parse")
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dev_defaults() {
        let cli = parse(&["dev"]);
        let Command::Dev(dev) = cli.command else {
            panic!("not dev")
        };
        assert_eq!(dev.data_dir, PathBuf::from("./concord-data"));
        assert_eq!(dev.addr, "127.0.0.1:7600".parse().unwrap());
        assert_eq!(dev.peer_addr, "127.0.0.1:7601".parse().unwrap());
        let mut config = ServerConfig::default();
        let expected = ServerConfig::default();
        dev.tuning.apply(&mut config).unwrap();
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
    }

    #[test]
    fn dev_addr_is_the_listen_address() {
        let cli = parse(&[
            "dev",
            "--data-dir",
            "/tmp/d",
            "--addr",
            "127.0.0.1:0",
            "--peer-addr",
            "127.0.0.1:0",
        ]);
        let Command::Dev(dev) = cli.command else {
            panic!("not dev")
        };
        assert_eq!(dev.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(dev.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(dev.peer_addr.port(), 0);
        assert!(
            parse_err(&["dev", "--addr", "not an address"])
                .to_string()
                .contains("HOST:PORT")
        );
    }

    #[test]
    fn gateway_flags_and_defaults() {
        let Command::Gateway(g) = parse(&["gateway"]).command else {
            panic!("not gateway")
        };
        assert_eq!(g.server, concord_client::DEFAULT_BASE_URL);
        assert_eq!(g.listen, "127.0.0.1:7680".parse().unwrap());
        assert_eq!((g.admin, g.threads, g.access_log), (None, None, false));
        assert_eq!((g.drain_timeout_secs, g.client_idle_timeout_secs), (30, 30));
        let Command::Gateway(g) = parse(&[
            "gateway",
            "--server",
            "http://127.0.0.1:7610",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--access-log",
            "--drain-timeout-secs",
            "5",
            "--client-idle-timeout-secs",
            "7",
        ])
        .command
        else {
            panic!("not gateway")
        };
        assert_eq!(g.server, "http://127.0.0.1:7610");
        assert_eq!(g.listen.port(), 0);
        assert_eq!(g.admin.map(|a| a.port()), Some(0));
        assert_eq!(
            (
                g.threads,
                g.access_log,
                g.drain_timeout_secs,
                g.client_idle_timeout_secs
            ),
            (Some(1), true, 5, 7)
        );
        parse_err(&["gateway", "--threads", "0"]);
        parse_err(&["gateway", "--client-idle-timeout-secs", "0"]);
        let Command::Dev(dev) = parse(&["dev"]).command else {
            panic!("not dev")
        };
        assert_eq!(dev.gateway_addr, None);
        let Command::Dev(dev) = parse(&["dev", "--gateway-addr", "127.0.0.1:0"]).command else {
            panic!("not dev")
        };
        assert_eq!(dev.gateway_addr, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn server_flags() {
        let cli = parse(&[
            "server",
            "--node-id",
            "2",
            "--data-dir",
            "d2",
            "--client-addr",
            "127.0.0.1:7610",
            "--peer-addr",
            "localhost:7611",
            "--bootstrap",
            "--snapshot-every",
            "50",
            "--max-value-bytes",
            "1024",
            "--max-body-bytes",
            "4096",
            "--history-max-events",
            "10",
            "--history-max-bytes",
            "65536",
            "--progress-interval-ms",
            "250",
            "--heartbeat-ms",
            "50",
            "--election-timeout-ms",
            "150-300",
        ]);
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        assert_eq!(s.node_id, 2);
        assert!(s.bootstrap);
        assert_eq!(s.client_addr.port(), 7610);
        assert_eq!(s.peer_addr.port(), 7611);
        let mut config = ServerConfig::default();
        s.tuning.apply(&mut config).unwrap();
        assert_eq!(config.snapshot_every, 50);
        assert_eq!(config.max_value_bytes, 1024);
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.history_max_events, 10);
        assert_eq!(config.history_max_bytes, 65536);
        assert_eq!(config.progress_interval, Duration::from_millis(250));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(
            config.election_timeout,
            (Duration::from_millis(150), Duration::from_millis(300))
        );
    }

    #[test]
    fn server_requires_its_addresses_and_a_positive_id() {
        parse_err(&["server", "--node-id", "1"]);
        parse_err(&[
            "server",
            "--node-id",
            "0",
            "--data-dir",
            "d",
            "--client-addr",
            "127.0.0.1:1",
            "--peer-addr",
            "127.0.0.1:2",
        ]);
        let cli = parse(&[
            "server",
            "--node-id",
            "1",
            "--data-dir",
            "d",
            "--client-addr",
            "127.0.0.1:1",
            "--peer-addr",
            "127.0.0.1:2",
        ]);
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        assert!(!s.bootstrap);
    }

    #[test]
    fn tuning_validation() {
        assert_eq!(
            "500-1000".parse::<MsRange>().unwrap().to_string(),
            "500-1000"
        );
        for bad in ["1000-500", "0-10", "5-5", "500", "a-b", ""] {
            assert!(bad.parse::<MsRange>().is_err(), "{bad}");
        }
        let cli = parse(&[
            "dev",
            "--heartbeat-ms",
            "600",
            "--election-timeout-ms",
            "500-1000",
        ]);
        let Command::Dev(dev) = cli.command else {
            panic!("not dev")
        };
        assert!(dev.tuning.apply(&mut ServerConfig::default()).is_err());
    }

    #[test]
    fn help_documents_the_tuning_flags() {
        let help = Cli::command()
            .find_subcommand_mut("server")
            .unwrap()
            .render_long_help()
            .to_string();
        for flag in [
            "--snapshot-every",
            "--max-value-bytes",
            "--max-body-bytes",
            "--history-max-events",
            "--history-max-bytes",
            "--progress-interval-ms",
            "--heartbeat-ms",
            "--election-timeout-ms",
            "200-400",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }

    #[test]
    fn client_addr_everywhere() {
        // Default (CONCORD_ADDR is not set by the test harness for this binary).
        let cli = parse(&["status"]);
        let Command::Status(ref s) = cli.command else {
            panic!()
        };
        if std::env::var_os("CONCORD_ADDR").is_none() {
            assert_eq!(s.client.server_url(&cli.addr), "http://127.0.0.1:7600");
        }

        // Before the subcommand.
        let cli = parse(&["--addr", "http://a:1", "status"]);
        let Command::Status(ref s) = cli.command else {
            panic!()
        };
        assert_eq!(s.client.server_url(&cli.addr), "http://a:1");

        // After the subcommand, and deep inside a subcommand tree.
        let cli = parse(&["status", "--addr", "http://b:2"]);
        let Command::Status(ref s) = cli.command else {
            panic!()
        };
        assert_eq!(s.client.server_url(&cli.addr), "http://b:2");

        let cli = parse(&[
            "--addr",
            "http://a:1",
            "kv",
            "get",
            "k",
            "--addr",
            "http://c:3",
        ]);
        let Command::Kv(ref kv) = cli.command else {
            panic!()
        };
        assert_eq!(kv.client.server_url(&cli.addr), "http://c:3");

        let cli = parse(&["kv", "--addr", "http://d:4", "ls", "app/"]);
        let Command::Kv(ref kv) = cli.command else {
            panic!()
        };
        assert_eq!(kv.client.server_url(&cli.addr), "http://d:4");

        for tree in [&["services", "ls"][..], &["lease", "grant", "5"][..]] {
            let mut args = tree.to_vec();
            args.extend(["--addr", "http://e:5"]);
            let cli = parse(&args);
            let client = match &cli.command {
                Command::Services(s) => &s.client,
                Command::Lease(l) => &l.client,
                _ => panic!(),
            };
            assert_eq!(client.server_url(&cli.addr), "http://e:5");
        }
    }

    #[test]
    fn global_json_and_stale() {
        assert!(parse(&["--json", "status"]).json);
        assert!(parse(&["status", "--json"]).json);
        assert!(parse(&["kv", "get", "k", "--json"]).json);
        assert!(parse(&["services", "--json", "ls"]).json);
        assert!(!parse(&["status"]).json);
        assert!(parse(&["kv", "get", "k", "--stale"]).stale);
    }

    #[test]
    fn kv_spellings() {
        match parse(&[
            "kv",
            "put",
            "app/a",
            "hello world",
            "--cas",
            "7",
            "--lease",
            "00000000000000ab",
        ])
        .command
        {
            Command::Kv(KvArgs {
                command:
                    KvCommand::Put {
                        key,
                        value,
                        cas,
                        lease,
                    },
                ..
            }) => {
                assert_eq!(key, "app/a");
                assert_eq!(value, "hello world");
                assert_eq!(cas, Some(7));
                assert_eq!(lease.as_deref(), Some("00000000000000ab"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "put", "k", "-5"]).command {
            Command::Kv(KvArgs {
                command: KvCommand::Put { value, cas, .. },
                ..
            }) => {
                assert_eq!(value, "-5");
                assert_eq!(cas, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "get", "k", "--raw"]).command {
            Command::Kv(KvArgs {
                command: KvCommand::Get { key, raw },
                ..
            }) => assert!(key == "k" && raw),
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "ls", "app/"]).command {
            Command::Kv(KvArgs {
                command:
                    KvCommand::Ls {
                        prefix,
                        keys_only,
                        limit,
                    },
                ..
            }) => assert!(prefix == "app/" && !keys_only && limit.is_none()),
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "del", "app/", "--prefix"]).command {
            Command::Kv(KvArgs {
                command: KvCommand::Del { key, prefix, cas },
                ..
            }) => assert!(key == "app/" && prefix && cas.is_none()),
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "del", "k"]).command {
            Command::Kv(KvArgs {
                command: KvCommand::Del { prefix, .. },
                ..
            }) => assert!(!prefix),
            other => panic!("{other:?}"),
        }
        match parse(&["kv", "watch", "app/", "--from", "12"]).command {
            Command::Kv(KvArgs {
                command: KvCommand::Watch { prefix, from },
                ..
            }) => assert!(prefix == "app/" && from == Some(12)),
            other => panic!("{other:?}"),
        }
        parse_err(&["kv", "put", "only-key"]);
        parse_err(&["kv", "put", "k", "v", "--cas", "x"]);
    }

    #[test]
    fn services_spellings() {
        assert!(matches!(
            parse(&["services", "ls"]).command,
            Command::Services(ServicesArgs {
                command: ServicesCommand::Ls,
                ..
            })
        ));
        match parse(&["services", "get", "orders", "--tag", "v2", "--tag", "eu"]).command {
            Command::Services(ServicesArgs {
                command:
                    ServicesCommand::Get {
                        name,
                        tags,
                        passing,
                        meta,
                    },
                namespace,
                ..
            }) => {
                assert_eq!(name, "orders");
                assert_eq!(tags, ["v2", "eu"]);
                assert!(!passing && meta.is_empty());
                assert_eq!(namespace, "default");
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "services",
            "get",
            "orders",
            "--passing",
            "--meta",
            "zone=a",
            "--namespace",
            "prod",
        ])
        .command
        {
            Command::Services(ServicesArgs {
                command: ServicesCommand::Get { passing, meta, .. },
                namespace,
                ..
            }) => {
                assert!(passing);
                assert_eq!(meta, [("zone".to_owned(), "a".to_owned())]);
                assert_eq!(namespace, "prod");
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "services",
            "--namespace",
            "prod",
            "maintenance",
            "orders",
            "o1",
            "on",
            "--reason",
            "deploy",
        ])
        .command
        {
            Command::Services(ServicesArgs {
                command:
                    ServicesCommand::Maintenance {
                        name,
                        id,
                        state,
                        reason,
                    },
                namespace,
                ..
            }) => {
                assert_eq!((name.as_str(), id.as_str()), ("orders", "o1"));
                assert_eq!((state.as_str(), reason.as_str()), ("on", "deploy"));
                assert_eq!(namespace, "prod");
            }
            other => panic!("{other:?}"),
        }
        parse_err(&["services", "maintenance", "orders", "o1", "maybe"]);
        match parse(&[
            "services",
            "register",
            "orders",
            "o1",
            "--address",
            "10.0.0.5",
            "--port",
            "8080",
            "--tag",
            "v2",
            "--tag",
            "eu",
            "--meta",
            "zone=a",
            "--meta",
            "url=http://x?a=b",
            "--weight",
            "5",
            "--ttl",
            "10",
        ])
        .command
        {
            Command::Services(ServicesArgs {
                command:
                    ServicesCommand::Register {
                        name,
                        id,
                        address,
                        port,
                        tags,
                        meta,
                        weight,
                        ttl,
                        ..
                    },
                ..
            }) => {
                assert_eq!((name.as_str(), id.as_str()), ("orders", "o1"));
                assert_eq!((address.as_str(), port), ("10.0.0.5", 8080));
                assert_eq!(tags, ["v2", "eu"]);
                assert_eq!(
                    meta,
                    [
                        ("zone".to_owned(), "a".to_owned()),
                        ("url".to_owned(), "http://x?a=b".to_owned())
                    ]
                );
                assert_eq!((weight, ttl), (5, Some(10)));
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "services",
            "register",
            "orders",
            "o1",
            "--address",
            "h",
            "--port",
            "1",
        ])
        .command
        {
            Command::Services(ServicesArgs {
                command:
                    ServicesCommand::Register {
                        weight,
                        ttl,
                        tags,
                        meta,
                        ..
                    },
                ..
            }) => {
                assert_eq!(weight, DEFAULT_WEIGHT);
                assert!(ttl.is_none() && tags.is_empty() && meta.is_empty());
            }
            other => panic!("{other:?}"),
        }
        parse_err(&["services", "register", "orders", "o1", "--address", "h"]);
        parse_err(&[
            "services",
            "register",
            "orders",
            "o1",
            "--address",
            "h",
            "--port",
            "0",
        ]);
        parse_err(&[
            "services",
            "register",
            "orders",
            "o1",
            "--address",
            "h",
            "--port",
            "1",
            "--meta",
            "novalue",
        ]);
        match parse(&["services", "deregister", "orders", "o1"]).command {
            Command::Services(ServicesArgs {
                command: ServicesCommand::Deregister { name, id },
                ..
            }) => assert!(name == "orders" && id == "o1"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["services", "heartbeat", "orders", "o1"]).command,
            Command::Services(ServicesArgs {
                command: ServicesCommand::Heartbeat { .. },
                ..
            })
        ));
        assert!(matches!(
            parse(&["services", "watch", "orders", "--from", "3"]).command,
            Command::Services(ServicesArgs {
                command: ServicesCommand::Watch { from: Some(3), .. },
                ..
            })
        ));
    }

    #[test]
    fn config_spellings() {
        fn addr(s: &str) -> ConfigAddr {
            s.parse().unwrap()
        }
        match parse(&[
            "config",
            "put",
            "prod/orders/app.yaml",
            "--file",
            "app.yaml",
            "--format",
            "YML",
            "--comment",
            "pool 8",
            "--cas",
            "3",
        ])
        .command
        {
            Command::Config(ConfigArgs {
                command:
                    ConfigCommand::Put {
                        addr: a,
                        file,
                        format,
                        comment,
                        cas,
                    },
                ..
            }) => {
                assert_eq!(a, addr("prod/orders/app.yaml"));
                assert_eq!(file, PathBuf::from("app.yaml"));
                assert_eq!(format, Some(ConfigFormat::Yaml));
                assert_eq!(comment.as_deref(), Some("pool 8"));
                assert_eq!(cas, Some(3));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["config", "put", "n/g/i", "--file", "-"]).command {
            Command::Config(ConfigArgs {
                command:
                    ConfigCommand::Put {
                        file,
                        format: None,
                        comment: None,
                        cas: None,
                        ..
                    },
                ..
            }) => assert_eq!(file, PathBuf::from("-")),
            other => panic!("{other:?}"),
        }
        parse_err(&["config", "put", "n/g/i"]);
        parse_err(&["config", "put", "n/g", "--file", "a"]);
        parse_err(&["config", "put", "n/g/i", "--file", "a", "--format", "xml"]);
        match parse(&["config", "get", "n/g/i", "--instance", "orders/o1", "--raw"]).command {
            Command::Config(ConfigArgs {
                command:
                    ConfigCommand::Get {
                        addr: a,
                        instance,
                        raw,
                    },
                ..
            }) => {
                assert_eq!(a, addr("n/g/i"));
                assert_eq!(instance.as_deref(), Some("orders/o1"));
                assert!(raw);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["config", "get", "n/g/i", "--json"]).json);
        match parse(&["config", "ls", "prod", "--group", "orders"]).command {
            Command::Config(ConfigArgs {
                command: ConfigCommand::Ls { namespace, group },
                ..
            }) => {
                assert_eq!(namespace, "prod");
                assert_eq!(group.as_deref(), Some("orders"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["config", "history", "n/g/i"]).command,
            Command::Config(ConfigArgs {
                command: ConfigCommand::History { .. },
                ..
            })
        ));
        assert!(matches!(
            parse(&["config", "rollback", "n/g/i", "2"]).command,
            Command::Config(ConfigArgs {
                command: ConfigCommand::Rollback { version: 2, .. },
                ..
            })
        ));
        parse_err(&["config", "rollback", "n/g/i"]);
        assert!(matches!(
            parse(&["config", "delete", "n/g/i"]).command,
            Command::Config(ConfigArgs {
                command: ConfigCommand::Delete { .. },
                ..
            })
        ));
        match parse(&[
            "config",
            "gray",
            "put",
            "n/g/i",
            "--file",
            "next.yaml",
            "--instance",
            "orders/o1",
            "--instance",
            "orders/o2",
            "--tag",
            "canary",
            "--meta",
            "zone=a",
        ])
        .command
        {
            Command::Config(ConfigArgs {
                command:
                    ConfigCommand::Gray {
                        command:
                            GrayCommand::Put {
                                file,
                                instances,
                                tags,
                                meta,
                                ..
                            },
                    },
                ..
            }) => {
                assert_eq!(file, PathBuf::from("next.yaml"));
                assert_eq!(instances, ["orders/o1", "orders/o2"]);
                assert_eq!(tags, ["canary"]);
                assert_eq!(meta, [("zone".to_owned(), "a".to_owned())]);
            }
            other => panic!("{other:?}"),
        }
        for (verb, promote) in [("promote", true), ("cancel", false)] {
            match parse(&["config", "gray", verb, "n/g/i"]).command {
                Command::Config(ConfigArgs {
                    command: ConfigCommand::Gray { command },
                    ..
                }) => assert_eq!(matches!(command, GrayCommand::Promote { .. }), promote),
                other => panic!("{other:?}"),
            }
        }
        match parse(&[
            "config",
            "watch",
            "n/g/i",
            "--instance",
            "orders/o1",
            "--from",
            "5",
            "--addr",
            "http://h:1",
        ])
        .command
        {
            Command::Config(ConfigArgs {
                command: ConfigCommand::Watch { instance, from, .. },
                client,
            }) => {
                assert_eq!(instance.as_deref(), Some("orders/o1"));
                assert_eq!(from, Some(5));
                assert_eq!(client.addr.as_deref(), Some("http://h:1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lease_spellings() {
        assert!(matches!(
            parse(&["lease", "grant", "10"]).command,
            Command::Lease(LeaseArgs {
                command: LeaseCommand::Grant { ttl: 10 },
                ..
            })
        ));
        for (sub, want) in [("keepalive", "a1"), ("revoke", "a1"), ("info", "a1")] {
            let cli = parse(&["lease", sub, want]);
            let Command::Lease(LeaseArgs { command, .. }) = cli.command else {
                panic!()
            };
            let id = match command {
                LeaseCommand::Keepalive { id }
                | LeaseCommand::Revoke { id }
                | LeaseCommand::Info { id } => id,
                LeaseCommand::Grant { .. } => panic!("grant"),
            };
            assert_eq!(id, want);
        }
        parse_err(&["lease", "grant", "ten"]);
    }

    #[test]
    fn status_spelling_and_missing_subcommand() {
        assert!(matches!(parse(&["status"]).command, Command::Status(_)));
        parse_err(&[]);
        parse_err(&["bogus"]);
    }

    #[test]
    fn server_cluster_flags() {
        let base = [
            "server",
            "--node-id",
            "1",
            "--data-dir",
            "d",
            "--client-addr",
            "127.0.0.1:7610",
            "--peer-addr",
            "127.0.0.1:7611",
        ];
        fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            args
        }
        let cli = parse(&with(
            &base,
            &[
                "--initial-cluster",
                "1=127.0.0.1:7611,2=127.0.0.1:7621,3=127.0.0.1:7631",
                "--peer-route",
                "2=127.0.0.1:9002",
                "--peer-route",
                "3=127.0.0.1:9003",
                "--advertise-peer-addr",
                "10.0.0.1:7611",
            ],
        ));
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        let mut config = ServerConfig::default();
        s.cluster.apply(&mut config).unwrap();
        let initial = config.initial_cluster.expect("initial cluster");
        assert_eq!(initial.len(), 3);
        assert_eq!(initial[&3], "127.0.0.1:7631");
        assert_eq!(config.peer_routes.len(), 2);
        assert_eq!(config.peer_routes[&2], "127.0.0.1:9002");
        assert_eq!(config.advertise_peer_addr.as_deref(), Some("10.0.0.1:7611"));
        assert!(config.join.is_none());

        let cli = parse(&with(&base, &["--join", "http://127.0.0.1:7610"]));
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        let mut config = ServerConfig::default();
        s.cluster.apply(&mut config).unwrap();
        assert_eq!(config.join.as_deref(), Some("http://127.0.0.1:7610"));

        parse_err(&with(&base, &["--initial-cluster", "1=a:1", "--bootstrap"]));
        parse_err(&with(
            &base,
            &["--initial-cluster", "1=a:1", "--join", "http://x"],
        ));
        parse_err(&with(&base, &["--join", "http://x", "--bootstrap"]));
        parse_err(&with(&base, &["--initial-cluster", "1=a"]));
        parse_err(&with(&base, &["--peer-route", "2"]));
        let cli = parse(&with(
            &base,
            &["--peer-route", "2=a:1", "--peer-route", "2=b:1"],
        ));
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        assert!(s.cluster.apply(&mut ServerConfig::default()).is_err());
    }

    #[test]
    fn members_spellings() {
        assert!(matches!(
            parse(&["members", "ls"]).command,
            Command::Members(MembersArgs {
                command: MembersCommand::Ls,
                ..
            })
        ));
        match parse(&[
            "members",
            "add",
            "4",
            "127.0.0.1:7641",
            "127.0.0.1:7640",
            "--voter",
        ])
        .command
        {
            Command::Members(MembersArgs {
                command:
                    MembersCommand::Add {
                        id,
                        peer_addr,
                        client_addr,
                        voter,
                    },
                ..
            }) => {
                assert_eq!(id, 4);
                assert_eq!(peer_addr, "127.0.0.1:7641");
                assert_eq!(client_addr, "127.0.0.1:7640");
                assert!(voter);
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["members", "remove", "4", "--addr", "http://h:1"]);
        let Command::Members(m) = &cli.command else {
            panic!()
        };
        assert!(matches!(m.command, MembersCommand::Remove { id: 4 }));
        assert_eq!(m.client.server_url(&cli.addr), "http://h:1");
        parse_err(&["members", "add", "0", "a:1", "a:2"]);
        parse_err(&["members", "add", "4", "a", "a:2"]);
        parse_err(&["members", "add", "4", "a:1"]);
        parse_err(&["members", "remove", "x"]);
    }

    #[test]
    fn txn_spellings() {
        let cli = parse(&[
            "txn",
            "ls",
            "--status",
            "stuck",
            "--limit",
            "20",
            "--after",
            "o:1",
            "--addr",
            "http://h:1",
        ]);
        let Command::Txn(t) = &cli.command else {
            panic!()
        };
        assert_eq!(t.client.server_url(&cli.addr), "http://h:1");
        match &t.command {
            TxnCommand::Ls {
                status,
                limit,
                after,
            } => {
                assert_eq!(*status, Some(TxnStatus::Stuck));
                assert_eq!(*limit, Some(20));
                assert_eq!(after.as_deref(), Some("o:1"));
            }
            other => panic!("{other:?}"),
        }
        for status in TxnStatus::ALL {
            let Command::Txn(TxnArgs {
                command: TxnCommand::Ls { status: parsed, .. },
                ..
            }) = parse(&["txn", "ls", "--status", status.as_str()]).command
            else {
                panic!()
            };
            assert_eq!(parsed, Some(status));
        }
        match parse(&["txn", "resolve", "o-1", "--reason", "refunded by hand"]).command {
            Command::Txn(TxnArgs {
                command: TxnCommand::Resolve { id, reason },
                ..
            }) => assert_eq!((id.as_str(), reason.as_str()), ("o-1", "refunded by hand")),
            other => panic!("{other:?}"),
        }
        match parse(&["txn", "submit", "-"]).command {
            Command::Txn(TxnArgs {
                command: TxnCommand::Submit { file },
                ..
            }) => assert_eq!(file, PathBuf::from("-")),
            other => panic!("{other:?}"),
        }
        let err = parse_err(&["txn", "ls", "--status", "bogus"]).to_string();
        assert!(
            err.contains("'bogus'") && err.contains("possible values: running, trying"),
            "{err}"
        );
        parse_err(&["txn", "ls", "--limit", "0"]);
        parse_err(&["txn", "resolve", "o-1"]);
        parse_err(&["txn", "get"]);
    }
}
