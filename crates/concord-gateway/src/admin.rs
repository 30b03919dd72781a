//! The admin listener: `/metrics`, `/admin/routes`, `/admin/upstreams` and
//! `/ready` (200 once routes are loaded). Plain HTTP/1.1; keep it off
//! public interfaces.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::error::error_response;
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::upstream::Upstreams;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct Admin {
    shared: Arc<Shared>,
    upstreams: Arc<Upstreams>,
    metrics: Arc<Metrics>,
}

impl Admin {
    /// Admin over the gateway's state.
    pub fn new(shared: Arc<Shared>, upstreams: Arc<Upstreams>, metrics: Arc<Metrics>) -> Self {
        Admin {
            shared,
            upstreams,
            metrics,
        }
    }

    /// Answers one admin request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET {
            return error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the admin endpoints are read-only (GET)",
            );
        }
        match req.uri().path() {
            "/metrics" => text(
                self.metrics.encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            "/admin/routes" => json_response(self.routes()),
            "/admin/upstreams" => json_response(self.upstreams()),
            "/ready" if self.shared.load().loaded => text("ready\n".to_owned(), "text/plain"),
            "/ready" => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "routes not loaded from Concord yet",
            ),
            other => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no admin endpoint {other}; try /metrics, /admin/routes, /admin/upstreams"),
            ),
        }
    }

    /// Routes in match order, with what the gateway made of them.
    pub fn routes(&self) -> Value {
        let snapshot = self.shared.load();
        let routes: Vec<Value> = snapshot
            .table
            .routes()
            .iter()
            .map(|r| {
                let targets: Vec<Value> = r
                    .targets
                    .iter()
                    .map(|t| {
                        json!({"namespace": t.key.namespace, "service": t.key.service,
                               "tags": t.key.tags, "weight": t.weight})
                    })
                    .collect();
                json!({
                    "name": r.name,
                    "revision": r.revision,
                    "priority": r.priority,
                    "lb": r.policy.as_str(),
                    "targets": targets,
                    "timeouts_ms": {
                        "connect": r.timeouts.connect.as_millis() as u64,
                        "per_try": r.timeouts.per_try.as_millis() as u64,
                        "total": r.timeouts.total.as_millis() as u64,
                    },
                    "route": r.spec,
                })
            })
            .collect();
        json!({"revision": snapshot.revision, "loaded": snapshot.loaded, "routes": routes})
    }

    /// Targets with their endpoints, balancers, and the circuit breakers and
    /// outlier ejections routes keep for them.
    pub fn upstreams(&self) -> Value {
        let snapshot = self.shared.load();
        let now = std::time::Instant::now();
        let upstreams: Vec<Value> = self
            .upstreams
            .list()
            .iter()
            .map(|u| {
                let (endpoints, revision) = u.endpoints();
                let balancers: Vec<Value> = u
                    .balancers()
                    .iter()
                    .map(|(policy, b)| {
                        let stats: Vec<Value> = endpoints
                            .iter()
                            .filter_map(|e| {
                                let s = b.stats(&e.id)?;
                                Some(json!({"id": e.id, "in_flight": s.in_flight,
                                            "latency_ewma_ms": s.latency_ewma.as_secs_f64() * 1e3}))
                            })
                            .collect();
                        json!({"policy": policy.as_str(), "endpoints": stats})
                    })
                    .collect();
                let breakers: Vec<Value> = snapshot
                    .table
                    .routes()
                    .iter()
                    .flat_map(|r| r.targets.iter().map(move |t| (r, t)))
                    .filter(|(_, t)| t.key == u.key)
                    .filter_map(|(r, t)| {
                        let b = t.breaker.as_ref()?;
                        Some(json!({"route": r.name, "state": b.state(now).as_str(),
                                    "in_flight": b.in_flight()}))
                    })
                    .collect();
                let ejections: Vec<Value> = snapshot
                    .table
                    .routes()
                    .iter()
                    .flat_map(|r| r.targets.iter().map(move |t| (r, t)))
                    .filter(|(_, t)| t.key == u.key)
                    .filter_map(|(r, t)| Some((r, t.outlier.as_ref()?)))
                    .flat_map(|(r, o)| {
                        o.ejections(now).into_iter().map(move |e| {
                            json!({"route": r.name, "endpoint": e.endpoint,
                                   "remaining_ms": e.remaining.as_millis() as u64,
                                   "times_ejected": e.times_ejected})
                        })
                    })
                    .collect();
                json!({
                    "namespace": u.key.namespace,
                    "service": u.key.service,
                    "tags": u.key.tags,
                    "loaded": u.is_loaded(),
                    "revision": revision,
                    "endpoints": *endpoints,
                    "balancers": balancers,
                    "circuit_breakers": breakers,
                    "ejections": ejections,
                })
            })
            .collect();
        json!({"upstreams": upstreams})
    }
}

fn text(body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_response(value: Value) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves admin requests until aborted.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("admin: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = Arc::clone(&admin);
        let service = service_fn(move |req: Request<Incoming>| {
            let response = admin.handle(&req);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%remote, "admin connection ended: {e}");
            }
        });
    }
}
