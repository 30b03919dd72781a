//! Real endpoints on 127.0.0.1 for the probe and runner tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

/// A server task that is stopped when dropped.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Served {
    /// Stops accepting, waits for open connections to finish, and releases the port.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// An HTTP server answering every path with the status in `status` and a
/// short body; `/big` answers 2000 bytes, `/redirect` a 302, `/echo` the
/// `x-probe` request header.
pub(crate) async fn http_server(status: Arc<AtomicU16>) -> Served {
    async fn answer(State(status): State<Arc<AtomicU16>>) -> (StatusCode, &'static str) {
        let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("valid status");
        (code, "hello from the test server\n")
    }
    async fn big() -> String {
        "x".repeat(2000)
    }
    async fn redirect() -> (StatusCode, [(&'static str, &'static str); 1]) {
        (StatusCode::FOUND, [("location", "/elsewhere")])
    }
    async fn echo(headers: HeaderMap) -> String {
        let value = headers.get("x-probe").map(|v| v.to_str().unwrap_or("?"));
        format!("x-probe={}", value.unwrap_or("missing"))
    }
    let app = axum::Router::new()
        .route("/big", any(big))
        .route("/redirect", any(redirect))
        .route("/echo", any(echo))
        .fallback(answer)
        .with_state(status);
    let (listener, addr) = loopback().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Served {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Accepts connections and never answers nor closes them.
pub(crate) async fn silent_server() -> Served {
    let (listener, addr) = loopback().await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Served {
        addr,
        stop: None,
        task,
    }
}

/// A gRPC server with only the health service; the reporter sets statuses.
pub(crate) async fn grpc_health_server() -> (Served, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let (listener, addr) = loopback().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    let served = Served {
        addr,
        stop: Some(stop),
        task,
    };
    (served, reporter)
}

/// A loopback address nothing listens on (bound, then released).
pub(crate) async fn closed_port() -> SocketAddr {
    let (_listener, addr) = loopback().await;
    addr
}
