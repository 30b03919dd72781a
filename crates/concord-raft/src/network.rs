//! The client half of the peer network: openraft RPCs as HTTP POSTs.
//!
//! One `reqwest::Client` (one connection pool) serves every peer; openraft calls
//! `new_client` often (every heartbeat in 0.9), so a client is just a target
//! address plus a handle on that pool. Each request carries openraft's deadline.
//! Routes and encodings match `peer_server`.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RaftNetwork, RaftNetworkFactory};

use crate::codec;
use crate::type_config::{NodeInfo, TypeConfig};

/// Route for AppendEntries.
pub(crate) const APPEND_PATH: &str = "/raft/append";
/// Route for RequestVote.
pub(crate) const VOTE_PATH: &str = "/raft/vote";
/// Route for one InstallSnapshot chunk.
pub(crate) const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// How long to wait for a TCP connection before calling the peer unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The HTTP client for all peer traffic (Raft RPCs and `/raft/info` lookups).
pub(crate) fn peer_http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        // Peer traffic is point to point; an HTTP(S)_PROXY from the environment must not catch it.
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .build()
}

/// Where this node dials member `id`: its dial override if one is configured
/// (fault-injection proxies, NAT), else the peer address in the membership.
pub(crate) fn dial_addr<'a>(
    routes: &'a HashMap<u64, String>,
    id: u64,
    peer_addr: &'a str,
) -> &'a str {
    routes.get(&id).map_or(peer_addr, String::as_str)
}

/// Builds peer clients that share one connection pool.
pub(crate) struct Network {
    node_id: u64,
    http: reqwest::Client,
    routes: Arc<HashMap<u64, String>>,
}

impl Network {
    pub(crate) fn new(
        node_id: u64,
        http: reqwest::Client,
        routes: Arc<HashMap<u64, String>>,
    ) -> Network {
        Network {
            node_id,
            http,
            routes,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> PeerClient {
        if target == self.node_id {
            // openraft never replicates to itself; if it ever did, the peer server refuses it.
            tracing::error!(target, "asked for a network client to this node itself");
        }
        PeerClient {
            target,
            base: format!(
                "http://{}",
                dial_addr(&self.routes, target, &node.peer_addr)
            ),
            http: self.http.clone(),
        }
    }
}

/// One peer, as openraft's replication and election tasks see it.
pub(crate) struct PeerClient {
    target: u64,
    base: String,
    http: reqwest::Client,
}

/// A failed exchange, before it is shaped into the caller's `RPCError`.
enum PostError {
    /// Could not connect: openraft backs off before retrying.
    Unreachable(reqwest::Error),
    /// Anything else on the way (timeout, reset, bad status, undecodable body).
    Network(AnyError),
}

impl PostError {
    fn into_rpc<E: Error>(self) -> RPCError<u64, NodeInfo, E> {
        match self {
            PostError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            PostError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl PeerClient {
    async fn post(&self, path: &str, body: Vec<u8>, ttl: Duration) -> Result<Vec<u8>, PostError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .timeout(ttl)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    PostError::Unreachable(e)
                } else {
                    PostError::Network(AnyError::new(&e))
                }
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PostError::Network(AnyError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(PostError::Network(AnyError::error(format!(
                "peer {} answered {status} to {path}: {text}",
                self.target
            ))));
        }
        Ok(bytes.to_vec())
    }
}

fn codec_err(e: codec::CodecError) -> PostError {
    PostError::Network(AnyError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        let body = codec::encode(&rpc).map_err(|e| codec_err(e).into_rpc())?;
        let bytes = self
            .post(APPEND_PATH, body, option.hard_ttl())
            .await
            .map_err(PostError::into_rpc)?;
        let answer: Result<AppendEntriesResponse<u64>, Fatal<u64>> =
            codec::decode(&bytes).map_err(|e| codec_err(e).into_rpc())?;
        answer
            .map_err(|f| RPCError::RemoteError(RemoteError::new(self.target, RaftError::Fatal(f))))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, NodeInfo, RaftError<u64, InstallSnapshotError>>,
    > {
        let body = codec::encode(&rpc).map_err(|e| codec_err(e).into_rpc())?;
        let bytes = self
            .post(SNAPSHOT_PATH, body, option.hard_ttl())
            .await
            .map_err(PostError::into_rpc)?;
        let answer: Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> =
            codec::decode(&bytes).map_err(|e| codec_err(e).into_rpc())?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        let body = codec::encode(&rpc).map_err(|e| codec_err(e).into_rpc())?;
        let bytes = self
            .post(VOTE_PATH, body, option.hard_ttl())
            .await
            .map_err(PostError::into_rpc)?;
        let answer: Result<VoteResponse<u64>, Fatal<u64>> =
            codec::decode(&bytes).map_err(|e| codec_err(e).into_rpc())?;
        answer
            .map_err(|f| RPCError::RemoteError(RemoteError::new(self.target, RaftError::Fatal(f))))
    }
}
