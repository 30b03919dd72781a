//! Per-try deadlines on one timer that a client connection reuses.
//!
//! A fresh tokio timeout per attempt registers a timer in the runtime's
//! wheel and removes it when the response comes, taking the timer driver's
//! lock both times, on every request. An HTTP/1.1 connection has one request
//! in flight at a time, so its attempts share one timer instead. The timer is
//! moved only when it would fire too late for the current deadline, or after
//! it fired; a timer still set for an earlier request's later-passed
//! deadline just fires early and is then moved, at most once per timeout
//! period. HTTP/2 streams run concurrently on their own tasks, so they keep
//! one tokio timeout each.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Far enough ahead to mean "not set".
const UNSET: Duration = Duration::from_secs(86_400 * 365);

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// One client connection's timer for its requests' deadlines.
#[derive(Debug)]
pub struct ConnectionTimer {
    /// Locked only by the connection's own task (one request at a time),
    /// so never contended.
    sleep: Mutex<Pin<Box<Sleep>>>,
}

impl Default for ConnectionTimer {
    fn default() -> Self {
        ConnectionTimer {
            sleep: Mutex::new(Box::pin(tokio::time::sleep(UNSET))),
        }
    }
}

impl ConnectionTimer {
    /// Whether `deadline` has passed; if not, the task is woken when it does
    /// (or earlier, when the timer was set for an earlier deadline). Only
    /// from the connection's own task, for one request at a time.
    pub fn poll_passed(&self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let set = sleep.deadline();
            if set > deadline {
                sleep.as_mut().reset(deadline);
                continue;
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if set == deadline => return Poll::Ready(()),
                // An earlier request's deadline: set it to this one.
                Poll::Ready(()) => sleep.as_mut().reset(deadline),
            }
        }
    }
}

#[cfg(test)]
mod tests;
