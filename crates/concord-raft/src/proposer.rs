//! Group commit: concurrent proposals share log entries, and so fsyncs.
//!
//! openraft 0.9 turns every `client_write` into its own `append` and waits for
//! that append's fsync before taking the next message, so N concurrent writes
//! cost N fsyncs. The proposer is a single task that takes proposals from a
//! queue, packs everything waiting into one [`LogCommand::Batch`] and submits it.
//! At most [`IN_FLIGHT`] batches are outstanding; while they are, new proposals
//! queue up and form the next batch, so batches grow with load and a lone
//! writer still gets one-entry latency. When a batch is answered, the next one
//! waits briefly for the writers just answered to come back (`regroup.rs`), so
//! steady writers share one batch instead of alternating between two.
//! Submission order is queue order, so proposals keep their FIFO order in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use concord_state::{Command, Outcome};
use openraft::error::{ClientWriteError, ForwardToLeader};
use tokio::sync::{Semaphore, oneshot};

use crate::error::ProposeError;
use crate::regroup::Batches;
use crate::type_config::{LogCommand, NodeInfo, Raft};

/// Batches submitted to openraft but not yet answered. openraft appends one
/// entry at a time anyway, so a second batch in flight only splits what would
/// have been one larger batch: on one node `bench/kv` measured 14.6k writes/s at
/// 32 connections with two in flight and 19.4k with one (34k vs 39k at 128).
const IN_FLIGHT: usize = 1;
/// Most commands in one batch.
pub(crate) const MAX_BATCH_COMMANDS: usize = 1024;
/// Batches stop growing past about this many payload bytes (a larger single
/// command still goes, alone), which bounds entries and replication requests.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Proposals queued before `propose` waits for room.
pub(crate) const QUEUE_DEPTH: usize = 8192;

/// One queued proposal and where its answer goes.
pub(crate) struct Pending {
    pub(crate) cmd: Command,
    pub(crate) reply: oneshot::Sender<Result<Outcome, ProposeError>>,
}

/// Counts of what the proposer submitted.
#[derive(Debug, Default)]
pub(crate) struct ProposerStats {
    pub(crate) proposals: AtomicU64,
    pub(crate) batches: AtomicU64,
}

/// Fills in `NotLeader` from openraft's redirect (the node knows the membership).
pub(crate) type NotLeader =
    Arc<dyn Fn(ForwardToLeader<u64, NodeInfo>) -> ProposeError + Send + Sync>;

/// Runs until the queue closes or openraft stops.
pub(crate) async fn run(
    raft: Raft,
    mut queue: Batches,
    stats: Arc<ProposerStats>,
    not_leader: NotLeader,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.first().await {
        // Wait for a slot before filling: proposals arriving meanwhile join this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = queue.fill(first).await;
        let round = queue.round();
        stats
            .proposals
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let (cmds, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let answer = match raft.client_write_ff(LogCommand::Batch(cmds)).await {
            Ok(answer) => answer,
            Err(fatal) => {
                let err = crate::node::fatal_to_propose(fatal);
                answer_all(replies, || Err(err.clone()));
                continue;
            }
        };
        let not_leader = not_leader.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let answer = answer.await;
            round.answered();
            match answer {
                Ok(Ok(resp)) => {
                    let outcomes = resp.data;
                    if outcomes.len() == replies.len() {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    } else {
                        let msg = format!(
                            "a batch of {} commands produced {} outcomes",
                            replies.len(),
                            outcomes.len()
                        );
                        tracing::error!("{msg}");
                        answer_all(replies, || Err(ProposeError::Fatal(msg.clone())));
                    }
                }
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => {
                    let err = not_leader(f);
                    answer_all(replies, || Err(err.clone()));
                }
                Ok(Err(ClientWriteError::ChangeMembershipError(e))) => {
                    let err = ProposeError::Unavailable(e.to_string());
                    answer_all(replies, || Err(err.clone()));
                }
                Err(_) => answer_all(replies, || {
                    Err(ProposeError::Unavailable(
                        "raft stopped before the write was answered; it may or may not be applied"
                            .to_string(),
                    ))
                }),
            }
        });
    }
}

/// A batch being built, within the batch limits.
pub(crate) struct Drain {
    batch: Vec<Pending>,
    bytes: usize,
}

impl Drain {
    pub(crate) fn new(first: Pending) -> Drain {
        Drain {
            bytes: approx_size(&first.cmd),
            batch: vec![first],
        }
    }

    /// No more proposals fit.
    pub(crate) fn full(&self) -> bool {
        self.batch.len() >= MAX_BATCH_COMMANDS || self.bytes >= MAX_BATCH_BYTES
    }

    pub(crate) fn push(&mut self, p: Pending) {
        self.bytes += approx_size(&p.cmd);
        self.batch.push(p);
    }

    pub(crate) fn into_inner(self) -> Vec<Pending> {
        self.batch
    }
}

fn answer_all(
    replies: Vec<oneshot::Sender<Result<Outcome, ProposeError>>>,
    answer: impl Fn() -> Result<Outcome, ProposeError>,
) {
    for reply in replies {
        let _ = reply.send(answer());
    }
}

/// Roughly the encoded size of a command: its keys and values dominate.
fn approx_size(cmd: &Command) -> usize {
    use concord_state::{CompareValue, TxnOp};
    const OVERHEAD: usize = 16;
    let op_size = |op: &TxnOp| match op {
        TxnOp::Put { key, value, .. } => key.len() + value.len(),
        TxnOp::Get { key } | TxnOp::Delete { key, .. } => key.len(),
    };
    OVERHEAD
        + match cmd {
            Command::Register { at, spec } => {
                at.namespace.len()
                    + at.service.len()
                    + at.id.len()
                    + spec.address.len()
                    + spec.checks.len() * 128
                    + spec.tags.iter().map(String::len).sum::<usize>()
                    + spec
                        .meta
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            Command::Put { key, value, .. } => key.len() + value.len(),
            Command::Txn {
                compare,
                success,
                failure,
            } => {
                let compares = compare.iter().map(|c| {
                    c.key.len()
                        + match &c.value {
                            CompareValue::Bytes(b) => b.len(),
                            CompareValue::Number(_) => 8,
                        }
                });
                compares.sum::<usize>() + success.iter().chain(failure).map(op_size).sum::<usize>()
            }
            Command::Restore { snapshot } => snapshot.len(),
            Command::CheckStatus { output, .. } => output.len() + 64,
            // Small fixed-size commands (deregister, delete, leases).
            _ => OVERHEAD,
        }
}
