use std::convert::Infallible;
use std::future::poll_fn;
use std::task::Poll;

use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::*;
use crate::body::full;
use crate::drain::Drain;

const DEADLINE: Duration = Duration::from_secs(10);

/// Polls the check once without blocking.
async fn verdict(check: &mut IdleCheck) -> Verdict {
    poll_fn(|cx| Poll::Ready(check.poll(cx))).await
}

#[tokio::test(start_paused = true)]
async fn quiet_periods_lead_to_shut_down_then_close_and_requests_reset_them() {
    let activity = Arc::new(Activity::default());
    let shared = Arc::new(SharedActivity(Arc::clone(&activity)));
    let mut check = IdleCheck::new(Arc::clone(&activity), Duration::from_secs(3));
    let period = Duration::from_secs(1);
    assert_eq!(verdict(&mut check).await, Verdict::Keep);

    // Two quiet periods, then a request that is still in flight at the
    // next two checks: the count starts again.
    for _ in 0..2 {
        tokio::time::advance(period).await;
        assert_eq!(verdict(&mut check).await, Verdict::Keep);
    }
    let busy = Busy::begin(Arc::clone(&shared));
    for _ in 0..2 {
        tokio::time::advance(period).await;
        assert_eq!(verdict(&mut check).await, Verdict::Keep);
    }
    drop(busy);
    for _ in 0..2 {
        tokio::time::advance(period).await;
        assert_eq!(verdict(&mut check).await, Verdict::Keep);
    }
    tokio::time::advance(period).await;
    assert_eq!(verdict(&mut check).await, Verdict::ShutDown);
    tokio::time::advance(period).await;
    assert_eq!(verdict(&mut check).await, Verdict::Close);

    // A request that started and finished between two checks also counts.
    let mut check = IdleCheck::new(Arc::clone(&activity), Duration::from_secs(3));
    assert_eq!(verdict(&mut check).await, Verdict::Keep);
    for _ in 0..2 {
        tokio::time::advance(period).await;
        assert_eq!(verdict(&mut check).await, Verdict::Keep);
    }
    drop(Busy::begin(Arc::clone(&shared)));
    tokio::time::advance(period).await;
    assert_eq!(verdict(&mut check).await, Verdict::Keep);
}

/// Lets the tests share one [`Activity`] between a [`Busy`] and a check.
struct SharedActivity(Arc<Activity>);

impl Tracked for SharedActivity {
    fn activity(&self) -> &Activity {
        &self.0
    }
}

/// A server whose connections close after `timeout` idle; `/stream` sends
/// its first chunk, then the rest once `release` is notified.
async fn server(timeout: Duration, release: Arc<Notify>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let drain = Drain::new();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let release = Arc::clone(&release);
            let activity = Arc::new(Activity::default());
            let shared = Arc::new(SharedActivity(Arc::clone(&activity)));
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let busy = Busy::begin(Arc::clone(&shared));
                let release = Arc::clone(&release);
                async move {
                    let body = if req.uri().path() == "/stream" {
                        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
                        tokio::spawn(async move {
                            let _ = tx.send(Bytes::from("first;")).await;
                            release.notified().await;
                            let _ = tx.send(Bytes::from("ok")).await;
                        });
                        crate::body::boxed(http_body_util::StreamBody::new(tokio_stream_of(rx)))
                    } else {
                        full("ok")
                    };
                    let response = hyper::Response::builder()
                        .header("transfer-encoding", "chunked")
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(response.map(|b| hold(b, busy)))
                }
            });
            let conn = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = drain
                .watch(conn)
                .with_idle(IdleCheck::new(activity, timeout));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    addr
}

/// The receiver as a stream of data frames.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))))
}

/// Reads until `want` has arrived, or the stream ends (then `None`).
async fn read_until(stream: &mut TcpStream, want: &str) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).contains(want) {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("bytes or a close in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Whether the peer closes the connection within the deadline.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 64];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_keep_alives_and_unfinished_heads_are_closed() {
    let addr = server(Duration::from_millis(300), Arc::new(Notify::new())).await;

    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut idle, "ok\r\n0\r\n\r\n")
        .await
        .expect("a response");
    assert!(closed(&mut idle).await, "an idle keep-alive is closed");

    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();
    assert!(closed(&mut slow).await, "an unfinished head is closed");

    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(closed(&mut silent).await, "a silent connection is closed");
}

#[tokio::test]
async fn a_response_still_streaming_is_not_idle() {
    let release = Arc::new(Notify::new());
    let timeout = Duration::from_millis(200);
    let addr = server(timeout, Arc::clone(&release)).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut stream, "first;")
        .await
        .expect("the first chunk");
    // Several idle timeouts pass while the body is still being sent.
    tokio::time::sleep(timeout * 4).await;
    release.notify_one();
    read_until(&mut stream, "ok\r\n0\r\n\r\n")
        .await
        .expect("the rest of the body on the same connection");
}
