//! Linearizable reads on followers (Raft's read index, thesis §6.4).
//!
//! openraft 0.9 only confirms leadership on the leader. A follower asks the
//! leader for a read index over the peer network — the leader confirms it still
//! leads with a quorum and answers its commit point — then waits until its own
//! state machine has applied that far and reads locally. Only a few bytes cross
//! the network, instead of the whole request and answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::error::CheckIsLeaderError;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::codec;
use crate::error::ProposeError;
use crate::network::dial_addr;
use crate::type_config::Raft;

/// Peer route the leader answers read-index requests on.
pub(crate) const READ_INDEX_PATH: &str = "/raft/read_index";
/// Longest a follower waits for the leader's answer, then to apply up to it.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the leader could not hand out a read index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The asked node does not lead (any more).
    NotLeader,
    /// It leads but could not confirm that with a quorum.
    NoQuorum(String),
    /// Raft stopped.
    Stopped(String),
}

/// The leader's side: confirm leadership, answer the index reads must wait for.
pub(crate) async fn serve(State(raft): State<Raft>, _body: Bytes) -> Response {
    let answer: Result<u64, Refusal> = match raft.ensure_linearizable().await {
        Ok(log_id) => Ok(log_id.map_or(0, |id| id.index)),
        Err(openraft::error::RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
            Err(Refusal::NotLeader)
        }
        Err(openraft::error::RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            Err(Refusal::NoQuorum(e.to_string()))
        }
        Err(openraft::error::RaftError::Fatal(f)) => Err(Refusal::Stopped(f.to_string())),
    };
    match codec::encode(&answer) {
        Ok(bytes) => bytes.into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One reader waiting for the next read-index round.
type Waiter = oneshot::Sender<Result<u64, ProposeError>>;

/// Coalesces concurrent follower reads: one read-index request serves every read
/// that was waiting when it was sent. A read that arrives while a request is in
/// flight waits for the next one, because an index obtained before the read began
/// could miss a write the read must see.
#[derive(Clone)]
pub(crate) struct ReadIndexBatcher {
    queue: mpsc::UnboundedSender<(u64, String, Waiter)>,
}

impl ReadIndexBatcher {
    /// Starts the batching task.
    pub(crate) fn start(
        http: reqwest::Client,
        routes: Arc<HashMap<u64, String>>,
    ) -> (ReadIndexBatcher, tokio::task::JoinHandle<()>) {
        let (queue, mut rx) = mpsc::unbounded_channel::<(u64, String, Waiter)>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut round = vec![first];
                while let Ok(next) = rx.try_recv() {
                    round.push(next);
                }
                // Readers may have seen different leaders; ask each once.
                let mut by_leader: HashMap<(u64, String), Vec<Waiter>> = HashMap::new();
                for (leader, addr, waiter) in round {
                    by_leader.entry((leader, addr)).or_default().push(waiter);
                }
                for ((leader, addr), waiters) in by_leader {
                    let answer = ask(&http, &routes, leader, &addr).await;
                    for w in waiters {
                        let _ = w.send(answer.clone());
                    }
                }
            }
        });
        (ReadIndexBatcher { queue }, task)
    }
}

/// The follower's side: a read index from `leader` (shared with concurrent
/// readers), then wait until the local state machine has applied that far.
pub(crate) async fn follower_barrier(
    raft: &Raft,
    batcher: &ReadIndexBatcher,
    leader: u64,
    leader_peer_addr: &str,
) -> Result<(), ProposeError> {
    let (tx, rx) = oneshot::channel();
    batcher
        .queue
        .send((leader, leader_peer_addr.to_owned(), tx))
        .map_err(|_| ProposeError::Unavailable("the raft node is shutting down".to_string()))?;
    let index = rx
        .await
        .map_err(|_| ProposeError::Unavailable("the raft node is shutting down".to_string()))??;
    raft.wait(Some(READ_INDEX_TIMEOUT))
        .applied_index_at_least(Some(index), "read index")
        .await
        .map(|_| ())
        .map_err(|e| {
            ProposeError::Unavailable(format!(
                "this node did not catch up with the leader in time: {e}"
            ))
        })
}

/// One read-index request to the leader.
async fn ask(
    http: &reqwest::Client,
    routes: &HashMap<u64, String>,
    leader: u64,
    leader_peer_addr: &str,
) -> Result<u64, ProposeError> {
    let addr = dial_addr(routes, leader, leader_peer_addr);
    let unavailable = |what: String| ProposeError::Unavailable(what);
    let resp = http
        .post(format!("http://{addr}{READ_INDEX_PATH}"))
        .timeout(READ_INDEX_TIMEOUT)
        .send()
        .await
        .map_err(|e| unavailable(format!("could not reach the leader for a read index: {e}")))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!(
            "the leader answered the read-index request with {}",
            resp.status()
        )));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| unavailable(format!("read-index answer cut short: {e}")))?;
    let answer: Result<u64, Refusal> = codec::decode(&body)
        .map_err(|e| unavailable(format!("undecodable read-index answer: {e}")))?;
    match answer {
        Ok(index) => Ok(index),
        Err(Refusal::NotLeader) => Err(unavailable(
            "leadership is changing; retry the read shortly".to_string(),
        )),
        Err(Refusal::NoQuorum(e) | Refusal::Stopped(e)) => Err(unavailable(e)),
    }
}
