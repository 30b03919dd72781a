//! The trivial participant of the `txn` scenario: an HTTP/1.1 server on 127.0.0.1:0 that
//! answers `200 {}` to every request and counts them by `Concord-Txn-Op`.
//!
//! It is a few dozen lines over a tokio socket rather than a web framework so that its
//! own cost stays small and the bench crate needs no server dependency. It reads what
//! the coordinator's reqwest client sends: a request head, then a `Content-Length` body
//! (or none); keep-alive connections, pipelining tolerated. A chunked body is not read:
//! the request is answered 501 and the connection closed, which the coordinator records
//! as a failed call, so it shows up as an error rather than as a silent wrong count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head (and body) read; anything bigger is a bug in the benchmark.
const MAX_REQUEST: usize = 64 * 1024;

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Calls received, by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// `Concord-Txn-Op: action`.
    pub actions: u64,
    /// `Concord-Txn-Op: compensate` (none when every saga succeeds).
    pub compensates: u64,
    /// Anything else: another op, no op header, not a POST, or an unreadable request.
    pub other: u64,
}

impl Calls {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.actions + self.compensates + self.other
    }

    /// The calls since `earlier`.
    pub fn since(&self, earlier: Calls) -> Calls {
        Calls {
            actions: self.actions - earlier.actions,
            compensates: self.compensates - earlier.compensates,
            other: self.other - earlier.other,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    actions: AtomicU64,
    compensates: AtomicU64,
    other: AtomicU64,
}

impl Counters {
    fn record(&self, head: &Head) {
        let counter = match (head.post, head.op.as_deref()) {
            (true, Some("action")) => &self.actions,
            (true, Some("compensate")) => &self.compensates,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running participant; stops when dropped.
#[derive(Debug)]
pub struct Participant {
    addr: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Participant {
    /// Binds 127.0.0.1:0 and starts answering.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(listener, counters.clone()));
        Ok(Participant {
            addr,
            counters,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The calls received so far.
    pub fn calls(&self) -> Calls {
        Calls {
            actions: self.counters.actions.load(Ordering::Relaxed),
            compensates: self.counters.compensates.load(Ordering::Relaxed),
            other: self.counters.other.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, counters: Arc<Counters>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tokio::spawn(serve(sock, counters.clone()));
            }
            Err(e) => {
                // Out of file descriptors, most likely; do not spin on it.
                eprintln!("txn: participant accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it (errors just end it).
async fn serve(mut sock: TcpStream, counters: Arc<Counters>) {
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Ok(Some(head_len)) = read_head(&mut sock, &mut buf).await else {
            return;
        };
        let head = parse_head(&buf[..head_len]);
        let Some(body_len) = head.content_length.filter(|&n| n <= MAX_REQUEST) else {
            counters.other.fetch_add(1, Ordering::Relaxed);
            let _ = sock.write_all(NOT_IMPLEMENTED).await;
            return;
        };
        while buf.len() < head_len + body_len {
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        buf.drain(..head_len + body_len);
        counters.record(&head);
        if sock.write_all(OK).await.is_err() || head.close {
            return;
        }
    }
}

/// Reads until `buf` holds a whole request head; its length, or `None` at a clean end.
async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(Some(end));
        }
        if buf.len() > MAX_REQUEST {
            return Err(std::io::Error::other("request head too large"));
        }
        if sock.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// The length of the head at the start of `buf`, blank line included, once it is whole.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// What the participant needs from a request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    post: bool,
    op: Option<String>,
    /// The body's length; `None` for a chunked (or otherwise unsupported) body.
    content_length: Option<usize>,
    close: bool,
}

fn parse_head(raw: &[u8]) -> Head {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let post = lines.next().is_some_and(|l| l.starts_with("POST "));
    let mut head = Head {
        post,
        op: None,
        content_length: Some(0),
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "concord-txn-op" => head.op = Some(value.to_owned()),
            "content-length" => head.content_length = value.parse().ok(),
            "transfer-encoding" => head.content_length = None,
            "connection" => head.close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_of_a_participant_call() {
        let raw = b"POST /a HTTP/1.1\r\nconcord-txn-id: t1\r\nConcord-Txn-Op: action\r\n\
                    Content-Length: 12\r\nhost: x\r\n\r\n";
        assert_eq!(head_end(raw), Some(raw.len()));
        assert_eq!(
            parse_head(raw),
            Head {
                post: true,
                op: Some("action".to_owned()),
                content_length: Some(12),
                close: false,
            }
        );
    }

    #[test]
    fn bodiless_chunked_and_closing_requests() {
        let get = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!get.post && get.close && get.op.is_none());
        assert_eq!(get.content_length, Some(0));
        let chunked = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.content_length, None);
        assert_eq!(head_end(b"POST / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[tokio::test]
    async fn answers_and_counts_over_one_connection() {
        let p = Participant::start().await.unwrap();
        let client = crate::http_client(1).unwrap();
        for op in ["action", "compensate", "action"] {
            let (status, body) = crate::call(
                client
                    .post(p.url("/a"))
                    .header("Concord-Txn-Op", op)
                    .body("{\"n\":1}"),
            )
            .await
            .unwrap();
            assert_eq!((status.as_u16(), body.as_str()), (200, "{}"));
        }
        let (status, _) = crate::call(client.get(p.url("/"))).await.unwrap();
        assert_eq!(status.as_u16(), 200);
        let calls = p.calls();
        assert_eq!(
            calls,
            Calls {
                actions: 2,
                compensates: 1,
                other: 1
            }
        );
        assert_eq!(calls.since(Calls::default()).total(), 4);
    }
}
