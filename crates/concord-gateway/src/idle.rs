//! Closing client connections that sit idle.
//!
//! hyper's own header-read timeout reads the clock, allocates a timer and
//! registers it for every request on every connection. Here each request
//! bumps two counters on its connection, and one timer per connection looks
//! at them every [`IdleCheck`] period (a third of the idle timeout): a
//! connection with nothing in flight and no new request for three periods in
//! a row is shut down gracefully (HTTP/2 gets GOAWAY, idle HTTP/1.1 closes),
//! and dropped one period later if it still has not closed. That bounds both
//! idle keep-alive connections and clients that never finish sending a
//! request head (slowloris): closed after between three and four periods.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::Context;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// Periods of quiet before a connection is shut down.
const QUIET_CHECKS: u32 = 3;

/// What a connection's requests report to its [`IdleCheck`].
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests started on the connection.
    started: AtomicU64,
    /// Requests whose response has not been fully sent.
    busy: AtomicU32,
}

impl Activity {
    fn quiet_since(&self, started: u64) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && self.started.load(Ordering::Relaxed) == started
    }
}

/// Something that owns a connection's [`Activity`]: what a request holds
/// anyway, so marking it busy costs no extra reference count.
pub trait Tracked {
    /// The connection's activity.
    fn activity(&self) -> &Activity;
}

/// One request in flight on a connection, holding the connection's state.
#[derive(Debug)]
pub struct Busy<T: Tracked>(Arc<T>);

impl<T: Tracked> Busy<T> {
    /// A request arrived; it stays in flight until this is dropped
    /// (normally by the response body, once sent).
    pub fn begin(owner: Arc<T>) -> Self {
        let activity = owner.activity();
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Busy(owner)
    }

    /// The connection's state.
    pub fn owner(&self) -> &T {
        &self.0
    }
}

impl<T: Tracked> Drop for Busy<T> {
    fn drop(&mut self) {
        self.0.activity().busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `body`, keeping its request in flight until the body is sent or dropped,
/// so a long download or a gRPC stream never counts as idle.
pub fn hold<T>(
    body: Body,
    busy: Busy<T>,
) -> impl hyper::body::Body<Data = Bytes, Error = BoxError> + Send + 'static
where
    T: Tracked + Send + Sync + 'static,
{
    body.map_frame(move |frame| {
        // Owned by the closure, so dropped with the body.
        let _busy = &busy;
        frame
    })
}

/// What the connection should do after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Carry on.
    Keep,
    /// Quiet too long: shut down gracefully.
    ShutDown,
    /// Still open a period after being told to shut down: drop it.
    Close,
}

/// The per-connection timer that watches an [`Activity`].
#[derive(Debug)]
pub struct IdleCheck {
    activity: Arc<Activity>,
    period: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` has been polled since it was last set, so it will
    /// wake the connection's task when it fires.
    armed: bool,
    /// `started` at the last check.
    seen: u64,
    /// Checks in a row that found the connection quiet.
    quiet: u32,
}

impl IdleCheck {
    /// Checks `activity` every `timeout / 3`, so a connection quiet for
    /// `timeout` is shut down.
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        let period = (timeout / QUIET_CHECKS).max(Duration::from_millis(1));
        IdleCheck {
            seen: activity.started.load(Ordering::Relaxed),
            activity,
            period,
            sleep: Box::pin(tokio::time::sleep(period)),
            armed: false,
            quiet: 0,
        }
    }

    /// Called whenever the connection is polled and not finished; registers
    /// the task to be woken at the next check.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Verdict {
        // Once polled, the timer keeps the task's waker (a spawned task's
        // waker does not change), so later polls only read its state.
        if self.armed && !self.sleep.is_elapsed() {
            return Verdict::Keep;
        }
        let mut verdict = Verdict::Keep;
        while self.sleep.as_mut().poll(cx).is_ready() {
            if self.activity.quiet_since(self.seen) {
                self.quiet += 1;
            } else {
                self.quiet = 0;
                self.seen = self.activity.started.load(Ordering::Relaxed);
            }
            verdict = match self.quiet {
                n if n > QUIET_CHECKS => Verdict::Close,
                QUIET_CHECKS => Verdict::ShutDown,
                _ => Verdict::Keep,
            };
            let next = Instant::now() + self.period;
            self.sleep.as_mut().reset(next);
        }
        self.armed = true;
        verdict
    }
}

#[cfg(test)]
mod tests;
