use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// A server whose `/slow` answers once `release` is notified; every connection
/// is watched by the returned drain.
async fn server(release: Arc<Notify>) -> (String, Arc<Drain>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let drain = Arc::new(Drain::new());
    let watching = Arc::clone(&drain);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let release = Arc::clone(&release);
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let release = Arc::clone(&release);
                async move {
                    if req.uri().path() == "/slow" {
                        release.notified().await;
                    }
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                }
            });
            let conn = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = watching.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    (addr, drain)
}

async fn send(stream: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
}

/// Reads until the buffer holds a whole `ok` response (or the stream ends).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).ends_with("\r\n\r\nok") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_waits_for_requests_in_flight() {
    let release = Arc::new(Notify::new());
    let (addr, drain) = server(Arc::clone(&release)).await;

    let mut idle = TcpStream::connect(&addr).await.unwrap();
    send(&mut idle, "/fast").await;
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    send(&mut busy, "/slow").await;
    until("both connections", || drain.count() == 2).await;

    let draining = Arc::clone(&drain);
    let shutdown = tokio::spawn(async move { draining.shutdown().await });

    // The idle connection is closed without an answer to anything.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(DEADLINE, idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection closes")
        .unwrap();
    assert_eq!(n, 0, "nothing more on the idle connection");
    until("the idle connection to go", || drain.count() == 1).await;
    assert!(!shutdown.is_finished(), "a request is still in flight");

    // The request in flight completes, then the drain ends.
    release.notify_one();
    let answer = read_response(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("the drain ends")
        .unwrap();
    assert_eq!(drain.count(), 0);
}

#[tokio::test]
async fn shutdown_with_no_connections_returns_at_once() {
    let drain = Drain::new();
    tokio::time::timeout(DEADLINE, drain.shutdown())
        .await
        .expect("nothing to wait for");
}
