//! The pooled HTTP clients that talk to endpoints.
//!
//! hyper-util's pooled client, one pair (HTTP/1.1 and h2c) per distinct
//! connect timeout, since the connector owns that setting and routes may
//! differ. Idle pooled connections are closed after
//! [`GatewayConfig::pool_idle_timeout`](crate::GatewayConfig::pool_idle_timeout),
//! below typical backend idle timeouts (see PITFALLS: the keep-alive race).
//! The pool resends a request that failed on a reused connection before it
//! was written.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;

/// A pooled client.
pub type HttpClient = Client<HttpConnector, Body>;

/// The clients for one connect timeout.
#[derive(Clone, Debug)]
pub struct Clients {
    /// HTTP/1.1 (upgrades included): the default towards endpoints.
    pub http1: HttpClient,
    /// HTTP/2 with prior knowledge, for gRPC that came in over HTTP/2.
    pub http2: HttpClient,
}

/// Clients by connect timeout, created on first use.
#[derive(Debug)]
pub struct ClientCache {
    idle_timeout: Duration,
    by_connect: RwLock<HashMap<Duration, Clients>>,
}

impl ClientCache {
    /// A cache whose clients close idle connections after `idle_timeout`.
    pub fn new(idle_timeout: Duration) -> Self {
        ClientCache {
            idle_timeout,
            by_connect: RwLock::new(HashMap::new()),
        }
    }

    /// The clients with this connect timeout.
    pub fn get(&self, connect: Duration) -> Clients {
        if let Some(c) = self
            .by_connect
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&connect)
        {
            return c.clone();
        }
        let mut map = self
            .by_connect
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(connect)
            .or_insert_with(|| Clients {
                http1: build(connect, self.idle_timeout, false),
                http2: build(connect, self.idle_timeout, true),
            })
            .clone()
    }
}

fn build(connect: Duration, idle: Duration, http2: bool) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(http2)
        .build(connector)
}
