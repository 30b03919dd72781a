//! What the log keeps of one distributed transaction.

use concord_api::transactions::{TxnMode, TxnOp, TxnStatus};
use serde::{Deserialize, Serialize};

/// Most history entries kept per transaction; older call entries are dropped first
/// (counted in `history_dropped`) so a retry storm cannot grow a record without bound.
pub const MAX_HISTORY: usize = 512;

/// One participant call as the coordinator will make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// `http://...` or `concord://service[.namespace]/path`.
    pub url: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// JSON body text, if any.
    pub body: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

/// Retry limits of one step's calls, with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// First backoff.
    pub initial_backoff_ms: u64,
    /// Backoff ceiling.
    pub max_backoff_ms: u64,
    /// Calls per op before it is exhausted (counted since the last operator retry).
    pub max_attempts: u32,
}

impl Retry {
    /// The un-jittered backoff after `attempt` failed calls: doubling, capped.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(32);
        self.initial_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff_ms)
    }
}

/// Where one op of one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotState {
    /// Not started.
    Pending,
    /// A call is (or was, before a crash) in flight: committed before the call is made.
    Running,
    /// The last call failed; the next one is due `delay_ms` after the driver saw this.
    Waiting {
        /// Backoff the driver chose (jittered, or the participant's `Retry-After`).
        delay_ms: u64,
    },
    /// Took effect.
    Done,
    /// The participant refused it (409): it took no effect.
    Refused,
    /// Ran out of attempts or time: its effect is unknown.
    Exhausted,
    /// Not needed (never started, or nothing to undo).
    Skipped,
}

/// One op of one step and its attempt count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Where it is.
    pub state: SlotState,
    /// Calls started so far.
    pub attempts: u32,
    /// `attempts` when an operator last retried; the limit counts from here.
    pub budget_from: u32,
    /// Leader term that started the current attempt.
    pub term: u64,
    /// Log index of the command that started the current attempt: a leader's
    /// driver sends only attempts started at indexes it appended itself; one it
    /// finds running from before may have been sent, so it makes the next attempt.
    pub started_at: u64,
}

impl Slot {
    pub(crate) const PENDING: Slot = Slot {
        state: SlotState::Pending,
        attempts: 0,
        budget_from: 0,
        term: 0,
        started_at: 0,
    };

    /// Whether a call was ever started (its effect may exist).
    pub fn attempted(&self) -> bool {
        self.attempts > 0
    }

    /// Whether it still has a call in flight or due.
    pub fn busy(&self) -> bool {
        matches!(self.state, SlotState::Running | SlotState::Waiting { .. })
    }
}

/// One step (saga, 2PC) or branch (TCC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its name.
    pub name: String,
    /// Action, try or prepare.
    pub forward: Call,
    /// Confirm or commit (none for sagas).
    pub finish: Option<Call>,
    /// Compensate, cancel or rollback (optional for sagas).
    pub backward: Option<Call>,
    /// Per-call timeout.
    pub timeout_ms: u64,
    /// Retry limits.
    pub retry: Retry,
    /// Indexes of earlier steps that must be done before this one starts (sagas).
    pub deps: Vec<u32>,
    /// The forward op's progress.
    pub fwd: Slot,
    /// The finish op's progress.
    pub fin: Slot,
    /// The backward op's progress.
    pub back: Slot,
}

impl StepRecord {
    /// The slot of `phase`.
    pub fn slot(&self, phase: Phase) -> &Slot {
        match phase {
            Phase::Forward => &self.fwd,
            Phase::Finish => &self.fin,
            Phase::Backward => &self.back,
        }
    }

    pub(crate) fn slot_mut(&mut self, phase: Phase) -> &mut Slot {
        match phase {
            Phase::Forward => &mut self.fwd,
            Phase::Finish => &mut self.fin,
            Phase::Backward => &mut self.back,
        }
    }

    /// The call of `phase`, if the step has one.
    pub fn call(&self, phase: Phase) -> Option<&Call> {
        match phase {
            Phase::Forward => Some(&self.forward),
            Phase::Finish => self.finish.as_ref(),
            Phase::Backward => self.backward.as_ref(),
        }
    }
}

/// Which op of the steps the transaction is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Action, try or prepare.
    Forward,
    /// Confirm or commit, after every forward op took effect.
    Finish,
    /// Compensate, cancel or rollback, after the transaction chose to abort.
    Backward,
}

