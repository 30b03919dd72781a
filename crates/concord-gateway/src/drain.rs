//! Draining client connections on shutdown.
//!
//! hyper-util's `GracefulShutdown` does the same job, but each connection it
//! watches polls a watch channel's `changed()` future on every poll of the
//! connection, and that takes the channel's waiter lock each time: about a
//! tenth of a microsecond per request in the gateway's profile. Here a
//! connection polls one atomic flag and refreshes its waker in an
//! `AtomicWaker`; the lock is taken only when a connection opens or closes
//! and when the drain starts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

use crate::idle::{IdleCheck, Verdict};

/// The connections open now, and whether they are being drained.
#[derive(Debug, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    draining: AtomicBool,
    next_id: AtomicU64,
    /// Each open connection's waker, to wake idle ones when the drain starts.
    open: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    /// Signalled when the last connection closes.
    closed_all: Notify,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<AtomicWaker>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    /// No connections yet.
    pub fn new() -> Self {
        Drain::default()
    }

    /// Wraps `conn` so that [`Drain::shutdown`] shuts it down gracefully and
    /// waits for it to end.
    pub fn watch<C: GracefulConnection>(&self, conn: C) -> Watched<C> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.shared.open().insert(id, Arc::clone(&waker));
        Watched {
            conn: Box::pin(conn),
            slot: Slot {
                shared: Arc::clone(&self.shared),
                id,
                waker,
            },
            told: false,
            idle: None,
        }
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.shared.open().len()
    }

    /// Tells every connection to finish what it is doing and close (HTTP/2
    /// sends GOAWAY, an idle HTTP/1.1 connection closes at once), then waits
    /// until all have ended.
    pub async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        let wakers: Vec<Arc<AtomicWaker>> = self.shared.open().values().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
        // `notify_one` keeps a permit when nobody waits yet, so a last close
        // between the check and the wait is not missed.
        while self.count() > 0 {
            self.shared.closed_all.notified().await;
        }
    }
}

/// A connection [`Drain`] can shut down.
pub struct Watched<C> {
    conn: Pin<Box<C>>,
    slot: Slot,
    /// Whether the connection was told to shut down.
    told: bool,
    /// Shuts the connection down when it sits idle.
    idle: Option<IdleCheck>,
}

impl<C> Watched<C> {
    /// Also shuts the connection down when `check` finds it idle.
    pub fn with_idle(mut self, check: IdleCheck) -> Self {
        self.idle = Some(check);
        self
    }
}

/// A connection's entry in [`Shared::open`], removed when it ends.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.shared.open();
        open.remove(&self.id);
        if open.is_empty() {
            self.shared.closed_all.notify_one();
        }
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.told {
            // Registered before the flag is read: a drain that starts after
            // the read wakes this task.
            self.slot.waker.register(cx.waker());
            if self.slot.shared.draining.load(Ordering::Acquire) {
                self.told = true;
                self.conn.as_mut().graceful_shutdown();
            }
        }
        let polled = self.conn.as_mut().poll(cx);
        if polled.is_ready() {
            return polled;
        }
        let verdict = match &mut self.idle {
            Some(idle) => idle.poll(cx),
            None => Verdict::Keep,
        };
        match verdict {
            Verdict::Keep => Poll::Pending,
            Verdict::ShutDown if self.told => Poll::Pending,
            Verdict::ShutDown => {
                tracing::debug!("closing an idle client connection");
                self.told = true;
                self.conn.as_mut().graceful_shutdown();
                self.conn.as_mut().poll(cx)
            }
            // Dropping the connection closes its socket.
            Verdict::Close => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests;
