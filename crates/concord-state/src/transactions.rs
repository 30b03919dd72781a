//! Distributed transactions (saga, TCC, 2PC) as replicated records.
//!
//! The coordinator's driver (on the leader) makes the participant calls; the log
//! decides everything else. Each command records what happened (a call's result,
//! a client's commit or abort) and then `settle` moves the record as far as the
//! rules allow: it marks the next calls `Running` (committed before they are made),
//! switches phases, and ends the transaction. So a new leader resumes from the log
//! alone, and every replica agrees on every decision.

mod record;
mod settle;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use concord_api::transactions::TxnStatus;
use serde::{Deserialize, Serialize};

pub use record::{
    Call, HistoryEntry, MAX_HISTORY, Mark, Phase, Retry, Slot, SlotState, StepRecord, TxnRecord,
    Verdict,
};

use crate::command::{Outcome, StateError};
use crate::machine::StateMachine;

/// A transaction as the server validated it, for `Command::TxnCreate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTxn {
    /// Client-chosen id; the state machine picks one from the revision otherwise.
    pub id: Option<String>,
    /// Its mode.
    pub mode: concord_api::transactions::TxnMode,
    /// Saga: run independent steps at once.
    pub concurrent: bool,
    /// Forward-phase limit.
    pub timeout_ms: u64,
    /// Per-call timeout for later TCC branches.
    pub branch_timeout_ms: u64,
    /// Retry limits for later TCC branches.
    pub branch_retry: Retry,
    /// The steps (empty for TCC).
    pub steps: Vec<NewStep>,
    /// SHA-256 of the request, for idempotent resubmission.
    pub digest: String,
}

/// One step as the server validated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStep {
    /// Its name.
    pub name: String,
    /// Action, try or prepare.
    pub forward: Call,
    /// Confirm or commit.
    pub finish: Option<Call>,
    /// Compensate, cancel or rollback.
    pub backward: Option<Call>,
    /// Per-call timeout.
    pub timeout_ms: u64,
    /// Retry limits.
    pub retry: Retry,
    /// Earlier steps it waits for.
    pub deps: Vec<u32>,
}

impl NewStep {
    fn into_record(self) -> StepRecord {
        StepRecord {
            name: self.name,
            forward: self.forward,
            finish: self.finish,
            backward: self.backward,
            timeout_ms: self.timeout_ms,
            retry: self.retry,
            deps: self.deps,
            fwd: Slot::PENDING,
            fin: Slot::PENDING,
            back: Slot::PENDING,
        }
    }
}

/// How a participant call ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallKind {
    /// 2xx.
    Success,
    /// 409: a business refusal (a failure for ops that may not refuse).
    Refused,
    /// 425: still working, ask again.
    Pending,
    /// Any other status, a timeout or a connection error.
    Failed,
}

/// A participant call's result, for `TxnEvent::Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResult {
    /// How it ended.
    pub kind: CallKind,
    /// The participant's status, when it answered.
    pub http_status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What went wrong.
    pub error: Option<String>,
    /// When to try again if it is retried: the driver's jittered backoff, or `Retry-After`.
    pub retry_in_ms: u64,
}

/// Something the driver observed, for `Command::TxnAdvance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnEvent {
    /// A call of `attempt` ended.
    Result {
        /// The step.
        step: u32,
        /// Which of its ops.
        phase: Phase,
        /// The attempt that ended.
        attempt: u32,
        /// How.
        result: CallResult,
    },
    /// Start call number `attempt` of a waiting op, or of a running one whose call
    /// was lost with its leader.
    Restart {
        /// The step.
        step: u32,
        /// Which of its ops.
        phase: Phase,
        /// The new attempt number (one more than so far).
        attempt: u32,
    },
    /// The forward phase has used its time (`elapsed_ms` of the command).
    Deadline,
}

/// What a client or operator decided, for `Command::TxnDecide`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnDecision {
    /// TCC: confirm every branch (all tries must have succeeded).
    Commit,
    /// Undo what took effect.
    Abort {
        /// Why.
        reason: String,
    },
    /// Give a stuck transaction fresh attempts.
    Retry,
    /// Close it by hand.
    Resolve {
        /// Why (audited in the history).
        reason: String,
    },
}

/// Derived indexes over the transactions, rebuilt on restore (not replicated).
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnIndex {
    /// Ids of transactions that are not final.
    pub(crate) active: std::collections::BTreeSet<String>,
    /// Final transactions by (revision they ended at, id), oldest first.
    pub(crate) finished: std::collections::BTreeSet<(u64, String)>,
    /// Bumped on every transaction change, so the driver can skip looking at the
    /// transactions when only other state moved.
    pub(crate) changes: u64,
}

