//! The request path: route, limit, rewrite, pick, forward, retry, answer.
//!
//! Deadlines count until response headers; a body then streams for as long
//! as it takes. Errors the gateway itself answers use Concord's error shape:
//!
//! | status | code | when |
//! |---|---|---|
//! | 404 | `no_route` | no route matches |
//! | 503 | `unavailable` | routes not loaded from Concord yet |
//! | 503 | `no_endpoint` | no passing instance (and no `fallback`) |
//! | 503 | `circuit_open` | the target's circuit breaker is open (and no `fallback`) |
//! | 503 | `concurrency_limit` | the target's `max_concurrent` requests are in flight |
//! | 429 | `rate_limited` | the route's rate limit (with `Retry-After`) |
//! | 502 | `bad_gateway` | connect failure or broken connection, retries exhausted |
//! | 504 | `gateway_timeout` | per-try or total timeout |
//! | 400 | `bad_request` | the client's body could not be read |

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::Either;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::{Body, boxed, full};
use crate::circuit_breaker::{Permit, Refused};
use crate::client::{ClientCache, HttpClient};
use crate::deadline::{ConnectionTimer, TimedOut};
use crate::error::error_response;
use crate::h1::Tunnel;
use crate::headers::{self, Peer, X_REQUEST_ID};
use crate::matching::RequestView;
use crate::metrics::Metrics;
use crate::pool::{Http1Pool, SendError};
use crate::rate_limit::retry_after_secs;
use crate::retry::{Failure, MAX_REPLAY_BODY, backoff};
use crate::route::{Chosen, Rewrite, Route, RouteTarget, cookie};
use crate::state::{Shared, Snapshot};
use crate::sticky;

/// Handles every proxied request.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    /// HTTP/1.1 upstreams (upgrades included): the default.
    pool: Http1Pool,
    /// h2c upstreams, for gRPC that came in over HTTP/2.
    clients: ClientCache,
    metrics: Arc<Metrics>,
    access_log: bool,
}

/// The client connection a request arrived on.
#[derive(Debug)]
pub struct Downstream {
    /// Its address.
    pub peer: Peer,
    /// Deadlines for its HTTP/1.1 requests (one in flight at a time).
    pub timer: ConnectionTimer,
}

impl Downstream {
    /// A connection from `peer`.
    pub fn new(peer: Peer) -> Self {
        Downstream {
            peer,
            timer: ConnectionTimer::default(),
        }
    }
}

/// What happened to a request, for metrics and the access log.
#[derive(Debug, Default)]
struct Trace<'r> {
    /// The target last tried.
    target: Option<&'r RouteTarget>,
    /// The endpoint last tried; kept only for the access log.
    upstream: Option<String>,
    attempts: u32,
}

impl Proxy {
    /// A proxy reading routes from `shared`, closing upstream connections
    /// idle for `pool_idle_timeout`.
    pub fn new(
        shared: Arc<Shared>,
        pool_idle_timeout: std::time::Duration,
        metrics: Arc<Metrics>,
        access_log: bool,
    ) -> Self {
        Proxy {
            shared,
            pool: Http1Pool::new(pool_idle_timeout),
            clients: ClientCache::new(pool_idle_timeout),
            metrics,
            access_log,
        }
    }

