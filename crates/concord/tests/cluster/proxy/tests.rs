//! The proxy against a local echo server: forwarding, blackholing (nothing
//! passes, nothing errors, everything resumes on heal), resets, and delay.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// How long "nothing arrives" is watched for. Absence cannot be waited on, only
/// observed for a while; a frozen link never delivers, so longer only costs time.
const QUIET: Duration = Duration::from_millis(300);
/// Deadline for things that must happen.
const SOON: Duration = Duration::from_secs(10);

/// An echo server on loopback; returns its address.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg` and reads exactly its echo, within `within`.
async fn round_trip(s: &mut TcpStream, msg: &[u8], within: Duration) -> io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    read_exact(s, msg.len(), within).await
}

async fn read_exact(s: &mut TcpStream, n: usize, within: Duration) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(within, s.read_exact(&mut buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no echo in time"))??;
    Ok(buf)
}

/// Asserts nothing (no data, no EOF, no error) arrives for [`QUIET`].
async fn assert_silent(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let got = tokio::time::timeout(QUIET, s.read(&mut buf)).await;
    assert!(got.is_err(), "expected silence, got {got:?}");
}

/// Asserts the connection is torn down (EOF or reset) within [`SOON`].
async fn assert_torn_down(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let _ = s.write_all(b"ping").await;
    match tokio::time::timeout(SOON, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => panic!("expected EOF or reset, got {other:?}"),
    }
}

#[tokio::test]
async fn forwards_both_ways_and_counts_connections() {
    let p = Proxy::start(echo_server().await).await.unwrap();
    assert_eq!(p.mode(), Mode::Open);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut a, b"hello", SOON).await.unwrap(), b"hello");
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut b, b"again", SOON).await.unwrap(), b"again");
    assert_eq!(p.accepted(), 2);
}

#[tokio::test]
async fn a_cut_freezes_connections_silently_and_heal_resumes_them() {
    let p = Proxy::start(echo_server().await).await.unwrap();
    let mut old = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut old, b"before", SOON).await.unwrap(),
        b"before"
    );

    p.cut();
    assert_eq!(p.mode(), Mode::Blackhole);
    old.write_all(b"during").await.unwrap();
    assert_silent(&mut old).await;
    // A new connection is accepted (no refusal to notice) but goes nowhere.
    let mut new = TcpStream::connect(p.addr()).await.unwrap();
    new.write_all(b"fresh").await.unwrap();
    assert_silent(&mut new).await;

    p.heal();
    assert_eq!(read_exact(&mut old, 6, SOON).await.unwrap(), b"during");
    assert_eq!(read_exact(&mut new, 5, SOON).await.unwrap(), b"fresh");
    assert_eq!(
        round_trip(&mut old, b"after", SOON).await.unwrap(),
        b"after"
    );
}

#[tokio::test]
async fn a_reset_cut_aborts_existing_and_new_connections() {
    let p = Proxy::start(echo_server().await).await.unwrap();
    let mut old = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut old, b"x", SOON).await.unwrap(), b"x");

    p.cut_reset();
    assert_torn_down(&mut old).await;
    let mut new = TcpStream::connect(p.addr()).await.unwrap();
    assert_torn_down(&mut new).await;

    p.heal();
    let mut again = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"ok", SOON).await.unwrap(), b"ok");
}

#[tokio::test]
async fn delay_holds_back_each_direction() {
    let p = Proxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"warm", SOON).await.unwrap(), b"warm");

    let delay = Duration::from_millis(150);
    p.delay(delay);
    let started = std::time::Instant::now();
    assert_eq!(round_trip(&mut s, b"slow", SOON).await.unwrap(), b"slow");
    // Out and back: at least twice the delay. (No upper bound: a loaded machine is slow.)
    assert!(
        started.elapsed() >= 2 * delay,
        "round trip took {:?}",
        started.elapsed()
    );

    p.delay(Duration::ZERO);
    assert_eq!(round_trip(&mut s, b"fast", SOON).await.unwrap(), b"fast");
}

#[tokio::test]
async fn a_dead_target_closes_the_client_side() {
    // Bind then drop: nothing listens there any more.
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let p = Proxy::start(gone).await.unwrap();
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_torn_down(&mut s).await;
}

#[tokio::test]
async fn dropping_the_proxy_tears_connections_down() {
    let p = Proxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"x", SOON).await.unwrap(), b"x");
    drop(p);
    assert_torn_down(&mut s).await;
}