impl Phase {
    /// The participant op this phase runs in `mode` (none: sagas have no finish).
    pub fn op(self, mode: TxnMode) -> Option<TxnOp> {
        let (fwd, fin, back) = mode.ops();
        match self {
            Phase::Forward => Some(fwd),
            Phase::Finish => fin,
            Phase::Backward => Some(back),
        }
    }
}

/// What a history entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    /// The transaction was created.
    Create,
    /// A TCC branch was added.
    Branch,
    /// A participant call.
    Call(TxnOp),
    /// The transaction's status changed.
    Status,
    /// The forward phase ran out of time.
    Timeout,
    /// A client asked for commit.
    Commit,
    /// A client asked for abort.
    Abort,
    /// An operator retried a stuck transaction.
    Retry,
    /// An operator closed the transaction.
    Resolve,
}

/// How a history entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// A call started (committed before it was made).
    Started,
    /// The call took effect.
    Succeeded,
    /// The participant refused (409).
    Refused,
    /// The participant is still working (425).
    Pending,
    /// The call failed and will be retried.
    Failed,
    /// The call failed and no attempts are left.
    Exhausted,
    /// A call was in flight when its leader went away.
    Interrupted,
    /// A transaction-wide change; the new status.
    Became(TxnStatus),
}

/// One line of a transaction's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Leader's wall clock, for people only.
    pub at_ms: u64,
    /// The step, if it is about one.
    pub step: Option<u32>,
    /// What it is about.
    pub mark: Mark,
    /// Attempt number for calls.
    pub attempt: u32,
    /// How it ended.
    pub verdict: Verdict,
    /// Participant's HTTP status.
    pub http_status: Option<u16>,
    /// Call latency.
    pub latency_ms: Option<u64>,
    /// Error text or operator reason.
    pub error: Option<String>,
}

/// One distributed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: TxnMode,
    /// Its status.
    pub status: TxnStatus,
    /// The op the steps are running.
    pub phase: Phase,
    /// Saga: start every step whose dependencies are done, not one at a time.
    pub concurrent: bool,
    /// Forward-phase time limit, in driver milliseconds.
    pub timeout_ms: u64,
    /// Per-call timeout for TCC branches added later without their own.
    pub branch_timeout_ms: u64,
    /// Retry limits for TCC branches added later without their own.
    pub branch_retry: Retry,
    /// The steps or branches.
    pub steps: Vec<StepRecord>,
    /// SHA-256 of the request that created it, to tell an idempotent resubmission
    /// from a different transaction reusing the id.
    pub digest: String,
    /// Leader wall clock at creation (display only).
    pub created_at_ms: u64,
    /// Leader wall clock when it became final (display only).
    pub finished_at_ms: Option<u64>,
    /// Revision that created it.
    pub created_revision: u64,
    /// Revision of its last change.
    pub revision: u64,
    /// Driving time used so far, summed from each leader's monotonic clock; the
    /// timeout is measured in it, so no two nodes' clocks are ever compared.
    pub elapsed_ms: u64,
    /// Highest leader term that changed it (the term of the leader that appended
    /// each command, or a driver's own term); drivers from older terms are fenced off.
    pub term: u64,
    /// Log index of the last command that changed it.
    pub log_index: u64,
    /// Why it aborted, got stuck or was resolved.
    pub reason: Option<String>,
    /// What happened, oldest first (bounded by `MAX_HISTORY`).
    pub history: Vec<HistoryEntry>,
    /// History entries dropped to respect `MAX_HISTORY`.
    pub history_dropped: u64,
}

impl TxnRecord {
    /// The op its steps are running now.
    pub fn current_op(&self) -> Option<TxnOp> {
        self.phase.op(self.mode)
    }

    pub(crate) fn log(&mut self, entry: HistoryEntry) {
        if self.history.len() >= MAX_HISTORY {
            // Keep the creation entry; drop the oldest after it.
            self.history.remove(1.min(self.history.len() - 1));
            self.history_dropped += 1;
        }
        self.history.push(entry);
    }

    pub(crate) fn note(&mut self, at_ms: u64, step: Option<u32>, mark: Mark, verdict: Verdict) {
        self.log(HistoryEntry {
            at_ms,
            step,
            mark,
            attempt: 0,
            verdict,
            http_status: None,
            latency_ms: None,
            error: None,
        });
    }
}
