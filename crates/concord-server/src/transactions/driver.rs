//! The leader's transaction driver: one task per unfinished transaction makes the
//! participant calls the log has marked running, and proposes what came of them.
//!
//! The log is the only memory. A call is made only after the command that marked
//! it running is applied; its result is proposed before anything follows from it.
//! Each attempt number is sent at most once: a leader sends only attempts started
//! by entries it appended itself after it took over; a call it finds running from
//! before (an older leader's, or its own before a restart, which openraft may
//! resume in the same term) may already be out, so it restarts it as the next
//! attempt (the barrier makes the repeated effect harmless). Backoff
//! and the transaction deadline are timed on this node's monotonic clock, starting
//! from the driving time the log recorded, so no two nodes' clocks are compared.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_api::ErrorCode;
use concord_api::transactions::TxnStatus;
use concord_state::{CallKind, CallResult, Command, Phase, SlotState, TxnEvent};
use futures::FutureExt;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

use super::call::{self, CallPlan};
use crate::configs::now_ms;
use crate::fault;
use crate::node::SharedNode;

/// How often the driver looks again even without news.
const TICK: Duration = Duration::from_secs(1);

struct Task {
    join: tokio::task::JoinHandle<()>,
    notify: Arc<Notify>,
    seen: u64,
}

/// Attempts this node has sent in the current term, by transaction: each attempt
/// number leaves this node at most once. A task that ends and is started again in
/// the same term (leadership seen to flicker, a refused write) finds the calls its
/// previous incarnation left running here and restarts them as the next attempt
/// instead of sending the same attempt twice.
#[derive(Default)]
struct Sent(std::sync::Mutex<HashMap<String, HashSet<Key>>>);

impl Sent {
    /// Records `key` for `txn`; false if it was already sent.
    fn first(&self, txn: &str, key: Key) -> bool {
        let mut sent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sent.entry(txn.to_owned()).or_default().insert(key)
    }

    /// Forgets a finished transaction.
    fn done(&self, txn: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(txn);
    }
}

/// Runs until `shutdown` flips: while this node leads, keeps one task per
/// unfinished transaction and wakes it when its record changes.
pub(crate) async fn run(node: SharedNode, mut shutdown: watch::Receiver<bool>) {
    let http = call::client();
    let mut applied = node.raft.applied();
    let mut leadership = node.raft.leadership();
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut sent = Arc::new(Sent::default());
    // The term this process leads in (or last led in) and the last log index it
    // had when it noticed: calls started at or before it were not started here.
    let mut led: Option<(u64, u64)> = None;
    let mut term = None;
    let mut seen_changes = u64::MAX;
    loop {
        let mut ticked = false;
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            r = leadership.changed() => if r.is_err() { return },
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(TICK) => ticked = true,
        }
        if *shutdown.borrow() {
            for (_, t) in tasks.drain() {
                t.join.abort();
            }
            return;
        }
        let leading = node.leading_term();
        if leading != term {
            for (_, t) in tasks.drain() {
                t.join.abort();
            }
            term = leading;
            seen_changes = u64::MAX;
        }
        let Some(term) = term else { continue };
        // A new term: start a new record of what was sent. The same term again
        // (leadership only looked lost for a moment) keeps it.
        let lead_from = match led {
            Some((t, from)) if t == term => from,
            _ => {
                sent = Arc::new(Sent::default());
                let from = node.raft.status().last_log_index;
                led = Some((term, from));
                from
            }
        };
        tasks.retain(|_, t| !t.join.is_finished());
        let mut spawn = Vec::new();
        {
            let state = node.state();
            // Nothing about transactions moved since the last look (other writes
            // wake this loop too): only the tick re-checks, for finished tasks.
            let changes = state.txn_changes();
            if changes == seen_changes && !ticked {
                continue;
            }
            seen_changes = changes;
            for id in state.active_txns() {
                let rev = state.transaction(id).map_or(0, |t| t.revision);
                match tasks.get_mut(id) {
                    Some(t) if t.seen != rev => {
                        t.seen = rev;
                        t.notify.notify_one();
                    }
                    Some(_) => {}
                    None => spawn.push((id.to_owned(), rev)),
                }
            }
        }
        for (id, seen) in spawn {
            let notify = Arc::new(Notify::new());
            let join = tokio::spawn(drive(
                node.clone(),
                http.clone(),
                id.clone(),
                term,
                lead_from,
                notify.clone(),
                sent.clone(),
            ));
            tasks.insert(id, Task { join, notify, seen });
        }
    }
}

type Key = (u32, Phase, u32);

