//! A controllable TCP proxy for one directed peer link (node i dialing node j).
//!
//! Every node dials every other node through its own proxy (`--peer-route`), so
//! the test can break one direction of one link without touching the processes.
//! Raft runs request/response over these connections, so cutting i->j stops i's
//! RPCs to j *and* j's answers to them, while j's own RPCs to i (through the j->i
//! proxy) still flow: that is what an asymmetric partition means here.
//!
//! Modes:
//! - **open**: bytes are forwarded, each chunk held back by the configured delay.
//! - **blackhole** ([`Proxy::cut`]): like a pulled cable. Existing connections
//!   freeze (nothing is read or written, so senders see their buffers fill and
//!   their timeouts fire) and new ones are accepted but never connected onward.
//!   Nobody gets an error, which is what makes a partition hard for the system:
//!   a fast RST would let it notice at once. Healing resumes the frozen
//!   connections, delivering the held bytes, late, as TCP retransmission would.
//! - **reset** ([`Proxy::cut_reset`]): every connection is aborted with an RST and
//!   new ones are reset on arrival, like a crashed host or a firewall reject.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the link does right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Blackhole,
    Reset,
}

/// The link's settings, shared with every connection task through a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    mode: Mode,
    delay: Duration,
}

/// Chunks read ahead of the writer on one direction; bounds what a delayed link buffers.
const PIPELINE_CHUNKS: usize = 64;
/// Read size per chunk.
const CHUNK: usize = 16 * 1024;

/// A running proxy; dropping it resets every connection and stops listening.
pub struct Proxy {
    addr: SocketAddr,
    ctl: watch::Sender<Link>,
    accepted: Arc<AtomicU64>,
    accept_task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`, open and undelayed.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (ctl, _) = watch::channel(Link {
            mode: Mode::Open,
            delay: Duration::ZERO,
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let accept_task =
            tokio::spawn(accept_loop(listener, target, ctl.clone(), accepted.clone()));
        Ok(Proxy {
            addr,
            ctl,
            accepted,
            accept_task,
        })
    }

    /// Where to dial to reach the target through the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far; shows traffic really goes through the proxy.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.ctl.borrow().mode
    }

    /// Partitions the link: freeze every connection, hold new ones.
    pub fn cut(&self) {
        self.set_mode(Mode::Blackhole);
    }

    /// Breaks the link loudly: RST every connection, reset new ones.
    pub fn cut_reset(&self) {
        self.set_mode(Mode::Reset);
    }

    /// Restores forwarding (frozen connections resume); the delay is kept.
    pub fn heal(&self) {
        self.set_mode(Mode::Open);
    }

    /// Holds back every chunk by `delay` (per direction) from now on.
    pub fn delay(&self, delay: Duration) {
        self.ctl.send_modify(|l| l.delay = delay);
    }

    fn set_mode(&self, mode: Mode) {
        self.ctl.send_modify(|l| l.mode = mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Connection tasks end when they see the reset (or the channel close).
        self.set_mode(Mode::Reset);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    ctl: watch::Sender<Link>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        tokio::spawn(connection(client, target, ctl.subscribe()));
    }
}

/// Waits while the link is cut; `Err` when the connection must be reset instead.
async fn until_open(rx: &mut watch::Receiver<Link>) -> Result<(), Reset> {
    loop {
        let mode = rx.borrow_and_update().mode;
        match mode {
            Mode::Open => return Ok(()),
            Mode::Reset => return Err(Reset),
            Mode::Blackhole => rx.changed().await.map_err(|_| Reset)?,
        }
    }
}

/// Resolves once the link is in reset mode (or the proxy is gone).
async fn until_reset(mut rx: watch::Receiver<Link>) {
    loop {
        if rx.borrow_and_update().mode == Mode::Reset {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The connection is to be aborted.
#[derive(Debug)]
struct Reset;

/// Aborts a socket with an RST instead of a FIN.
fn abort(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn connection(mut client: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Link>) {
    // A connection arriving during a cut is held unconnected until it heals.
    if until_open(&mut rx).await.is_err() {
        return abort(client);
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(s) => s,
        // The target is down: the client sees what it would see without a proxy.
        Err(_) => return abort(client),
    };
    let _ = upstream.set_nodelay(true);
    let reset = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let both = async {
            tokio::join!(
                pump(cr, uw, rx.clone(), rx.clone()),
                pump(ur, cw, rx.clone(), rx.clone())
            )
        };
        tokio::select! {
            _ = both => false,
            _ = until_reset(rx.clone()) => true,
        }
    };
    if reset {
        abort(client);
        abort(upstream);
    }
}

/// Copies one direction: a reader that stops reading while the link is cut and
/// stamps each chunk with its due time, and a writer that waits for the due time
/// and for the link to be open. Splitting them keeps a delayed link pipelined.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut read_rx: watch::Receiver<Link>,
    mut write_rx: watch::Receiver<Link>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut chunks) = mpsc::channel::<(Instant, Vec<u8>)>(PIPELINE_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if until_open(&mut read_rx).await.is_err() {
                return;
            }
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // The delay in force when the bytes arrived, not when the read began.
                    let due = Instant::now() + read_rx.borrow().delay;
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        // Dropping `tx` tells the writer the stream ended.
    };
    let writer = async move {
        while let Some((due, chunk)) = chunks.recv().await {
            tokio::time::sleep_until(due).await;
            if until_open(&mut write_rx).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The source closed: pass the FIN on.
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests;