    /// Answers one request from `client`.
    ///
    /// Not an `async fn`: one keeps its by-value arguments twice in its
    /// future (as captured and as a local), and the request is 264 bytes.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its by-value arguments twice in its future"
    )]
    pub fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        client: &'a Downstream,
    ) -> impl Future<Output = Response<Body>> + 'a {
        async move {
            // Only the access log needs the request's own start time.
            let started = self.access_log.then(Instant::now);
            let method = req.method().clone();
            let path = self.access_log.then(|| req.uri().path().to_owned());
            // Set in the request here, so it goes upstream with the rest.
            let request_id = headers::request_id(req.headers_mut());
            let snapshot = self.shared.load();
            let route = snapshot.table.find(&RequestView::of(&req)).cloned();
            let mut trace = Trace::default();
            let mut response = match &route {
                None => not_routed(&snapshot),
                Some(route) => match self.steer(route, &req, client) {
                    Ok(steer) => {
                        self.forward(route, req, client, &request_id, steer, &mut trace)
                            .await
                    }
                    Err(limited) => *limited,
                },
            };
            drop(snapshot);
            response
                .headers_mut()
                .entry(&X_REQUEST_ID)
                .or_insert_with(|| request_id.clone());
            let status = response.status().as_u16();
            let (route_name, service) = match (&route, trace.target) {
                (Some(route), Some(target)) => {
                    self.metrics.target_request(
                        &target.metrics,
                        &route.name,
                        &target.key.service,
                        status,
                    );
                    (route.name.as_str(), target.key.service.as_str())
                }
                (Some(route), None) => {
                    self.metrics
                        .request(&route.name, route.service_label(), status);
                    (route.name.as_str(), route.service_label())
                }
                (None, _) => {
                    self.metrics.request("", "", status);
                    ("", "")
                }
            };
            if let (Some(path), Some(started)) = (path, started) {
                tracing::info!(
                    target: "concord_gateway::access",
                    client = %client.peer.ip(),
                    %method,
                    path,
                    status,
                    route = route_name,
                    service,
                    upstream = trace.upstream.as_deref().unwrap_or(""),
                    attempts = trace.attempts,
                    duration_ms = started.elapsed().as_secs_f64() * 1e3,
                    request_id = request_id.to_str().unwrap_or(""),
                );
            }
            response
        }
    }

    /// Applies the route's rate limit and works out what steers the pick.
    /// Not an `async fn`: each async layer on this path moves the request
    /// into its own future.
    fn steer(
        &self,
        route: &Route,
        req: &Request<Incoming>,
        client: &Downstream,
    ) -> Result<Steer, Box<Response<Body>>> {
        let now = Instant::now();
        if let Some(limiter) = &route.rate_limit {
            let key = limiter.key_of(req.headers(), client.peer.ip());
            if let Err(wait) = limiter.check(&key, now) {
                self.metrics.limited(&route.name);
                return Err(Box::new(too_many_requests(&route.name, wait)));
            }
        }
        route.budget.record_request(now);
        let hash = if route.policy.uses_key() {
            route
                .hash_on
                .as_ref()
                .and_then(|h| h.key(&RequestView::of(req), client.peer.ip()))
        } else {
            None
        };
        let sticky = route
            .sticky
            .as_ref()
            .and_then(|s| cookie(req.headers(), &s.cookie))
            .map(str::to_owned);
        Ok(Steer {
            hash,
            sticky,
            arrived: now,
        })
    }

    /// Attempts until one succeeds, retrying is no longer allowed or the
    /// total `deadline` passes. The first attempt goes where the sticky
    /// cookie says, when it names an available endpoint.
    ///
    /// One timer per attempt covers both deadlines: it fires at the per-try
    /// deadline or the total one, whichever comes first.
    ///
    /// Not an `async fn`, for the same reason as [`Proxy::handle`].
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its by-value arguments twice in its future"
    )]
    fn forward<'r>(
        &self,
        route: &'r Route,
        req: Request<Incoming>,
        client: &Downstream,
        request_id: &HeaderValue,
        steer: Steer,
        trace: &mut Trace<'r>,
    ) -> impl Future<Output = Response<Body>> {
        async move {
            let Steer {
                hash,
                sticky,
                arrived,
            } = steer;
            let deadline = tokio::time::Instant::from_std(arrived) + route.timeouts.total;
            let (mut out, unread) =
                match Outbound::prepare(route, req, client, request_id, deadline) {
                    Ok(prepared) => prepared,
                    Err(response) => return *response,
                };
            if let Some(body) = unread {
                match tokio::time::timeout_at(deadline, body.collect()).await {
                    Ok(Ok(read)) => out.body = ReplayBody::Buffered(read.to_bytes()),
                    Ok(Err(e)) => {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            format!("cannot read the request body: {e}"),
                        );
                    }
                    Err(_) => return total_timeout(route),
                }
            }
            // Boxed: only gRPC uses it, and inline it would add 300 bytes to
            // every request's future.
            let http2 = (out.version == Version::HTTP_2)
                .then(|| Box::new(self.clients.get(route.timeouts.connect)));
            let mut avoid: Option<String> = None;
            let mut last_failure: Option<Response<Body>> = None;
            let mut pinned = sticky.as_deref().and_then(|token| route.pick_sticky(token));
            loop {
                let chosen = pinned.take().or_else(|| {
                    let (target, pick) = route.pick(hash, avoid.as_deref())?;
                    Some((target, Chosen::Balanced(pick)))
                });
                let Some((target, pick)) = chosen else {
                    return last_failure.unwrap_or_else(|| no_endpoint(route));
                };
                let permit = match self.admit(route, target) {
                    Ok(permit) => permit,
                    Err(refused) => {
                        trace.target = Some(target);
                        return last_failure
                            .unwrap_or_else(|| refused_response(route, target, refused));
                    }
                };
                trace.attempts += 1;
                trace.target = Some(target);
                if self.access_log {
                    trace.upstream = Some(pick.endpoint().addr.clone());
                }
                let token = route
                    .sticky
                    .as_ref()
                    .map(|_| sticky::token(&pick.endpoint().id));
                // Awaited where it is made: a future held in a local first gets
                // a second slot in this one (rustc does not overlap them).
                let failed = match self
                    .attempt(route, target, pick, permit, http2.as_deref(), &mut out)
                    .await
                {
                    Ok(mut response) => {
                        set_sticky(route, &mut response, sticky, token);
                        return response;
                    }
                    Err(failed) => failed,
                };
                if failed.failure == Failure::Timeout && tokio::time::Instant::now() >= deadline {
                    return total_timeout(route);
                }
                let retry_number = trace.attempts;
                let retry = retry_number <= route.retry.attempts
                    && out.body.can_replay()
                    && route.retry.retries_on(failed.failure)
                    && route.budget.try_retry(Instant::now());
                if !retry {
                    return failed.response;
                }
                tracing::debug!(route = %route.name, failure = ?failed.failure, retry_number, "retrying");
                self.metrics.retry(&route.name);
                avoid = Some(failed.endpoint);
                last_failure = Some(failed.response);
                let resume = tokio::time::Instant::now() + backoff(retry_number);
                if resume >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return total_timeout(route);
                }
                tokio::time::sleep_until(resume).await;
            }
        }
    }

    /// Passes the target's circuit breaker, when the route has one.
    fn admit<'t>(
        &self,
        route: &Route,
        target: &'t RouteTarget,
    ) -> Result<Option<Permit<'t>>, Refused> {
        let Some(breaker) = &target.breaker else {
            return Ok(None);
        };
        let now = Instant::now();
        let admitted = breaker.admit(now);
        let state = breaker.state(now);
        self.metrics
            .breaker(&route.name, &target.key.to_string(), state);
        admitted.map(Some)
    }

    /// Reports an attempt's outcome on `endpoint` to the target's circuit
    /// breaker and outlier detector.
    fn settle(
        &self,
        route: &Route,
        target: &RouteTarget,
        endpoint: &str,
        permit: Option<Permit<'_>>,
        failed: bool,
        latency: std::time::Duration,
    ) {
        if let Some(outlier) = &target.outlier {
            let endpoints = target.balancer.len();
            if outlier.record(endpoint, failed, endpoints, Instant::now()) {
                tracing::info!(route = %route.name, target = %target.key, endpoint, "outlier ejected");
                self.metrics.ejected(&route.name);
            }
        }
        if let (Some(breaker), Some(permit)) = (&target.breaker, permit) {
            let state = breaker.record(permit, failed, latency, Instant::now());
            self.metrics
                .breaker(&route.name, &target.key.to_string(), state);
        }
    }

    /// Sends one request upstream: over h2c through `http2` when given,
    /// else through the HTTP/1.1 pool. Not an `async fn`: the request goes
    /// straight into the client's own future rather than through one more.
    fn send<'a>(
        &'a self,
        route: &Route,
        addr: &'a str,
        request: Request<Body>,
        http2: Option<&'a HttpClient>,
    ) -> impl Future<Output = Result<Response<Body>, NotSent>> + 'a {
        match http2 {
            Some(client) => Either::Left(client.request(request).map(|sent| match sent {
                Ok(response) => Ok(response.map(boxed)),
                Err(e) if e.is_connect() => Err(NotSent {
                    failure: Failure::ConnectFailure,
                    reason: format!("cannot connect: {}", error_chain(&e)),
                    unsent: None,
                }),
                Err(e) => Err(NotSent {
                    failure: Failure::Reset,
                    reason: format!("connection lost: {}", error_chain(&e)),
                    unsent: None,
                }),
            })),
            None => Either::Right(
                self.pool
                    .try_send(addr, request, route.timeouts.connect)
                    .map(|sent| {
                        sent.map_err(|(e, unsent)| NotSent {
                            failure: match e {
                                SendError::Connect(_) => Failure::ConnectFailure,
                                SendError::Lost(_) => Failure::Reset,
                            },
                            reason: error_chain(&e),
                            unsent: unsent.map(Box::new),
                        })
                    }),
            ),
        }
    }

    /// One try against the picked endpoint, within the per-try timeout.
    async fn attempt(
        &self,
        route: &Route,
        target: &RouteTarget,
        pick: Chosen,
        permit: Option<Permit<'_>>,
        http2: Option<&HttpClient>,
        out: &mut Outbound<'_>,
    ) -> Result<Response<Body>, Failed> {
        let failed = |failure, response| Failed {
            failure,
            response,
            endpoint: pick.endpoint().id.clone(),
        };
        let endpoint = pick.endpoint();
        let Some(request) = out.request_to(&endpoint.addr, http2.is_some()) else {
            let reason = format!(
                "route {}: instance {} of {} has an unusable address {:?}",
                route.name, endpoint.id, target.key.service, endpoint.addr
            );
            let response = error_response(StatusCode::BAD_GATEWAY, "bad_gateway", reason);
            self.settle(
                route,
                target,
                &endpoint.id,
                permit,
                true,
                std::time::Duration::ZERO,
            );
            return Err(failed(Failure::ConnectFailure, response));
        };
        let started = Instant::now();
        let try_deadline = out
            .deadline
            .min(tokio::time::Instant::from_std(started) + route.timeouts.per_try);
        // Polled where it is pinned, rather than moved into a timeout
        // wrapper first: the send future is large, and each move copies it.
        let result = {
            let mut send = pin!(self.send(route, &endpoint.addr, request, http2));
            let timer = out.timer;
            // HTTP/2 streams, which may run side by side, get a timer each.
            let mut own: Option<Pin<Box<tokio::time::Sleep>>> = None;
            poll_fn(|cx| {
                if let Poll::Ready(sent) = send.as_mut().poll(cx) {
                    return Poll::Ready(Ok(sent));
                }
                let passed = match timer {
                    Some(timer) => timer.poll_passed(try_deadline, cx),
                    None => own
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(try_deadline)))
                        .as_mut()
                        .poll(cx),
                };
                passed.map(|()| Err(TimedOut))
            })
            .await
        };
        let latency = started.elapsed();
        self.metrics
            .target_upstream(&target.metrics, &route.name, &target.key.service, latency);
        let where_ = || {
            format!(
                "route {}: {} instance {} at {}",
                route.name, target.key.service, endpoint.id, endpoint.addr
            )
        };
        let (failure, response) = match result {
            Ok(Ok(mut response)) if !route.retry.retries_status(response.status().as_u16()) => {
                let ok = !response.status().is_server_error();
                respond(route, &mut response, out.upgrade.take());
                self.settle(route, target, &endpoint.id, permit, !ok, latency);
                pick.finish(latency, ok);
                return Ok(response);
            }
            Ok(Ok(mut response)) => {
                respond(route, &mut response, None);
                (Failure::Status(response.status().as_u16()), response)
            }
            Ok(Err(not_sent)) => {
                if let Some(request) = not_sent.unsent {
                    out.restore(*request);
                }
                (
                    not_sent.failure,
                    error_response(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        format!("{}: {}", where_(), not_sent.reason),
                    ),
                )
            }
            Err(_) => (
                Failure::Timeout,
                error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    format!(
                        "{}: no response within the per-try timeout of {} ms",
                        where_(),
                        route.timeouts.per_try.as_millis()
                    ),
                ),
            ),
        };
        let failed = failed(failure, response);
        // A retried 4xx is the client's doing, not the service failing.
        let service_failed = !matches!(failure, Failure::Status(s) if s < 500);
        self.settle(route, target, &endpoint.id, permit, service_failed, latency);
        pick.finish(latency, false);
        Err(failed)
    }
}