/// Drives one transaction while this node leads in `term`.
async fn drive(
    node: SharedNode,
    http: reqwest::Client,
    id: String,
    term: u64,
    lead_from: u64,
    notify: Arc<Notify>,
    sent: Arc<Sent>,
) {
    let resumed = Instant::now();
    let mut base_elapsed = None;
    let mut launched: HashSet<Key> = HashSet::new();
    let mut due: HashMap<Key, Instant> = HashMap::new();
    let mut inflight = FuturesUnordered::new();
    let mut outbox: Vec<TxnEvent> = Vec::new();
    let push = |outbox: &mut Vec<TxnEvent>, e: TxnEvent| {
        if !outbox.contains(&e) {
            outbox.push(e);
        }
    };
    loop {
        if node.leading_term() != Some(term) {
            return;
        }
        let now = Instant::now();
        let mut wake = now + TICK;
        let mut plans = Vec::new();
        let elapsed;
        {
            let state = node.state();
            let Some(rec) = state.transaction(&id) else {
                return;
            };
            if rec.status.is_final() {
                sent.done(&id);
                return;
            }
            if rec.term > term {
                // A later leader has moved it: this node is deposed.
                return;
            }
            let base: u64 = *base_elapsed.get_or_insert(rec.elapsed_ms);
            elapsed = base.saturating_add(resumed.elapsed().as_millis() as u64);
            let forward = rec.phase == Phase::Forward
                && matches!(rec.status, TxnStatus::Running | TxnStatus::Trying);
            if forward {
                if elapsed >= rec.timeout_ms {
                    push(&mut outbox, TxnEvent::Deadline);
                } else {
                    wake = wake.min(now + Duration::from_millis(rec.timeout_ms - elapsed));
                }
            }
            for (i, s) in rec.steps.iter().enumerate() {
                let step = i as u32;
                for phase in [Phase::Forward, Phase::Finish, Phase::Backward] {
                    let slot = s.slot(phase);
                    let key = (step, phase, slot.attempts);
                    match slot.state {
                        SlotState::Running if !launched.contains(&key) => {
                            launched.insert(key);
                            // Started before this process led (by an older leader,
                            // or by this node before a restart), or sent already by
                            // an earlier task: it may be out; make the next attempt.
                            if slot.started_at <= lead_from || !sent.first(&id, key) {
                                push(
                                    &mut outbox,
                                    TxnEvent::Restart {
                                        step,
                                        phase,
                                        attempt: slot.attempts + 1,
                                    },
                                );
                                continue;
                            }
                            let (Some(op), Some(c)) = (phase.op(rec.mode), s.call(phase)) else {
                                continue;
                            };
                            let url = call::resolve(&state, &c.url);
                            plans.push((
                                key,
                                url,
                                CallPlan {
                                    txn: rec.id.clone(),
                                    step: s.name.clone(),
                                    op,
                                    attempt: slot.attempts,
                                    call: c.clone(),
                                    timeout: Duration::from_millis(s.timeout_ms),
                                    retry: s.retry,
                                },
                            ));
                        }
                        SlotState::Waiting { delay_ms } => {
                            let at = *due
                                .entry(key)
                                .or_insert(now + Duration::from_millis(delay_ms));
                            if at <= now {
                                node.metrics.txn.retries.inc();
                                push(
                                    &mut outbox,
                                    TxnEvent::Restart {
                                        step,
                                        phase,
                                        attempt: slot.attempts + 1,
                                    },
                                );
                            } else {
                                wake = wake.min(at);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        for (key, url, plan) in plans {
            fault::hit("txn.before_call");
            let http = http.clone();
            inflight.push(async move {
                let result = call::run(&http, url, &plan).await;
                (key, plan.op, result)
            });
        }
        if !outbox.is_empty() {
            let events = std::mem::take(&mut outbox);
            let cmd = Command::TxnAdvance {
                id: id.clone(),
                term,
                at_ms: now_ms(),
                elapsed_ms: elapsed,
                events: events.clone(),
            };
            match node.write(cmd).await {
                Ok(_) => fault::hit("txn.after_advance"),
                Err(e) if matches!(e.code, ErrorCode::Conflict | ErrorCode::NotFound) => {
                    debug!(txn = %id, error = %e.message, "transaction driver stands down");
                    return;
                }
                Err(e) => {
                    warn!(txn = %id, error = %e.message, "could not record transaction progress; retrying");
                    outbox = events;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        }
        let sleep = tokio::time::sleep_until(wake.into());
        tokio::select! {
            Some((key, op, result)) = inflight.next(), if !inflight.is_empty() => {
                let mut done = vec![(key, op, result)];
                while let Some(Some(more)) = inflight.next().now_or_never() {
                    done.push(more);
                }
                for ((step, phase, attempt), op, result) in done {
                    fault::hit("txn.after_call");
                    observe(&node, op, &result);
                    outbox.push(TxnEvent::Result { step, phase, attempt, result });
                }
            }
            _ = sleep => {}
            _ = notify.notified() => {}
        }
    }
}

fn observe(node: &SharedNode, op: concord_api::transactions::TxnOp, r: &CallResult) {
    let outcome = match r.kind {
        CallKind::Success => "success",
        CallKind::Refused => "refused",
        CallKind::Pending => "pending",
        CallKind::Failed => "failed",
    };
    node.metrics
        .txn
        .observe_call(op.as_str(), outcome, r.latency_ms);
}
