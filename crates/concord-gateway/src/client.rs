//! The pooled h2c clients that carry gRPC to endpoints.
//!
//! hyper-util's pooled client, one per distinct connect timeout, since the
//! connector owns that setting and routes may differ. It multiplexes
//! requests over HTTP/2 connections and opens another when a connection's
//! stream limit is reached. Idle connections are closed after
//! [`GatewayConfig::pool_idle_timeout`](crate::GatewayConfig::pool_idle_timeout).
//! HTTP/1.1 goes through [`crate::pool`], which is cheaper per request.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;

/// A pooled h2c client.
pub type HttpClient = Client<HttpConnector, Body>;

/// Clients by connect timeout, created on first use.
#[derive(Debug)]
pub struct ClientCache {
    idle_timeout: Duration,
    by_connect: RwLock<HashMap<Duration, HttpClient>>,
}

impl ClientCache {
    /// A cache whose clients close idle connections after `idle_timeout`.
    pub fn new(idle_timeout: Duration) -> Self {
        ClientCache {
            idle_timeout,
            by_connect: RwLock::new(HashMap::new()),
        }
    }

    /// The h2c client with this connect timeout.
    pub fn get(&self, connect: Duration) -> HttpClient {
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
            .or_insert_with(|| build(connect, self.idle_timeout))
            .clone()
    }
}

fn build(connect: Duration, idle: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(true)
        .build(connector)
}
