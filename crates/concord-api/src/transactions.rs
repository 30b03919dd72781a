//! Distributed transactions (saga, TCC, two-phase commit): the coordinator's HTTP
//! contract and the participant protocol's header names and operations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Header naming the transaction on every participant call.
pub const TXN_ID_HEADER: &str = "Concord-Txn-Id";
/// Header naming the step (or TCC branch) on every participant call.
pub const TXN_STEP_HEADER: &str = "Concord-Txn-Step";
/// Header naming the operation (`action`, `compensate`, `try`, ...) on every call.
pub const TXN_OP_HEADER: &str = "Concord-Txn-Op";
/// Header numbering the call's attempt, from 1.
pub const TXN_ATTEMPT_HEADER: &str = "Concord-Txn-Attempt";
/// W3C trace context header, so participant spans join the transaction's trace.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Default for `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Default for `step_timeout_ms`.
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 5_000;
/// Default for `retry.initial_backoff_ms`.
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 200;
/// Default for `retry.max_backoff_ms`.
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 30_000;
/// Default for `retry.max_attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// How the coordinator drives the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TxnMode {
    /// Actions in order; on failure, compensations of what took effect in reverse.
    #[serde(rename = "saga")]
    Saga,
    /// Try-confirm-cancel: the client adds branches, then commits or aborts.
    #[serde(rename = "tcc")]
    Tcc,
    /// Prepare all, then commit all or roll back all.
    #[serde(rename = "2pc")]
    TwoPc,
}

impl TxnMode {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnMode::Saga => "saga",
            TxnMode::Tcc => "tcc",
            TxnMode::TwoPc => "2pc",
        }
    }

    /// The operations of one step in this mode: (forward, finish, backward).
    ///
    /// `finish` runs after every forward op succeeded (none for sagas); `backward`
    /// undoes a forward op when the transaction aborts.
    pub fn ops(self) -> (TxnOp, Option<TxnOp>, TxnOp) {
        match self {
            TxnMode::Saga => (TxnOp::Action, None, TxnOp::Compensate),
            TxnMode::Tcc => (TxnOp::Try, Some(TxnOp::Confirm), TxnOp::Cancel),
            TxnMode::TwoPc => (TxnOp::Prepare, Some(TxnOp::Commit), TxnOp::Rollback),
        }
    }
}

/// One operation of the participant protocol, sent as `Concord-Txn-Op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    /// Saga forward step.
    Action,
    /// Saga undo of an action.
    Compensate,
    /// TCC reservation.
    Try,
    /// TCC confirmation of a try.
    Confirm,
    /// TCC release of a try.
    Cancel,
    /// 2PC vote.
    Prepare,
    /// 2PC commit of a prepare.
    Commit,
    /// 2PC undo of a prepare.
    Rollback,
}

