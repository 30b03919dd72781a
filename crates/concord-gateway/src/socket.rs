//! Reads that spare the system call which would only say "nothing more".
//!
//! tokio keeps a socket flagged readable until a read fails with
//! `WouldBlock`. A proxy reads each request or response whole in one read
//! that leaves room in its buffer, and then, to learn that nothing else is
//! there, makes a second read that fails: one wasted system call per
//! message on each side of the gateway. nginx treats a read that left room
//! as having emptied the socket; so does this module, safely: the flag is
//! dropped under the readiness tick seen *before* the read, so anything the
//! reactor noticed since keeps it raised, and tokio never drops a close.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

/// Reads from `io` with `read` once it is ready. `room` is how much `read`
/// may take; a read of less than that (and more than nothing) drops the
/// readable flag.
pub fn poll_read_with(
    io: &TcpStream,
    cx: &mut Context<'_>,
    room: usize,
    mut read: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_read_ready(cx))?;
        let mut short = None;
        let result = io.try_io(Interest::READABLE, || {
            let n = read()?;
            if n > 0 && n < room {
                // Ends `try_io` as if the socket were empty, which clears the
                // flag under the tick it saw before the read.
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(n) = short {
                    return Poll::Ready(Ok(n));
                }
            }
            done => return Poll::Ready(done),
        }
    }
}

/// A client connection for hyper's server, reading as [`poll_read_with`]
/// does. Bytes land in a scratch buffer first (hyper hands out memory that
/// may be uninitialised, which safe code cannot read into) and are copied
/// on: a copy of the few hundred bytes of a request costs less than the
/// system call it saves. The scratch buffer is the thread's, not the
/// connection's, so idle connections hold no extra memory.
#[derive(Debug)]
pub struct ClientSocket {
    io: TcpStream,
}

/// The scratch buffer's size: hyper reads at most this much at a time
/// here, which is its own initial read size too.
const SCRATCH: usize = 8 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

impl ClientSocket {
    /// Wraps an accepted connection.
    pub fn new(io: TcpStream) -> Self {
        ClientSocket { io }
    }
}

impl Read for ClientSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let io = &self.get_mut().io;
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let room = buf.remaining().min(scratch.len());
            let scratch = &mut scratch[..room];
            let n = ready!(poll_read_with(io, cx, room, || io.try_read(scratch)))?;
            buf.put_slice(&scratch[..n]);
            Poll::Ready(Ok(()))
        })
    }
}

impl Write for ClientSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