/// What steers the choice of endpoint besides the balancing policy.
struct Steer {
    /// The hash policies' key.
    hash: Option<u64>,
    /// The sticky cookie's token, as the client sent it.
    sticky: Option<String>,
    /// When the request arrived: the total deadline counts from it (one
    /// clock read serves the rate limit, the budget and the deadline).
    arrived: Instant,
}

/// A request that got no response: why, and the request itself when it
/// was never sent.
struct NotSent {
    failure: Failure,
    reason: String,
    /// Boxed: it is rare, and would make every attempt's result large.
    unsent: Option<Box<Request<Body>>>,
}

/// A failed attempt: why, what to answer if it is the last, and on which endpoint.
struct Failed {
    failure: Failure,
    response: Response<Body>,
    endpoint: String,
}

/// A request made ready for its attempts.
struct Outbound<'c> {
    method: Method,
    /// The request target, rewritten for the route.
    path_and_query: PathAndQuery,
    /// When the route's total timeout runs out.
    deadline: tokio::time::Instant,
    /// The client connection's timer, for a request that came over
    /// HTTP/1.1; HTTP/2 streams run side by side and time themselves.
    timer: Option<&'c ConnectionTimer>,
    version: Version,
    headers: HeaderMap,
    /// Whether each attempt gets a copy of `headers`: only when a retry may
    /// follow an attempt the endpoint saw. Otherwise the first attempt takes
    /// them, and they come back with a request that was never sent.
    copy_headers: bool,
    body: ReplayBody,
    /// The client side of an upgrade, handed to the tunnel on `101`.
    upgrade: Option<OnUpgrade>,
}