impl TxnOp {
    /// Every operation, for parsing and tables.
    pub const ALL: [TxnOp; 8] = [
        TxnOp::Action,
        TxnOp::Compensate,
        TxnOp::Try,
        TxnOp::Confirm,
        TxnOp::Cancel,
        TxnOp::Prepare,
        TxnOp::Commit,
        TxnOp::Rollback,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnOp::Action => "action",
            TxnOp::Compensate => "compensate",
            TxnOp::Try => "try",
            TxnOp::Confirm => "confirm",
            TxnOp::Cancel => "cancel",
            TxnOp::Prepare => "prepare",
            TxnOp::Commit => "commit",
            TxnOp::Rollback => "rollback",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<TxnOp> {
        TxnOp::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// Whether a participant may refuse this op with 409 (it starts the rollback).
    pub fn may_refuse(self) -> bool {
        matches!(self, TxnOp::Action | TxnOp::Try | TxnOp::Prepare)
    }

    /// For an undo op, the forward op it undoes; the barrier uses it to spot a
    /// compensation that arrives before its action ("null compensation").
    pub fn undoes(self) -> Option<TxnOp> {
        match self {
            TxnOp::Compensate => Some(TxnOp::Action),
            TxnOp::Cancel => Some(TxnOp::Try),
            TxnOp::Rollback => Some(TxnOp::Prepare),
            _ => None,
        }
    }
}

impl std::fmt::Display for TxnOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnStatus {
    /// Moving forward (saga actions, 2PC prepare and commit, TCC confirm).
    Running,
    /// A TCC transaction taking branches, waiting for commit or abort.
    Trying,
    /// Undoing what took effect (compensate, cancel, rollback).
    Aborting,
    /// Every step took effect (and was confirmed or committed).
    Succeeded,
    /// Everything that took effect was compensated, cancelled or rolled back.
    Aborted,
    /// A call that must succeed ran out of limits; waits for `retry` or `resolve`.
    Stuck,
    /// An operator closed a stuck or running transaction by hand (see its history).
    Resolved,
}

impl TxnStatus {
    /// Every status, for parsing and metrics.
    pub const ALL: [TxnStatus; 7] = [
        TxnStatus::Running,
        TxnStatus::Trying,
        TxnStatus::Aborting,
        TxnStatus::Succeeded,
        TxnStatus::Aborted,
        TxnStatus::Stuck,
        TxnStatus::Resolved,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Running => "running",
            TxnStatus::Trying => "trying",
            TxnStatus::Aborting => "aborting",
            TxnStatus::Succeeded => "succeeded",
            TxnStatus::Aborted => "aborted",
            TxnStatus::Stuck => "stuck",
            TxnStatus::Resolved => "resolved",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<TxnStatus> {
        TxnStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the coordinator is done with it for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TxnStatus::Succeeded | TxnStatus::Aborted | TxnStatus::Resolved
        )
    }
}

impl std::fmt::Display for TxnStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP call to a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// `http://host:port/path`, or `concord://service/path` to call a passing
    /// instance of a registered service (`concord://service.namespace/path` for
    /// another namespace).
    pub url: String,
    /// HTTP method; `POST` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON body sent as is; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Retry limits for calls; any field left out takes the transaction's (or the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// First backoff; doubles per attempt, with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff_ms: Option<u64>,
    /// Backoff ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
    /// Calls per operation, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// One step (saga, 2PC) or branch (TCC). Which calls it needs depends on the mode:
/// saga `action` (+ optional `compensate`), 2PC `prepare`/`commit`/`rollback`,
/// TCC `try`/`confirm`/`cancel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the transaction; sent as `Concord-Txn-Step`.
    pub name: String,
    /// Saga forward call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<CallSpec>,
    /// Saga undo call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<CallSpec>,
    /// TCC reservation call.
    #[serde(default, rename = "try", skip_serializing_if = "Option::is_none")]
    pub try_: Option<CallSpec>,
    /// TCC confirmation call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<CallSpec>,
    /// TCC release call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<CallSpec>,
    /// 2PC vote call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare: Option<CallSpec>,
    /// 2PC commit call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CallSpec>,
    /// 2PC undo call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<CallSpec>,
    /// This step's per-call timeout, over the transaction's `step_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// This step's retry limits, over the transaction's `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

impl StepSpec {
    /// The call for `op`, if the step has one.
    pub fn call(&self, op: TxnOp) -> Option<&CallSpec> {
        match op {
            TxnOp::Action => self.action.as_ref(),
            TxnOp::Compensate => self.compensate.as_ref(),
            TxnOp::Try => self.try_.as_ref(),
            TxnOp::Confirm => self.confirm.as_ref(),
            TxnOp::Cancel => self.cancel.as_ref(),
            TxnOp::Prepare => self.prepare.as_ref(),
            TxnOp::Commit => self.commit.as_ref(),
            TxnOp::Rollback => self.rollback.as_ref(),
        }
    }
}

/// `POST /v1/transactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnRequest {
    /// Client-chosen id; resubmitting the same id and body is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `saga`, `tcc` or `2pc`.
    pub mode: TxnMode,
    /// The steps (saga, 2PC); TCC transactions start empty and take branches.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// Saga: run actions whose dependencies are met at once, not one by one.
    #[serde(default)]
    pub concurrent: bool,
    /// Saga: step name -> steps that must succeed before it starts (earlier steps only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// How long the forward phase may take before the transaction aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Per-call timeout for steps that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_ms: Option<u64>,
    /// Retry limits for steps that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Answer only when the transaction ends (or `timeout_secs` passes).
    #[serde(default)]
    pub wait: bool,
}

/// `POST /v1/transactions/{id}/branches` (TCC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchRequest {
    /// Unique within the transaction.
    pub name: String,
    /// Reservation call, made now; its outcome is the answer.
    #[serde(rename = "try")]
    pub try_: CallSpec,
    /// Called on commit.
    pub confirm: CallSpec,
    /// Called on abort, even when the try failed or timed out.
    pub cancel: CallSpec,
    /// Per-call timeout for this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retry limits for this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

/// `POST /v1/transactions/{id}/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Why the operator closed it; kept in the history.
    pub reason: String,
}

/// `202` answer: the transaction is under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnAccepted {
    /// Its id.
    pub id: String,
    /// Its status when the answer was written.
    pub status: TxnStatus,
}

/// One step or branch as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// Its name.
    pub name: String,
    /// `pending`, `running`, `succeeded`, `refused`, `failed`, `compensating`,
    /// `compensated`, `committing`, `committed`, ... (see docs/transactions.md).
    pub status: String,
    /// The op last started on it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<TxnOp>,
    /// Attempts of that op so far.
    #[serde(default)]
    pub attempts: u32,
}

/// One entry of a transaction's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    /// When the leader recorded it (RFC 3339, for people; never compared).
    pub at: String,
    /// The step, or null for a transaction-wide entry.
    pub step: Option<String>,
    /// A participant op, or `create`, `branch`, `phase`, `commit`, `abort`,
    /// `timeout`, `retry`, `resolve`.
    pub op: String,
    /// The attempt number for calls, else 0.
    pub attempt: u32,
    /// `started`, `succeeded`, `refused`, `pending` (425), `failed`, `exhausted`,
    /// `interrupted`, or the new status for transaction-wide entries.
    pub outcome: String,
    /// The participant's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// How long the call took.
    pub latency_ms: Option<u64>,
    /// What went wrong, or the operator's reason.
    pub error: Option<String>,
}

/// `GET /v1/transactions/{id}`; also the `200` answer of a waited-for transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnView {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: TxnMode,
    /// Its status.
    pub status: TxnStatus,
    /// When it was created (RFC 3339, leader clock).
    pub created_at: String,
    /// When it reached a final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it aborted or got stuck, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The steps in order.
    pub steps: Vec<StepView>,
    /// Everything that happened, oldest first.
    pub history: Vec<HistoryView>,
    /// Store revision of its last change.
    pub revision: u64,
}

/// One line of `GET /v1/transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnSummary {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: TxnMode,
    /// Its status.
    pub status: TxnStatus,
    /// When it was created.
    pub created_at: String,
    /// Number of steps or branches.
    pub steps: usize,
    /// Why it aborted or got stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Store revision of its last change.
    pub revision: u64,
}

/// `GET /v1/transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnList {
    /// Matching transactions ordered by id.
    pub transactions: Vec<TxnSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Store revision the list reflects.
    pub revision: u64,
}
