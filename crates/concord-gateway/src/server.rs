//! Starting the gateway, accepting connections, and draining on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use concord_client::Client;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::admin::{self, Admin};
use crate::config::GatewayConfig;
use crate::discovery::Discovery;
use crate::drain::Drain;
use crate::error::GatewayError;
use crate::headers::Peer;
use crate::idle::{self, Activity, Busy, IdleCheck, Tracked};
use crate::metrics::{ConnectionGuard, Metrics};
use crate::proxy::{Downstream, Proxy};
use crate::socket::ClientSocket;
use crate::state::Shared;
use crate::upstream::Upstreams;

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    serving: JoinHandle<()>,
    background: Vec<AbortHandle>,
    upstreams: Arc<Upstreams>,
}

/// Binds the listeners and starts serving; routes load in the background
/// (until they do, requests get `503 unavailable`).
pub async fn start(config: GatewayConfig) -> Result<Gateway, GatewayError> {
    let listener = bind(config.listen).await?;
    let listen = listener.local_addr().unwrap_or(config.listen);
    let admin_listener = match config.admin {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr().unwrap_or(config.admin.unwrap_or(listen)));

    let shared = Arc::new(Shared::default());
    let upstreams = Arc::new(Upstreams::default());
    let metrics = Arc::new(Metrics::new());
    let discovery = Discovery::new(
        Client::new(&config.server),
        Arc::clone(&shared),
        Arc::clone(&upstreams),
        config.clone(),
    );
    let mut background = vec![tokio::spawn(discovery.run()).abort_handle()];
    if let Some(l) = admin_listener {
        let admin = Arc::new(Admin::new(
            Arc::clone(&shared),
            Arc::clone(&upstreams),
            Arc::clone(&metrics),
        ));
        background.push(tokio::spawn(admin::serve(l, admin)).abort_handle());
    }
    let proxy = Arc::new(Proxy::new(
        shared,
        config.pool_idle_timeout,
        Arc::clone(&metrics),
        config.access_log,
    ));
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(serve(
        listener,
        proxy,
        metrics,
        stopped,
        Timeouts {
            drain: config.drain_timeout,
            client_idle: config.client_idle_timeout,
        },
    ));
    tracing::info!(%listen, admin = ?admin_addr, server = %config.server, "gateway started");
    Ok(Gateway {
        listen,
        admin: admin_addr,
        stop,
        serving,
        background,
        upstreams,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

impl Gateway {
    /// The address proxied traffic goes to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The admin address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Stops accepting, lets in-flight requests finish (HTTP/2 clients get
    /// GOAWAY, idle HTTP/1.1 connections are closed) up to the drain
    /// timeout, then stops discovery and the admin listener.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.serving.await {
            tracing::warn!("the accept loop ended badly: {e}");
        }
        for task in &self.background {
            task.abort();
        }
        self.upstreams.stop_all();
    }
}

/// The accept loop's timeouts, from [`GatewayConfig`].
struct Timeouts {
    drain: Duration,
    client_idle: Duration,
}

/// What one client connection's requests share.
struct Connection {
    proxy: Arc<Proxy>,
    client: Downstream,
    activity: Arc<Activity>,
}

impl Tracked for Connection {
    fn activity(&self) -> &Activity {
        &self.activity
    }
}

/// Accepts until told to stop, then drains.
async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    timeouts: Timeouts,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's per-request header-read timer is replaced by the idle check
    // below, which covers slow request heads and idle keep-alives alike.
    //
    // Half-closed clients (`nc -N`, or anything that shuts its side once
    // the request is sent) get their answer, as from haproxy. The price: a
    // client that leaves mid-request is noticed when its answer is written,
    // not before. In exchange hyper stops reading ahead during each request
    // to watch for that close, a read that made it allocate a fresh 8 KiB
    // buffer per request (the request's head still held the old one): 489
    // fewer instructions per request (docs/benchmarks.md).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .half_close(true);
    builder.http2().timer(TokioTimer::new());
    let drain = Drain::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: pause instead of spinning.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let shared = Arc::new(Connection {
            proxy: Arc::clone(&proxy),
            client: Downstream::new(Peer::new(remote)),
            activity: Arc::clone(&activity),
        });
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::begin(Arc::clone(&shared));
            async move {
                let conn = busy.owner();
                let response = conn.proxy.handle(req, &conn.client).await;
                Ok::<_, Infallible>(response.map(|body| idle::hold(body, busy)))
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(ClientSocket::new(stream), service)
            .into_owned();
        let conn = drain
            .watch(conn)
            .with_idle(IdleCheck::new(activity, timeouts.client_idle));
        let guard = ConnectionGuard::new(&metrics);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
            drop(guard);
        });
    }
    drop(listener);
    let open = drain.count();
    tracing::info!(
        open,
        "draining: no new connections, finishing in-flight requests"
    );
    tokio::select! {
        _ = drain.shutdown() => tracing::info!("drained"),
        _ = tokio::time::sleep(timeouts.drain) => {
            tracing::warn!(timeout_ms = timeouts.drain.as_millis() as u64, "drain deadline passed; closing the remaining connections");
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
