//! Real health endpoints the tests start and stop: HTTP with a switchable status
//! that counts what it answered, a TCP listener, a gRPC health server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;

/// An HTTP endpoint answering `status` on every path.
pub struct HttpEndpoint {
    pub addr: SocketAddr,
    state: Arc<HttpState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct HttpState {
    status: AtomicU16,
    ok: AtomicUsize,
    failed: AtomicUsize,
}

impl HttpEndpoint {
    pub async fn start(status: u16) -> HttpEndpoint {
        async fn answer(State(st): State<Arc<HttpState>>) -> StatusCode {
            let code = st.status.load(Ordering::SeqCst);
            if (200..300).contains(&code) {
                st.ok.fetch_add(1, Ordering::SeqCst);
            } else {
                st.failed.fetch_add(1, Ordering::SeqCst);
            }
            StatusCode::from_u16(code).expect("status")
        }
        let state = Arc::new(HttpState::default());
        state.status.store(status, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpEndpoint { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Probes answered with a 2xx so far.
    pub fn ok(&self) -> usize {
        self.state.ok.load(Ordering::SeqCst)
    }

    /// Probes answered with anything else so far.
    pub fn failed(&self) -> usize {
        self.state.failed.load(Ordering::SeqCst)
    }
}

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP listener that accepts (and drops) connections until stopped.
pub struct TcpEndpoint {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TcpEndpoint {
    pub async fn start() -> TcpEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        });
        TcpEndpoint { addr, task }
    }

    /// Closes the listener: connects are refused from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A gRPC server with only the health service.
pub struct GrpcEndpoint {
    pub addr: SocketAddr,
    pub reporter: HealthReporter,
    task: JoinHandle<()>,
}

impl GrpcEndpoint {
    pub async fn start() -> GrpcEndpoint {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await;
        });
        GrpcEndpoint {
            addr,
            reporter,
            task,
        }
    }
}

impl Drop for GrpcEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
