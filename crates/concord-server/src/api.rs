//! The HTTP/JSON API: routes, the index header and request metrics.
//!
//! Handlers are thin: they parse and validate, then call `Node::write` or read state.

mod cluster;
mod config;
mod health;
mod kv;
mod leases;
mod node_info;
mod registry;
mod routes;
mod snapshot;
mod transactions;
mod txn;
mod watch;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use concord_api::{ErrorCode, INDEX_HEADER};

use crate::error::ApiError;
use crate::node::SharedNode;

/// The client API router.
pub fn router(node: SharedNode) -> Router {
    let body_limit = node.config.max_body_bytes;
    Router::new()
        .route("/v1/services", get(registry::list))
        .route("/v1/services/{service}", get(registry::get))
        .route(
            "/v1/services/{service}/instances/{id}",
            put(registry::register).delete(registry::deregister),
        )
        .route(
            "/v1/services/{service}/instances/{id}/heartbeat",
            put(registry::heartbeat),
        )
        .route(
            "/v1/services/{service}/instances/{id}/maintenance",
            put(health::maintenance),
        )
        .route(
            "/v1/services/{service}/instances/{id}/checks/{check}/{verb}",
            put(health::ttl_update),
        )
        .route("/v1/namespaces", get(registry::namespaces))
        .route("/v1/gateway/routes", get(routes::list))
        .route(
            "/v1/gateway/routes/{name}",
            get(routes::get).put(routes::put).delete(routes::delete),
        )
        .route("/v1/config/{ns}", get(config::list))
        .route(
            "/v1/config/{ns}/{group}/{id}",
            get(config::get).put(config::put).delete(config::delete),
        )
        .route("/v1/config/{ns}/{group}/{id}/history", get(config::history))
        .route(
            "/v1/config/{ns}/{group}/{id}/history/{version}",
            get(config::history_version),
        )
        .route(
            "/v1/config/{ns}/{group}/{id}/rollback",
            post(config::rollback),
        )
        .route(
            "/v1/config/{ns}/{group}/{id}/gray",
            get(config::gray_get)
                .put(config::gray_put)
                .delete(config::gray_cancel),
        )
        .route(
            "/v1/config/{ns}/{group}/{id}/gray/promote",
            post(config::gray_promote),
        )
        .route("/v1/kv", get(kv::get_root).delete(kv::delete_root))
        .route("/v1/kv/", get(kv::get_root).delete(kv::delete_root))
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/txn", post(txn::txn))
        .route(
            "/v1/transactions",
            post(transactions::create).get(transactions::list),
        )
        .route("/v1/transactions/{id}", get(transactions::get))
        .route("/v1/transactions/{id}/branches", post(transactions::branch))
        .route("/v1/transactions/{id}/commit", post(transactions::commit))
        .route("/v1/transactions/{id}/abort", post(transactions::abort))
        .route("/v1/transactions/{id}/retry", post(transactions::retry))
        .route("/v1/transactions/{id}/resolve", post(transactions::resolve))
        .route("/v1/leases", post(leases::grant))
        .route("/v1/leases/{id}", get(leases::info).delete(leases::revoke))
        .route("/v1/leases/{id}/keepalive", put(leases::keepalive))
        .route("/v1/watch", get(watch::watch))
        .route("/v1/snapshot", get(snapshot::snapshot))
        .route("/v1/cluster/members", get(cluster::list).post(cluster::add))
        .route("/v1/cluster/members/{id}", delete(cluster::remove))
        .route("/v1/status", get(node_info::status))
        .route("/v1/health", get(node_info::health))
        .route("/v1/ready", get(node_info::ready))
        .route("/metrics", get(node_info::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            node.clone(),
            crate::forward::forward,
        ))
        .layer(middleware::from_fn_with_state(node.clone(), observe))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(node)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see docs/api.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint; see docs/api.md",
    )
}

/// Adds `X-Concord-Index` (the revision the node has applied, unless the handler set
/// a more precise one) and records request metrics by matched route.
async fn observe(State(node): State<SharedNode>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key(INDEX_HEADER) {
        let revision = node.state().revision();
        if let Ok(v) = HeaderValue::from_str(&revision.to_string()) {
            resp.headers_mut().insert(INDEX_HEADER, v);
        }
    }
    node.metrics
        .observe_request(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}

/// The `X-Concord-Index` header for a response that reflects `revision`.
fn index_header(revision: u64) -> [(&'static str, String); 1] {
    [(INDEX_HEADER, revision.to_string())]
}
