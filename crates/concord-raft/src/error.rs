//! The errors this crate returns, free of openraft types.

/// Why a proposal (or a read barrier) did not complete.
///
/// Serializable because a leader answers relayed proposals with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// This node is not the leader and the command was not applied, so it is safe
    /// to retry it on the leader (forward it to `leader_client_addr`).
    #[error("{}", not_leader_message(*.leader_id, .leader_client_addr.as_deref()))]
    NotLeader {
        leader_id: Option<u64>,
        leader_client_addr: Option<String>,
    },
    /// The cluster cannot serve the request now (no quorum, shutting down). For a
    /// proposal the outcome is unknown: it may still be applied.
    #[error("raft is unavailable: {0}")]
    Unavailable(String),
    /// The node hit an unrecoverable error (storage failure) and stopped.
    #[error("raft stopped after a fatal error: {0}")]
    Fatal(String),
}

fn not_leader_message(leader_id: Option<u64>, leader_client_addr: Option<&str>) -> String {
    match (leader_id, leader_client_addr) {
        (Some(id), Some(addr)) => {
            format!("this node is not the leader; the leader is node {id} at {addr}")
        }
        (Some(id), None) => format!("this node is not the leader; the leader is node {id}"),
        (None, _) => {
            "this node is not the leader and no leader is known yet (election in progress?)"
                .to_string()
        }
    }
}

/// Why a node could not start, initialize or stop.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The options are inconsistent (timeouts, snapshot interval).
    #[error("invalid raft options: {0}")]
    InvalidOptions(String),
    /// A filesystem operation on the data directory failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The redb log could not be opened or read.
    #[error("raft log storage: {0}")]
    Storage(String),
    /// The snapshot on disk could not be loaded into the state machine.
    #[error("cannot load the snapshot: {0}")]
    Snapshot(String),
    /// The peer HTTP client could not be built.
    #[error("peer network: {0}")]
    Network(String),
    /// openraft refused to start or failed while running.
    #[error("raft: {0}")]
    Raft(String),
    /// Cluster initialization was refused (e.g. this node is not among the members).
    #[error("cannot initialize the cluster: {0}")]
    Initialize(String),
    /// Shutdown did not complete cleanly.
    #[error("shutdown: {0}")]
    Shutdown(String),
}

/// Why a membership change was refused. Split so the server can answer 400, 404 or 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The change contradicts the cluster: id 0, an id or peer address that is
    /// already taken, removing the last voter.
    #[error("{0}")]
    Invalid(String),
    /// No member has this id.
    #[error("node {0} is not a member of the cluster")]
    UnknownMember(u64),
    /// The same cases as a proposal: not the leader (retry there), no quorum,
    /// shutting down. A change that timed out may still take effect.
    #[error(transparent)]
    Raft(#[from] ProposeError),
}