impl<'c> Outbound<'c> {
    /// Rewrites the request for the route. A small body of known size that
    /// a retry may need comes back unread, for the caller to buffer
    /// (within the total deadline) into `body`.
    fn prepare(
        route: &Route,
        mut req: Request<Incoming>,
        client: &'c Downstream,
        request_id: &HeaderValue,
        deadline: tokio::time::Instant,
    ) -> Result<(Outbound<'c>, Option<Incoming>), Box<Response<Body>>> {
        let upgrading = headers::is_upgrade(req.headers());
        let upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
        // gRPC that came in over HTTP/2 needs HTTP/2 (trailers) upstream;
        // everything else goes as HTTP/1.1, which every backend speaks.
        let timer = (req.version() < Version::HTTP_2).then_some(&client.timer);
        let version = if req.version() == Version::HTTP_2 && is_grpc(req.headers()) {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let (parts, body) = req.into_parts();
        let headers = upstream_headers(
            parts.headers,
            &parts.uri,
            version,
            upgrading,
            &client.peer,
            request_id,
            route,
        );
        let replay =
            !upgrading && route.retry.attempts > 0 && route.retry.allows_method(&parts.method);
        let (body, unread) = ReplayBody::new(body, replay);
        let path_and_query = match (&route.rewrite, parts.uri.path_and_query()) {
            (Rewrite::Keep, Some(kept)) => kept.clone(),
            _ => PathAndQuery::try_from(route.rewrite.apply(parts.uri.path(), parts.uri.query()))
                .map_err(|e| {
                Box::new(error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("cannot forward this request target: {e}"),
                ))
            })?,
        };
        let copy_headers = version == Version::HTTP_2 || route.retry.retries_after_sending();
        let out = Outbound {
            deadline,
            timer,
            copy_headers,
            path_and_query,
            method: parts.method,
            version,
            headers,
            body,
            upgrade,
        };
        Ok((out, unread))
    }