impl StateMachine {
    /// `Command::TxnCreate`.
    pub(crate) fn txn_create(&mut self, txn: NewTxn, at_ms: u64) -> Outcome {
        if let Some(id) = &txn.id
            && let Some(existing) = self.txns.get(id)
        {
            if existing.digest == txn.digest {
                return Outcome::TxnCreated {
                    revision: self.revision,
                    id: id.clone(),
                    existed: true,
                };
            }
            return Outcome::Refused(StateError::TxnConflict(format!(
                "transaction {id:?} already exists with a different body"
            )));
        }
        let mut change = self.begin();
        change.touch();
        let id = match txn.id {
            Some(id) => id,
            None => {
                let mut id = format!("tx{:016}", change.rev);
                while self.txns.contains_key(&id) {
                    id.push('x');
                }
                id
            }
        };
        let initial = match txn.mode {
            concord_api::transactions::TxnMode::Tcc => TxnStatus::Trying,
            _ => TxnStatus::Running,
        };
        let mut record = TxnRecord {
            id: id.clone(),
            mode: txn.mode,
            status: initial,
            phase: Phase::Forward,
            concurrent: txn.concurrent,
            timeout_ms: txn.timeout_ms,
            branch_timeout_ms: txn.branch_timeout_ms,
            branch_retry: txn.branch_retry,
            steps: txn.steps.into_iter().map(NewStep::into_record).collect(),
            digest: txn.digest,
            created_at_ms: at_ms,
            finished_at_ms: None,
            created_revision: change.rev,
            revision: change.rev,
            elapsed_ms: 0,
            term: self.log_term,
            log_index: self.log_index,
            reason: None,
            history: Vec::new(),
            history_dropped: 0,
        };
        record.note(at_ms, None, Mark::Create, Verdict::Became(initial));
        record.settle(at_ms);
        self.store_txn(record);
        Outcome::TxnCreated {
            revision: self.commit(change),
            id,
            existed: false,
        }
    }

    /// `Command::TxnAdvance`: applies what the driver saw, skipping events that no
    /// longer fit (a result for an op that moved on), then settles.
    pub(crate) fn txn_advance(
        &mut self,
        id: &str,
        term: u64,
        at_ms: u64,
        elapsed_ms: u64,
        events: Vec<TxnEvent>,
    ) -> Outcome {
        let Some(current) = self.txns.get(id) else {
            return Outcome::Refused(StateError::TxnNotFound(id.to_owned()));
        };
        if term < current.term {
            // A deposed leader's driver: it must not move the record.
            return Outcome::Refused(StateError::TxnConflict(format!(
                "transaction {id:?} is driven by term {}, not {term}",
                current.term
            )));
        }
        if current.status.is_final() {
            // Final records never change (a late result after a resolve is dropped).
            return Outcome::TxnChanged {
                revision: self.revision,
                applied: 0,
            };
        }
        let mut record = current.clone();
        record.term = record.term.max(term).max(self.log_term);
        record.log_index = self.log_index;
        record.elapsed_ms = record.elapsed_ms.max(elapsed_ms);
        let mut applied = 0;
        for event in events {
            if record.event(event, at_ms) {
                applied += 1;
            }
        }
        if applied == 0 {
            return Outcome::TxnChanged {
                revision: self.revision,
                applied: 0,
            };
        }
        record.settle(at_ms);
        self.replace_txn(record, applied)
    }

    /// `Command::TxnBranch`: a TCC branch joins a transaction still trying.
    pub(crate) fn txn_branch(&mut self, id: &str, step: NewStep, at_ms: u64) -> Outcome {
        let Some(current) = self.txns.get(id) else {
            return Outcome::Refused(StateError::TxnNotFound(id.to_owned()));
        };
        if current.status != TxnStatus::Trying {
            return Outcome::Refused(StateError::TxnConflict(format!(
                "transaction {id:?} is {}, not trying: it takes no more branches",
                current.status
            )));
        }
        if current.steps.iter().any(|s| s.name == step.name) {
            return Outcome::Refused(StateError::TxnConflict(format!(
                "transaction {id:?} already has a branch {:?}",
                step.name
            )));
        }
        if current.steps.len() >= crate::transactions::MAX_BRANCHES {
            return Outcome::Refused(StateError::TxnConflict(format!(
                "transaction {id:?} has the most branches allowed ({MAX_BRANCHES})"
            )));
        }
        let mut record = current.clone();
        record.term = record.term.max(self.log_term);
        record.log_index = self.log_index;
        let index = record.steps.len() as u32;
        record.steps.push(step.into_record());
        record.note(at_ms, Some(index), Mark::Branch, Verdict::Started);
        record.settle(at_ms);
        self.replace_txn(record, 1)
    }

