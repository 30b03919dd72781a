use std::sync::atomic::{AtomicUsize, Ordering};

use http::header;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::body::full;

const CONNECT: Duration = Duration::from_secs(2);

/// How the test backend answers.
#[derive(Clone, Copy)]
enum Mode {
    /// `200 ok`, connection kept.
    KeepAlive,
    /// `200 ok` with `Connection: close`, then closes.
    Close,
    /// `200 ok` without saying so, then closes (a backend's idle timeout
    /// firing right after the response).
    SilentClose,
    /// A 1 MiB body, connection kept.
    Large,
    /// `200 ok`, then closes the connection 100 ms later, while it is idle
    /// in the pool.
    IdleClose,
    /// The host, chunked, one write per chunk; connection kept.
    Chunked,
    /// The host, then bytes nobody asked for; connection kept.
    Stray,
}

/// A raw HTTP/1.1 backend: counts connections, echoes the `Host` it got as
/// the body of a `Large`-less answer.
struct Backend {
    addr: String,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn backend(mode: Mode) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let closes = Arc::clone(&closed);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let closes = Arc::clone(&closes);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(head) = read_request(&mut stream, &mut buf).await else {
                        return;
                    };
                    let host = head
                        .lines()
                        .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                        .unwrap_or("-")
                        .to_owned();
                    let answer = match mode {
                        Mode::KeepAlive | Mode::SilentClose | Mode::IdleClose => format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{host}",
                            host.len()
                        ),
                        Mode::Close => format!(
                            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{host}",
                            host.len()
                        ),
                        Mode::Chunked => {
                            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                            if stream.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            for part in host.as_bytes().chunks(2) {
                                let chunk = format!(
                                    "{:x}\r\n{}\r\n",
                                    part.len(),
                                    String::from_utf8_lossy(part)
                                );
                                if stream.write_all(chunk.as_bytes()).await.is_err() {
                                    return;
                                }
                                tokio::task::yield_now().await;
                            }
                            "0\r\n\r\n".to_owned()
                        }
                        Mode::Stray => format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{host}HTTP/1.1 200 OK\r\n",
                            host.len()
                        ),
                        Mode::Large => format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
                            1 << 20,
                            "x".repeat(1 << 20)
                        ),
                    };
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if matches!(mode, Mode::Close | Mode::SilentClose) {
                        return;
                    }
                    if matches!(mode, Mode::IdleClose) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        drop(stream);
                        closes.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    Backend {
        addr,
        accepted,
        closed,
    }
}

/// Reads one request (head and a `content-length` body); `None` at EOF.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get(host: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().uri("/x");
    if let Some(host) = host {
        req = req.header(header::HOST, host);
    }
    req.body(full(Bytes::new())).unwrap()
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits, up to a deadline, for `cond`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_connection_is_reused_once_its_response_was_read() {
    let b = backend(Mode::KeepAlive).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    for _ in 0..5 {
        let response = pool
            .send(&b.addr, get(Some("shop")), CONNECT)
            .await
            .unwrap();
        assert_eq!(text(response).await, "shop");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(&b.addr), 1);
}

#[tokio::test]
async fn a_request_without_host_gets_the_address() {
    let b = backend(Mode::KeepAlive).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    let response = pool.send(&b.addr, get(None), CONNECT).await.unwrap();
    assert_eq!(text(response).await, b.addr);
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_all_come_back() {
    let b = backend(Mode::KeepAlive).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    let responses =
        futures::future::join_all((0..4).map(|_| pool.send(&b.addr, get(Some("h")), CONNECT)))
            .await;
    for r in responses {
        assert_eq!(text(r.unwrap()).await, "h");
    }
    let opened = b.accepted.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened} connections");
    assert_eq!(pool.idle_count(&b.addr), opened);
}

#[tokio::test]
async fn idle_connections_expire_and_are_swept() {
    let b = backend(Mode::KeepAlive).await;
    let pool = Http1Pool::new(Duration::from_millis(200));
    text(pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap()).await;
    assert_eq!(pool.idle_count(&b.addr), 1);
    until("the sweeper", || pool.idle_count(&b.addr) == 0).await;
    text(pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap()).await;
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_sweep_keeps_the_stack_of_a_response_still_being_read() {
    let b = backend(Mode::Large).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    let response = pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap();
    // The address has no idle connection now, but the response holds its
    // stack: the sweep must not forget it.
    pool.inner.sweep(Instant::now());
    assert_eq!(text(response).await.len(), 1 << 20);
    assert_eq!(pool.idle_count(&b.addr), 1, "the connection came back");
    // Expired and no longer held: the address goes.
    pool.inner.sweep(Instant::now() + Duration::from_secs(31));
    assert!(!pool.inner.read().contains_key(b.addr.as_str()));
}

#[tokio::test]
async fn connection_close_is_not_pooled() {
    let b = backend(Mode::Close).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    for _ in 0..3 {
        assert_eq!(
            text(pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap()).await,
            "h"
        );
        assert_eq!(pool.idle_count(&b.addr), 0);
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_after_the_backend_closed_the_idle_connection_goes_on_a_new_one() {
    let b = backend(Mode::SilentClose).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    for i in 1..=5 {
        let req = Request::builder()
            .method("POST")
            .uri("/pay")
            .header(header::HOST, "h")
            .body(full(Bytes::from_static(b"{}")))
            .unwrap();
        let response = pool.send(&b.addr, req, CONNECT).await.unwrap();
        assert_eq!(text(response).await, "h");
        assert_eq!(b.accepted.load(Ordering::SeqCst), i);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let b = backend(Mode::Large).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    let response = pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(pool.idle_count(&b.addr), 0);
    // Read to the end, the next one comes back.
    let response = pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap();
    assert_eq!(text(response).await.len(), 1 << 20);
    assert_eq!(pool.idle_count(&b.addr), 1);
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let pool = Http1Pool::new(Duration::from_secs(30));
    let err = pool.send(&addr, get(Some("h")), CONNECT).await.unwrap_err();
    assert!(matches!(err, SendError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn a_connection_the_backend_closed_while_idle_is_not_used() {
    let b = backend(Mode::IdleClose).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    text(pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap()).await;
    assert_eq!(pool.idle_count(&b.addr), 1);
    until("the backend closing", || {
        b.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // No task watches an idle connection: the close shows when the next
    // request takes it, which must then open another, not wait on it.
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(&b.addr, get(Some("h")), CONNECT),
    )
    .await
    .expect("the request waited on a closed connection")
    .unwrap();
    assert_eq!(text(response).await, "h");
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_chunked_response_streams_and_its_connection_comes_back() {
    let b = backend(Mode::Chunked).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    for _ in 0..3 {
        let response = pool
            .send(&b.addr, get(Some("chunked-host")), CONNECT)
            .await
            .unwrap();
        assert_eq!(text(response).await, "chunked-host");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(&b.addr), 1);
}

#[tokio::test]
async fn a_connection_with_bytes_past_its_response_is_not_pooled() {
    let b = backend(Mode::Stray).await;
    let pool = Http1Pool::new(Duration::from_secs(30));
    for _ in 0..2 {
        let response = pool.send(&b.addr, get(Some("h")), CONNECT).await.unwrap();
        assert_eq!(text(response).await, "h");
        assert_eq!(pool.idle_count(&b.addr), 0);
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}
