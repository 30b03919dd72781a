//! The server half of the peer network: axum routes that hand RPCs to openraft.
//!
//! Every answer that reached openraft is `200` with an encoded `Result`, so the
//! caller can tell a remote Raft error from a transport failure; an undecodable
//! body is `400`. The server also notes when the leader last reached this node,
//! for stale-read headers, and answers `GET /raft/info` (this node's id and
//! client address) for members that cannot find it in the membership.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};

use crate::client_addrs::{INFO_PATH, PeerInfo};
use crate::codec;
use crate::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};
use crate::type_config::{Raft, TypeConfig};

/// Largest request body accepted: an AppendEntries of 64 entries of ~1 MiB
/// proposal batches each (with room for single commands larger than a batch),
/// or a 3 MiB snapshot chunk.
const MAX_BODY_BYTES: usize = 512 << 20;

/// When this node last accepted an AppendEntries (entries or heartbeat) from a leader.
#[derive(Debug, Default)]
pub(crate) struct LeaderContact {
    last: Mutex<Option<Instant>>,
}

impl LeaderContact {
    fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
    }

    /// Time since the last contact, if there was one.
    pub(crate) fn elapsed(&self) -> Option<Duration> {
        self.last
            .lock()
            .ok()
            .and_then(|last| last.map(|t| t.elapsed()))
    }
}

#[derive(Clone)]
struct PeerState {
    raft: Raft,
    node_id: u64,
    client_addr: Arc<str>,
    contact: Arc<LeaderContact>,
}

/// The peer routes for one node; `client_addr` is what `/raft/info` reports.
pub(crate) fn router(
    raft: Raft,
    node_id: u64,
    client_addr: String,
    contact: Arc<LeaderContact>,
    proposals: crate::regroup::Intake,
) -> Router {
    Router::new()
        .route(
            crate::relay::PROPOSE_PATH,
            post(crate::relay::serve).with_state(crate::relay::Serve {
                raft: raft.clone(),
                local: proposals,
            }),
        )
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(INFO_PATH, get(info))
        .route(
            crate::read_index::READ_INDEX_PATH,
            post(crate::read_index::serve).with_state(raft.clone()),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(PeerState {
            raft,
            node_id,
            client_addr: client_addr.into(),
            contact,
        })
}

async fn info(State(st): State<PeerState>) -> Json<PeerInfo> {
    Json(PeerInfo {
        node_id: st.node_id,
        client_addr: st.client_addr.to_string(),
        initialized: st.raft.is_initialized().await.unwrap_or(false),
    })
}

fn bad_request(what: &str, e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("undecodable {what}: {e}")).into_response()
}

/// A request that claims to come from this very node was misrouted (two members
/// advertising one address); answering it would let a node vote for or follow itself.
fn from_self(what: &str, node_id: u64) -> Response {
    tracing::error!(
        node_id,
        what,
        "refused a peer request sent by this node to itself"
    );
    (
        StatusCode::CONFLICT,
        format!("{what} from node {node_id} reached node {node_id} itself: check the advertised peer addresses"),
    )
        .into_response()
}

fn encoded(bytes: Result<Vec<u8>, codec::CodecError>) -> Response {
    match bytes {
        Ok(b) => b.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn into_fatal(e: RaftError<u64>) -> Fatal<u64> {
    match e {
        RaftError::APIError(never) => match never {},
        RaftError::Fatal(f) => f,
    }
}

async fn append(State(st): State<PeerState>, body: Bytes) -> Response {
    let req: AppendEntriesRequest<TypeConfig> = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("append-entries request", e),
    };
    if req.vote.leader_id().voted_for() == Some(st.node_id) {
        return from_self("append-entries", st.node_id);
    }
    let answer = st.raft.append_entries(req).await;
    if matches!(
        answer,
        Ok(AppendEntriesResponse::Success
            | AppendEntriesResponse::PartialSuccess(_)
            | AppendEntriesResponse::Conflict)
    ) {
        st.contact.touch();
    }
    encoded(codec::encode(&answer.map_err(into_fatal)))
}

async fn vote(State(st): State<PeerState>, body: Bytes) -> Response {
    let req: VoteRequest<u64> = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("vote request", e),
    };
    if req.vote.leader_id().voted_for() == Some(st.node_id) {
        return from_self("vote request", st.node_id);
    }
    let answer = st.raft.vote(req).await;
    encoded(codec::encode(&answer.map_err(into_fatal)))
}

async fn snapshot(State(st): State<PeerState>, body: Bytes) -> Response {
    let req: InstallSnapshotRequest<TypeConfig> = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("install-snapshot request", e),
    };
    if req.vote.leader_id().voted_for() == Some(st.node_id) {
        return from_self("install-snapshot", st.node_id);
    }
    let answer = st.raft.install_snapshot(req).await;
    if answer.is_ok() {
        st.contact.touch();
    }
    encoded(codec::encode(&answer))
}
