//! Transparent forwarding: any node serves any request.
//!
//! Writes are validated where they arrive and their commands relayed to the
//! leader by the Raft node. What lives in the leader's memory alone (lease and
//! TTL-check deadlines) and membership changes need the leader itself: a follower relays
//! such requests to the leader's client API and streams the answer back, so
//! clients can talk to whichever node they like. Reads are answered locally: linearizable ones after a read index
//! obtained from the leader, stale ones at once; so are watches and node endpoints. A relayed request carries `X-Concord-Forwarded`, and a node
//! never relays a request that already went through another: if leadership moved
//! meanwhile, the client gets a 503 and retries rather than bouncing between nodes.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use concord_api::ErrorCode;
use futures::TryStreamExt;
use tracing::debug;

use crate::error::ApiError;
use crate::node::SharedNode;
use crate::params::Params;

/// Marks a request relayed from another node (the value is that node's id).
pub const FORWARDED_HEADER: &str = "x-concord-forwarded";

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus `host`.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The HTTP client followers use to reach the leader.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

/// Whether answering this request needs the leader's own HTTP API.
///
/// Writes do not: a follower's handler validates them and its Raft node relays the
/// command to the leader in a batch (see concord-raft's `relay.rs`). What lives
/// only in the leader's memory does: lease deadlines (keepalives, heartbeats, a
/// lease's remaining time) and membership changes, which openraft only takes there.
fn needs_leader(method: &Method, path: &str, query: Option<&str>) -> bool {
    if method == Method::PUT {
        return path.starts_with("/v1/leases/") && path.ends_with("/keepalive")
            || path.starts_with("/v1/services/")
                && (path.ends_with("/heartbeat") || is_ttl_update(path));
    }
    if method == Method::GET || method == Method::HEAD {
        return path.starts_with("/v1/leases/")
            && !Params::parse(query.unwrap_or("")).stale().unwrap_or(false);
    }
    (method == Method::POST || method == Method::DELETE) && path.starts_with("/v1/cluster/")
}

/// `/v1/services/{s}/instances/{id}/checks/{check}/{verb}`: TTL deadlines live
/// in the leader's memory, like lease deadlines.
fn is_ttl_update(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    parts.len() == 8 && parts[3] == "instances" && parts[5] == "checks"
}

/// Middleware: relay to the leader when this node is not it.
pub async fn forward(State(node): State<SharedNode>, req: Request, next: Next) -> Response<Body> {
    if req.headers().contains_key(FORWARDED_HEADER)
        || node.raft.is_leader()
        || !needs_leader(req.method(), req.uri().path(), req.uri().query())
    {
        return next.run(req).await;
    }
    let Some(leader) = node.raft.status().leader_id else {
        // No leader known: the handler answers 503 no_leader in the usual shape.
        return next.run(req).await;
    };
    let Some(addr) = node.raft.client_addr_of(leader).await else {
        return ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "node {leader} leads but its client address is unknown here; retry on another node"
            ),
        )
        .into_response();
    };
    match relay(&node, &addr, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn relay(
    node: &SharedNode,
    leader_addr: &str,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{leader_addr}{path}");
    let body = axum::body::to_bytes(body, node.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::TooLarge,
                "the request body is larger than the server accepts (see max_body_bytes)",
            )
        })?;
    debug!(%url, method = %parts.method, "forwarding to the leader");
    let mut headers = copy_headers(&parts.headers);
    headers.insert(
        HeaderName::from_static(FORWARDED_HEADER),
        node.raft.node_id().into(),
    );
    let resp = node
        .forwarder
        .request(parts.method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| relay_error(leader_addr, &e))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = copy_headers(resp.headers());
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Only a failure to connect proves the leader never saw the request; after that the
/// write may have been applied, and the client must read before retrying.
fn relay_error(leader_addr: &str, e: &reqwest::Error) -> ApiError {
    let message = if e.is_connect() {
        format!(
            "could not reach the leader at {leader_addr} ({e}); nothing was applied, retry shortly"
        )
    } else {
        format!(
            "the leader at {leader_addr} did not answer ({e}); the request may or may not have taken effect, read before retrying"
        )
    };
    ApiError::new(ErrorCode::Unavailable, message)
}

fn copy_headers(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
    to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_needs_the_leader() {
        for (method, path) in [
            (Method::PUT, "/v1/kv/a"),
            (Method::DELETE, "/v1/kv/a"),
            (Method::POST, "/v1/txn"),
            (Method::POST, "/v1/leases"),
            (Method::DELETE, "/v1/leases/00000000000000aa"),
            (Method::PUT, "/v1/services/web/instances/w1"),
            (Method::DELETE, "/v1/services/web/instances/w1"),
        ] {
            assert!(
                !needs_leader(&method, path, None),
                "{method} {path}: relayed by raft"
            );
        }
        assert!(needs_leader(&Method::PUT, "/v1/leases/1/keepalive", None));
        assert!(needs_leader(
            &Method::PUT,
            "/v1/services/web/instances/w1/heartbeat",
            None
        ));
        assert!(needs_leader(
            &Method::PUT,
            "/v1/services/web/instances/w1/checks/ttl/pass",
            Some("namespace=prod")
        ));
        assert!(!needs_leader(
            &Method::PUT,
            "/v1/services/web/instances/w1/maintenance",
            None
        ));
        assert!(
            !needs_leader(&Method::GET, "/v1/kv/a", None),
            "read index instead"
        );
        assert!(!needs_leader(
            &Method::GET,
            "/v1/services/x",
            Some("index=3")
        ));
        assert!(needs_leader(
            &Method::GET,
            "/v1/leases/00000000000000aa",
            None
        ));
        assert!(!needs_leader(
            &Method::GET,
            "/v1/leases/00000000000000aa",
            Some("consistency=stale")
        ));
        assert!(!needs_leader(&Method::GET, "/v1/watch", Some("prefix=a")));
        assert!(!needs_leader(&Method::GET, "/v1/status", None));
        assert!(!needs_leader(&Method::GET, "/metrics", None));
        assert!(!needs_leader(&Method::GET, "/v1/cluster/members", None));
        assert!(needs_leader(&Method::POST, "/v1/cluster/members", None));
        assert!(needs_leader(&Method::DELETE, "/v1/cluster/members/4", None));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close".parse().unwrap());
        h.insert("host", "x".parse().unwrap());
        h.insert("x-concord-index", "7".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let out = copy_headers(&h);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("x-concord-index"));
    }
}
