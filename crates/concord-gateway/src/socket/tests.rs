use std::future::poll_fn;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (ours.unwrap(), theirs.unwrap().0)
}

/// One read of at most `room` bytes, within a deadline.
async fn read(io: &TcpStream, room: usize) -> Vec<u8> {
    let mut buf = vec![0; room];
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        poll_fn(|cx| poll_read_with(io, cx, room, || io.try_read(&mut buf))),
    )
    .await
    .expect("a read in time")
    .unwrap();
    buf.truncate(n);
    buf
}

fn flagged(io: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    io.poll_read_ready(&mut cx).is_ready()
}

#[tokio::test]
async fn a_short_read_drops_the_flag_and_later_bytes_still_wake() {
    let (ours, mut theirs) = pair().await;
    theirs.write_all(b"abc").await.unwrap();
    assert_eq!(read(&ours, 16).await, b"abc");
    assert!(!flagged(&ours), "a read that left room kept the flag");
    theirs.write_all(b"def").await.unwrap();
    assert_eq!(read(&ours, 16).await, b"def");
}

#[tokio::test]
async fn a_full_read_keeps_the_flag_for_what_is_left() {
    let (ours, mut theirs) = pair().await;
    theirs.write_all(b"0123456789abcdef").await.unwrap();
    let mut got = read(&ours, 8).await;
    // The first read may have found only part; either way, more follows.
    while got.len() < 16 {
        got.extend(read(&ours, 8).await);
    }
    assert_eq!(got, b"0123456789abcdef");
}

#[tokio::test]
async fn a_close_after_a_short_read_is_seen() {
    let (ours, mut theirs) = pair().await;
    theirs.write_all(b"x").await.unwrap();
    drop(theirs);
    assert_eq!(read(&ours, 16).await, b"x");
    assert_eq!(read(&ours, 16).await, b"");
}
