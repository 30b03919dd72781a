//! HTTP/1.1 keep-alive connections to endpoints, pooled by address.
//!
//! hyper-util's legacy client did this job first; on the gateway's hot path
//! it cost about a sixth of the CPU a proxied request takes: per request it
//! builds a pool key from the URI, checks a connection out through a
//! waiter queue, and spawns a task that waits for the connection to go idle
//! before putting it back. This pool is a map from address to a stack of
//! idle connections (one lookup per request; the stack's handle travels
//! with the response), and a connection goes back when its response body
//! ends, on the task that read it, with no extra task. The connections are
//! the gateway's own ([`crate::h1`]), driven by the requests they carry.
//! A connection is checked for a close (or stray bytes) from its endpoint
//! when it is taken and when the sweeper passes.
//!
//! Rules it keeps, which the proxy relies on:
//! - A connection idle longer than the idle timeout is never reused, and a
//!   sweeper closes it, so the pool never races a backend that closes idle
//!   connections at its own, longer timeout (see PITFALLS: the keep-alive race).
//! - A request that a reused connection failed to send before writing any
//!   byte is sent again on another connection: that is always safe, whatever
//!   the method.
//! - A connection goes back only after its whole response was read, and
//!   nothing past it; a body dropped early, an error, an upgrade, a body
//!   delimited by the close, or a `Connection: close` ends it. A small body
//!   read with the head is answered whole and its connection goes back at
//!   once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::TcpStream;

use crate::body::{Body, boxed, empty};
use crate::h1::{self, Conn, Framing};

/// Idle connections kept per address at most; more are closed when they
/// finish.
const MAX_IDLE_PER_ADDR: usize = 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened; nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The connection failed while the request was under way or before the
    /// response head arrived; the endpoint may have seen the request.
    #[error("connection lost: {0}")]
    Lost(h1::Error),
}

/// The pool; cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Http1Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    idle_timeout: Duration,
    /// One stack per address; an address's stack stays while anyone holds
    /// it (see [`Inner::sweep`]).
    addrs: RwLock<Addrs>,
    sweeper: Mutex<bool>,
}

/// Stacks by address. Hashed with foldhash, not SipHash: it is looked up on
/// every request, and its keys come from the registry, not from clients.
type Addrs = HashMap<Box<str>, Arc<Stack>, foldhash::fast::RandomState>;

/// The idle connections to one address, freshest last.
#[derive(Debug, Default)]
struct Stack {
    idle: Mutex<Vec<Idle>>,
}

impl Stack {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Http1Pool {
    /// A pool that closes connections idle for longer than `idle_timeout`.
    pub fn new(idle_timeout: Duration) -> Self {
        Http1Pool {
            inner: Arc::new(Inner {
                idle_timeout,
                addrs: RwLock::new(Addrs::default()),
                sweeper: Mutex::new(false),
            }),
        }
    }

