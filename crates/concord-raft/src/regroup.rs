//! Closed-loop group commit: the next batch waits, briefly, for the writers just answered.
//!
//! The proposer and the relay keep one batch in flight. Writers that each keep one
//! write outstanding (a connection pool, `wrk`) then settle into two groups that
//! take turns: while group A's batch is out, group B queues; when A is answered,
//! B goes at once, and A's writers, back a moment later, wait a whole round behind
//! it. Every batch carries half the writers and every write waits about two rounds.
//!
//! So when a batch is answered, the next one is held until as many new proposals
//! have arrived as the answer released, which merges the two groups into one. The
//! hold is bounded: never longer than [`MAX_HOLD`] nor than the last round took
//! (past that, letting the queued group go is cheaper than keeping it), and after
//! a hold that ran out of time the next batch goes without one, so writers that do
//! not come back cost at most every other batch a hold. Nothing is held when
//! nothing was answered since the last batch, so a lone writer never waits.
//!
//! Only this node's own writers count: proposals a follower relayed to the leader
//! come back as the relay's next message, which that relay already gathers (and
//! waiting for it on the leader too cost 2-4k of 20k writes/s at 128 connections).
//! PostgreSQL's `commit_delay` / `commit_siblings` make the same trade.
//!
//! Measured with `bench/kv/run.sh --cluster 3`, concord alone (load on a follower,
//! 8 s runs, two rounds, A/B in the same run): 7.5k-8.5k writes/s at 32 connections
//! without the hold, 11.3k-13.1k with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::proposer::{self, Pending};

/// Longest a batch is held for returning writers. Tokio's timers tick in
/// milliseconds, so a hold that runs out lasts up to one tick more.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(1);

/// How often batches were held, shared by every queue of a node.
#[derive(Debug, Default)]
pub(crate) struct HoldCounters {
    /// Batches held for returning writers.
    pub(crate) holds: AtomicU64,
    /// Holds that ran out of time before every writer was back.
    pub(crate) timeouts: AtomicU64,
}

/// What the answering side tells the batching side (one batch in flight at a time).
#[derive(Debug, Default)]
struct Shared {
    /// Proposals from this node's own writers ever queued.
    arrivals: AtomicU64,
    /// `arrivals` when the last batch was answered.
    mark: AtomicU64,
    /// Proposals answered by the last batch, not yet waited for (0 = none).
    answered: AtomicU64,
    /// How long the last batch took from submission to answer, in microseconds.
    round_us: AtomicU64,
}

/// A queued proposal, and whether its writer is this node's own client (whose
/// next write is waited for) or a relay.
type Queued = (Pending, bool);

/// The sending side of a batching queue; counts this node's own writers.
#[derive(Clone)]
pub(crate) struct Intake {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

impl Intake {
    /// Queues a proposal from this node's own client; gives it back when the
    /// batching side has stopped.
    pub(crate) async fn send(&self, p: Pending) -> Result<(), Pending> {
        self.shared.arrivals.fetch_add(1, Ordering::SeqCst);
        self.tx.send((p, true)).await.map_err(|e| e.0.0)
    }

    /// Queues a proposal another node relayed; its batch is never held for it.
    pub(crate) async fn send_relayed(&self, p: Pending) -> Result<(), Pending> {
        self.tx.send((p, false)).await.map_err(|e| e.0.0)
    }
}

/// The receiving side: forms batches, holding one for returning writers when it pays.
pub(crate) struct Batches {
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    counters: Arc<HoldCounters>,
    /// The previous hold ran out of time: do not hold the next batch.
    skip_next: bool,
    /// Own writers in the batch `fill` returned last.
    own: u64,
}

/// Started when a batch is submitted; [`Round::answered`] just before its answers go out.
pub(crate) struct Round {
    shared: Arc<Shared>,
    started: Instant,
    /// Own writers in the batch.
    own: u64,
}

impl Round {
    /// Records that this round's writers are about to be answered, so they are
    /// counted as returning from now on.
    pub(crate) fn answered(self) {
        let s = &self.shared;
        let took = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        s.round_us.store(took, Ordering::SeqCst);
        s.mark
            .store(s.arrivals.load(Ordering::SeqCst), Ordering::SeqCst);
        s.answered.store(self.own, Ordering::SeqCst);
    }
}

/// A batching queue holding up to `depth` proposals.
pub(crate) fn channel(depth: usize, counters: Arc<HoldCounters>) -> (Intake, Batches) {
    let (tx, rx) = mpsc::channel(depth);
    let shared = Arc::new(Shared::default());
    (
        Intake {
            tx,
            shared: shared.clone(),
        },
        Batches {
            rx,
            shared,
            counters,
            skip_next: false,
            own: 0,
        },
    )
}

impl Batches {
    /// Waits for the first proposal of the next batch; `None` once every intake is gone.
    pub(crate) async fn first(&mut self) -> Option<Pending> {
        let (p, own) = self.rx.recv().await?;
        self.own = u64::from(own);
        Some(p)
    }

    /// Builds the batch that starts with `first`. Call it once a batch may be
    /// submitted (the previous one answered), so arrivals meanwhile join it.
    pub(crate) async fn fill(&mut self, first: Pending) -> Vec<Pending> {
        let mut batch = proposer::Drain::new(first);
        let returning = self.shared.answered.swap(0, Ordering::SeqCst);
        if returning > 0 && !std::mem::take(&mut self.skip_next) {
            let round = Duration::from_micros(self.shared.round_us.load(Ordering::SeqCst));
            let deadline = Instant::now() + round.min(MAX_HOLD);
            let mark = self.shared.mark.load(Ordering::SeqCst);
            let mut held = false;
            while !batch.full()
                && self.shared.arrivals.load(Ordering::SeqCst) < mark.saturating_add(returning)
            {
                if !held {
                    held = true;
                    self.counters.holds.fetch_add(1, Ordering::Relaxed);
                }
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some((p, own))) => {
                        self.own += u64::from(own);
                        batch.push(p);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        self.skip_next = true;
                        break;
                    }
                }
            }
        }
        while !batch.full() {
            match self.rx.try_recv() {
                Ok((p, own)) => {
                    self.own += u64::from(own);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        batch.into_inner()
    }

    /// Starts timing the batch `fill` just returned, which is being submitted now.
    pub(crate) fn round(&self) -> Round {
        Round {
            shared: self.shared.clone(),
            started: Instant::now(),
            own: self.own,
        }
    }
}

#[cfg(test)]
mod tests;