    /// `Command::TxnDecide`.
    pub(crate) fn txn_decide(&mut self, id: &str, decision: TxnDecision, at_ms: u64) -> Outcome {
        let Some(current) = self.txns.get(id) else {
            return Outcome::Refused(StateError::TxnNotFound(id.to_owned()));
        };
        let mut record = current.clone();
        record.term = record.term.max(self.log_term);
        record.log_index = self.log_index;
        if let Err(why) = record.decide(decision, at_ms) {
            return Outcome::Refused(StateError::TxnConflict(why));
        }
        record.settle(at_ms);
        self.replace_txn(record, 1)
    }

    /// `Command::TxnForget`: drops final transactions (retention is the leader's call).
    pub(crate) fn txn_forget(&mut self, ids: Vec<String>) -> Outcome {
        let mut change = self.begin();
        let mut removed = 0;
        for id in ids {
            if let Some(t) = self.txns.get(&id)
                && t.status.is_final()
            {
                self.txn_index.finished.remove(&(t.revision, id.clone()));
                self.txns.remove(&id);
                self.txn_index.changes += 1;
                removed += 1;
            }
        }
        if removed > 0 {
            change.touch();
        }
        Outcome::TxnForgotten {
            revision: self.commit(change),
            removed,
        }
    }

    fn replace_txn(&mut self, mut record: TxnRecord, applied: u32) -> Outcome {
        let mut change = self.begin();
        change.touch();
        record.revision = change.rev;
        self.store_txn(record);
        Outcome::TxnChanged {
            revision: self.commit(change),
            applied,
        }
    }

    fn store_txn(&mut self, record: TxnRecord) {
        self.txn_index.changes += 1;
        if record.status.is_final() {
            self.txn_index.active.remove(&record.id);
            self.txn_index
                .finished
                .insert((record.revision, record.id.clone()));
        } else {
            self.txn_index.active.insert(record.id.clone());
        }
        self.txns.insert(record.id.clone(), record);
    }

    pub(crate) fn rebuild_txn_index(&mut self) {
        self.txn_index.changes += 1;
        self.txn_index.active = self
            .txns
            .values()
            .filter(|t| !t.status.is_final())
            .map(|t| t.id.clone())
            .collect();
        self.txn_index.finished = self
            .txns
            .values()
            .filter(|t| t.status.is_final())
            .map(|t| (t.revision, t.id.clone()))
            .collect();
    }

    /// Final transactions that ended at or before `revision`, oldest first (for retention).
    pub fn finished_txns_until(&self, revision: u64) -> impl Iterator<Item = &str> {
        self.txn_index
            .finished
            .iter()
            .take_while(move |(r, _)| *r <= revision)
            .map(|(_, id)| id.as_str())
    }

    /// How many final transactions are kept.
    pub fn finished_txn_count(&self) -> usize {
        self.txn_index.finished.len()
    }

    /// One transaction.
    pub fn transaction(&self, id: &str) -> Option<&TxnRecord> {
        self.txns.get(id)
    }

    /// Transactions ordered by id, after `after`.
    pub fn txns_after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a TxnRecord> {
        use std::ops::Bound;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        self.txns
            .range::<String, _>((lower, Bound::Unbounded))
            .map(|(_, t)| t)
    }

    /// A counter that moves whenever any transaction changes (local, not replicated:
    /// only for noticing change cheaply).
    pub fn txn_changes(&self) -> u64 {
        self.txn_index.changes
    }

    /// Ids of the transactions that are not final, for the driver.
    pub fn active_txns(&self) -> impl Iterator<Item = &str> {
        self.txn_index.active.iter().map(String::as_str)
    }

    /// Every transaction, by id.
    pub fn txn_count(&self) -> usize {
        self.txns.len()
    }
}

/// Most branches one TCC transaction may take.
pub const MAX_BRANCHES: usize = 256;

/// Transactions by id, as replicated.
pub(crate) type Txns = BTreeMap<String, TxnRecord>;
