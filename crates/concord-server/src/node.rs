//! `Node`: what every handler shares — the Raft core, configuration, leases, metrics —
//! and the two ways to touch state: `write` (through the log) and `read` (with a
//! stated consistency).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::{IntoResponseParts, ResponseParts};
use concord_api::{KNOWN_LEADER_HEADER, LAST_CONTACT_HEADER};
use concord_raft::RaftNode;
use concord_state::{Command, Outcome, StateMachine};

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::leases::LeaseKeeper;
use crate::metrics::Metrics;
use crate::params::Params;

/// Shared by every handler and background task of one node.
pub struct Node {
    pub raft: RaftNode,
    /// The state machine the Raft core applies to (cached from `raft.state()`).
    pub state: Arc<RwLock<StateMachine>>,
    pub config: ServerConfig,
    pub leases: LeaseKeeper,
    /// The leader's TTL-check and reaping clocks.
    pub health: crate::health::HealthClocks,
    pub metrics: Metrics,
    /// Relays requests to the leader when this node is a follower.
    pub forwarder: reqwest::Client,
    /// Set once the node has a leader and has applied what was committed at start.
    pub ready: AtomicBool,
}

/// Handle passed to axum handlers.
pub type SharedNode = Arc<Node>;

/// Headers a stale read adds so the client can judge how stale it may be.
pub struct ReadMeta {
    stale: Option<(Option<u64>, Option<u64>)>,
}

impl IntoResponseParts for ReadMeta {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some((leader, contact)) = self.stale {
            let h = res.headers_mut();
            let leader = leader.map(|l| l.to_string()).unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(&leader) {
                h.insert(KNOWN_LEADER_HEADER, v);
            }
            let contact = contact
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-1".into());
            if let Ok(v) = HeaderValue::from_str(&contact) {
                h.insert(LAST_CONTACT_HEADER, v);
            }
        }
        Ok(res)
    }
}

impl Node {
    /// Proposes a command through the Raft log and waits until it is applied.
    /// Refusals (failed CAS, missing lease) come back as errors.
    pub async fn write(&self, cmd: Command) -> ApiResult<Outcome> {
        let started = Instant::now();
        // A leader cut off from its quorum would wait until it steps down; bound it.
        let outcome = tokio::time::timeout(self.config.write_timeout, self.raft.propose(cmd))
            .await
            .map_err(|_| {
                ApiError::new(
                    concord_api::ErrorCode::Unavailable,
                    "the write was not committed in time; it may or may not take effect — read before retrying",
                )
            })??;
        self.metrics
            .propose_latency
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Outcome::Refused(e) => Err(e.into()),
            ok => Ok(ok),
        }
    }

    /// Prepares a read: linearizable (read index) unless the client asked for `consistency=stale`.
    pub async fn read(&self, params: &Params) -> ApiResult<ReadMeta> {
        if params.stale()? {
            let st = self.raft.status();
            return Ok(ReadMeta {
                stale: Some((st.leader_id, st.millis_since_leader_contact)),
            });
        }
        self.raft.read_barrier().await?;
        Ok(ReadMeta { stale: None })
    }

    /// The local state, for a brief read. Never hold it across an `.await`.
    pub fn state(&self) -> RwLockReadGuard<'_, StateMachine> {
        // The lock is only poisoned if `apply` panicked, which it never does on input;
        // recovering the guard keeps serving rather than cascading the panic.
        match self.state.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The term this node leads in, if it is the leader.
    pub fn leading_term(&self) -> Option<u64> {
        let st = self.raft.status();
        (st.leader_id == Some(st.node_id)).then_some(st.term)
    }

    /// Whether the node is ready to serve (see `/v1/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Maps a lease id from the API's hex form.
    pub fn parse_lease(field: &str, s: &str) -> ApiResult<u64> {
        concord_api::lease::parse_lease_id(s).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} must be a lease id (up to 16 hex digits), got {s:?}"),
            )
        })
    }
}
