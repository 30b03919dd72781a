//! The gateway's own settings (per-route settings live in the routes), with
//! their defaults in one place.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything [`start`](crate::start) needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URL of a Concord node (`http://127.0.0.1:7600`).
    pub server: String,
    /// Where to accept proxied traffic (HTTP/1.1 and h2c). Port 0 picks one.
    pub listen: SocketAddr,
    /// Where to serve `/metrics` and `/admin/*`; `None` serves nothing.
    pub admin: Option<SocketAddr>,
    /// Log one structured line per request (target `concord_gateway::access`, level info).
    pub access_log: bool,
    /// On shutdown, how long in-flight requests get to finish before their
    /// connections are dropped. Default 30 s.
    pub drain_timeout: Duration,
    /// How long a client connection may sit with no request in flight (an
    /// idle keep-alive, or a request head that never completes) before it
    /// is shut down: HTTP/2 gets GOAWAY, HTTP/1.1 is closed. Checked every
    /// third of it, so the close comes between this and a third more.
    /// Default 30 s.
    pub client_idle_timeout: Duration,
    /// How long an idle upstream connection stays pooled. Kept below the idle
    /// timeouts of typical backends (nginx 75 s, Node 5 s is the odd one out)
    /// so the gateway, not the backend, closes idle connections and the
    /// keep-alive race (a backend closing a connection just as it is reused)
    /// stays rare. Default 30 s.
    pub pool_idle_timeout: Duration,
    /// A route change that brings in new targets waits this long for their
    /// first endpoint list before it takes effect, so traffic moved to a new
    /// service does not see a window of 503s. Default 5 s.
    pub warm_up_timeout: Duration,
    /// First delay before reconnecting to Concord after a failure; doubles up
    /// to [`GatewayConfig::reconnect_max`]. Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts. Default 5 s.
    pub reconnect_max: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            server: "http://127.0.0.1:7600".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7680)),
            admin: None,
            access_log: false,
            drain_timeout: Duration::from_secs(30),
            client_idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(30),
            warm_up_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}