    /// The request for one attempt at `addr`: its URI in origin form for
    /// HTTP/1.1, absolute for the h2c client. `None` when that makes no URI
    /// or a streamed body was already sent.
    fn request_to(&mut self, addr: &str, absolute: bool) -> Option<Request<Body>> {
        let uri = if absolute {
            Uri::builder()
                .scheme("http")
                .authority(addr)
                .path_and_query(self.path_and_query.clone())
                .build()
                .ok()?
        } else {
            Uri::from(self.path_and_query.clone())
        };
        let mut request = Request::new(self.body.take()?);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = if self.copy_headers {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        Some(request)
    }

    /// Takes back the headers of a request that was never sent, for the
    /// next attempt.
    fn restore(&mut self, unsent: Request<Body>) {
        if !self.copy_headers {
            self.headers = unsent.into_parts().0.headers;
        }
    }
}

/// The headers sent upstream: hop-by-hop ones removed (an upgrade keeps its
/// `Upgrade`), `Host` kept (set from the authority when an HTTP/2 client's
/// request goes on as HTTP/1.1),
/// forwarding headers and the request id set, then the route's rules.
fn upstream_headers(
    mut headers: HeaderMap,
    uri: &Uri,
    version: Version,
    upgrade: bool,
    client: &Peer,
    request_id: &HeaderValue,
    route: &Route,
) -> HeaderMap {
    let upgrade_to = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    if headers::strip_hop_by_hop(&mut headers) {
        // `Connection` may have named it.
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    }
    if let Some(protocol) = upgrade_to {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // The authority first: an HTTP/1.1 client's request has none, and then
    // no lookup is needed.
    if version == Version::HTTP_11
        && let Some(authority) = uri.authority()
        && !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    headers::set_forwarded(&mut headers, client, "http");
    route.request_headers.apply(&mut headers);
    headers
}

/// Makes an endpoint's response the client's answer, in place (a response
/// is moved as little as possible on this path): hop-by-hop headers removed
/// and the route's rules applied; a `101` to an upgrade request starts the
/// tunnel between the two upgraded connections.
fn respond(route: &Route, resp: &mut Response<Body>, downstream_upgrade: Option<OnUpgrade>) {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream_upgrade
        && let Some(upstream) = resp.extensions_mut().remove::<Tunnel>()
    {
        tokio::spawn(tunnel(downstream, upstream));
        route.response_headers.apply(resp.headers_mut());
        return;
    }
    headers::strip_hop_by_hop(resp.headers_mut());
    route.response_headers.apply(resp.headers_mut());
    *resp.version_mut() = Version::HTTP_11;
}

/// Copies bytes both ways between an upgraded client and endpoint, starting
/// with what the endpoint sent right after its `101`.
async fn tunnel(downstream: OnUpgrade, upstream: Tunnel) {
    let Some((mut up, early)) = upstream.take() else {
        return;
    };
    let mut down = match downstream.await {
        Ok(down) => TokioIo::new(down),
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    if !early.is_empty()
        && let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut down, &early).await
    {
        tracing::debug!("upgraded connection ended: {e}");
        return;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!("upgraded connection ended: {e}");
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The total deadline passed.
fn total_timeout(route: &Route) -> Response<Body> {
    error_response(
        StatusCode::GATEWAY_TIMEOUT,
        "gateway_timeout",
        format!(
            "route {}: no response from {} within the total timeout of {} ms",
            route.name,
            route.service_label(),
            route.timeouts.total.as_millis()
        ),
    )
}

/// No route matched.
fn not_routed(snapshot: &Snapshot) -> Response<Body> {
    if snapshot.loaded {
        error_response(
            StatusCode::NOT_FOUND,
            "no_route",
            "no route matches this request",
        )
    } else {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway has not loaded its routes from Concord yet; try again shortly",
        )
    }
}

/// Adds the sticky cookie for the endpoint that answered (`token`) unless
/// the request's cookie (`sent`) already names it.
fn set_sticky(
    route: &Route,
    response: &mut Response<Body>,
    sent: Option<String>,
    token: Option<String>,
) {
    if let (Some(config), Some(token)) = (&route.sticky, token)
        && sent.as_deref() != Some(token.as_str())
        && let Some(value) = config.set_cookie(&token)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// No passing endpoint: the route's fallback, or 503.
fn no_endpoint(route: &Route) -> Response<Body> {
    route.fallback_response().unwrap_or_else(|| {
        let services: Vec<String> = route.targets.iter().map(|t| t.key.to_string()).collect();
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_endpoint",
            format!(
                "route {}: no passing instance of {}",
                route.name,
                services.join(" or ")
            ),
        )
    })
}

/// The target's circuit breaker refused the request: an open breaker answers
/// with the route's fallback or 503 `circuit_open`; a full concurrency cap
/// with 503 `concurrency_limit`.
fn refused_response(route: &Route, target: &RouteTarget, refused: Refused) -> Response<Body> {
    match refused {
        Refused::Open => route.fallback_response().unwrap_or_else(|| {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_open",
                format!(
                    "route {}: the circuit breaker for {} is open after too many failures; try again shortly",
                    route.name, target.key
                ),
            )
        }),
        Refused::Concurrency => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "concurrency_limit",
            format!(
                "route {}: {} already has its maximum of concurrent requests in flight",
                route.name, target.key
            ),
        ),
    }
}

/// 429 with `Retry-After`.
fn too_many_requests(route: &str, wait: std::time::Duration) -> Response<Body> {
    let secs = retry_after_secs(wait);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("route {route}: rate limit exceeded; retry in {secs} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// A request body that can be sent more than once when it was small enough
/// to keep.
enum ReplayBody {
    /// Kept in memory: every attempt gets a copy.
    Buffered(Bytes),
    /// Streamed: only one attempt can have it.
    Once(Option<Body>),
}

impl ReplayBody {
    /// What to do with a request body: kept for replay when `replay` and it
    /// is empty, or small of known size (then returned unread, to be
    /// buffered by the caller); streamed otherwise.
    fn new(body: Incoming, replay: bool) -> (Self, Option<Incoming>) {
        if replay {
            if body.is_end_stream() {
                return (ReplayBody::Buffered(Bytes::new()), None);
            }
            if body
                .size_hint()
                .exact()
                .is_some_and(|n| n <= MAX_REPLAY_BODY)
            {
                return (ReplayBody::Buffered(Bytes::new()), Some(body));
            }
        }
        (ReplayBody::Once(Some(boxed(body))), None)
    }

    fn take(&mut self) -> Option<Body> {
        match self {
            ReplayBody::Buffered(bytes) => Some(full(bytes.clone())),
            ReplayBody::Once(body) => body.take(),
        }
    }

    fn can_replay(&self) -> bool {
        matches!(self, ReplayBody::Buffered(_))
    }
}