    /// Sends `req` (its URI in origin form, `/path?query`) to `addr`
    /// (`host:port`) on an idle connection, or on a new one opened within
    /// `connect_timeout`. A request without `Host` gets `addr` as its host.
    pub async fn send(
        &self,
        addr: &str,
        req: Request<Body>,
        connect_timeout: Duration,
    ) -> Result<Response<Body>, SendError> {
        self.try_send(addr, req, connect_timeout)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`send`](Self::send), but when no connection could be made the
    /// request comes back with the error, as it was given, so it can go to
    /// another endpoint without having been copied first.
    ///
    /// Not an `async fn`: one keeps its by-value arguments twice in its
    /// future, and the request is 264 bytes.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its by-value arguments twice in its future"
    )]
    pub fn try_send(
        &self,
        addr: &str,
        mut req: Request<Body>,
        connect_timeout: Duration,
    ) -> impl Future<Output = Result<Response<Body>, (SendError, Option<Request<Body>>)>> {
        async move {
            let stack = self.inner.stack(addr);
            while let Some(mut conn) = self.checkout(&stack) {
                match conn.exchange(&mut req, addr).await {
                    Ok(head) => return Ok(track(stack, conn, head)),
                    // Not a byte was written: the connection had closed under
                    // us. Any request may go again.
                    Err(h1::Failed { sent: false, .. }) => {}
                    Err(h1::Failed { error, .. }) => return Err((SendError::Lost(error), None)),
                }
            }
            // Boxed: connecting is rare and its future is large; inline, it
            // would make every request's future (moved on each call) that much
            // bigger.
            let mut conn = match Box::pin(self.connect(addr, connect_timeout)).await {
                Ok(conn) => conn,
                Err(e) => return Err((e, Some(req))),
            };
            match conn.exchange(&mut req, addr).await {
                Ok(head) => Ok(track(stack, conn, head)),
                Err(failed) => Err((SendError::Lost(failed.error), None)),
            }
        }
    }

    /// Idle connections to `addr` (tests watch the pool through it).
    pub fn idle_count(&self, addr: &str) -> usize {
        self.inner
            .read()
            .get(addr)
            .map_or(0, |stack| stack.lock().len())
    }

    /// The freshest idle, open, unexpired connection in `stack`.
    fn checkout(&self, stack: &Stack) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = stack.lock();
        while let Some(mut entry) = idle.pop() {
            if now.duration_since(entry.since) < self.inner.idle_timeout
                && entry.conn.is_idle_usable()
            {
                return Some(entry.conn);
            }
        }
        None
    }

    async fn connect(&self, addr: &str, connect_timeout: Duration) -> Result<Conn, SendError> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => {
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", connect_timeout.as_millis()),
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        self.start_sweeper();
        Ok(Conn::new(stream))
    }

    /// Starts the task that closes expired idle connections, once.
    fn start_sweeper(&self) {
        let mut started = self
            .inner
            .sweeper
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *started {
            return;
        }
        *started = true;
        let pool = Arc::downgrade(&self.inner);
        let every = (self.inner.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep(Instant::now());
            }
        });
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Addrs> {
        self.addrs.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `addr`'s stack, made on first use.
    fn stack(&self, addr: &str) -> Arc<Stack> {
        if let Some(stack) = self.read().get(addr) {
            return Arc::clone(stack);
        }
        let mut addrs = self.addrs.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(addrs.entry(addr.into()).or_default())
    }

    /// Drops (and so closes) idle connections past the idle timeout or
    /// already closed by their endpoint; forgets addresses with none left
    /// that no request holds (a held stack may still get one back).
    fn sweep(&self, now: Instant) {
        let mut addrs = self.addrs.write().unwrap_or_else(PoisonError::into_inner);
        addrs.retain(|_, stack| {
            let mut idle = stack.lock();
            idle.retain_mut(|e| {
                now.duration_since(e.since) < self.idle_timeout && e.conn.is_idle_usable()
            });
            !idle.is_empty() || Arc::strong_count(stack) > 1
        });
    }
}

/// The response, with its connection going back to `stack` once the body
/// has been read to the end. A small body read with the head comes whole,
/// and its connection goes back at once; a `101` carries the connection
/// away as a [`h1::Tunnel`].
fn track(stack: Arc<Stack>, mut conn: Conn, head: h1::Head) -> Response<Body> {
    let h1::Head {
        response,
        framing,
        keep_alive,
    } = head;
    let (mut parts, ()) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        parts.extensions.insert(conn.into_tunnel());
        return Response::from_parts(parts, empty());
    }
    let giveback = keep_alive.then_some(GiveBack { stack });
    if let Framing::Length(n) = framing
        && conn.buffered() as u64 >= n
    {
        let body = crate::body::full(conn.take_buffered(n));
        if let Some(g) = giveback {
            g.give(conn);
        }
        return Response::from_parts(parts, body);
    }
    if framing.is_done() {
        if let Some(g) = giveback {
            g.give(conn);
        }
        return Response::from_parts(parts, empty());
    }
    let body = PooledBody {
        conn: Some(conn),
        framing,
        giveback,
    };
    Response::from_parts(parts, boxed(body))
}

/// A connection on its way back to the pool. Once the pool is gone, its
/// stacks are held only by these and go (closing what they hold) with them.
struct GiveBack {
    stack: Arc<Stack>,
}

impl GiveBack {
    /// Pools `conn` unless bytes beyond the response came with it.
    fn give(self, conn: Conn) {
        if !conn.is_drained() {
            return;
        }
        let mut idle = self.stack.lock();
        if idle.len() < MAX_IDLE_PER_ADDR {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// A response body read off its connection, which goes back at the end.
struct PooledBody {
    conn: Option<Conn>,
    framing: Framing,
    giveback: Option<GiveBack>,
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = h1::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h1::Error>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(conn.poll_body(&mut this.framing, cx));
        match &frame {
            Some(Ok(_)) if !this.framing.is_done() => {}
            // The end (or the last frame): the connection is free again.
            None | Some(Ok(_)) => {
                if let (Some(g), Some(conn)) = (this.giveback.take(), this.conn.take()) {
                    g.give(conn);
                }
            }
            // A broken body leaves the connection in an unknown state.
            Some(Err(_)) => {
                this.giveback = None;
                this.conn = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
