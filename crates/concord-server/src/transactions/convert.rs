//! Requests to validated log records, and records to API views.

use concord_api::transactions::{
    self as api, BranchRequest, CallSpec, HistoryView, RetrySpec, StepView, TxnRequest, TxnSummary,
    TxnView,
};
use concord_state::{
    Call, HistoryEntry, Mark, NewStep, NewTxn, Phase, Retry, SlotState, StepRecord, TxnRecord,
    Verdict,
};
use sha2::{Digest, Sha256};

use crate::configs::rfc3339;
use crate::error::{ApiError, ApiResult};

fn call(c: &CallSpec) -> ApiResult<Call> {
    Ok(Call {
        url: c.url.clone(),
        method: c.method.clone().unwrap_or_else(|| "POST".to_owned()),
        body: c
            .body
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| ApiError::internal(format!("cannot encode a call body: {e}")))?,
        headers: c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// Fills the defaults: the step's own, then the transaction's, then the built-in ones.
fn retry(own: Option<&RetrySpec>, txn: Option<&RetrySpec>) -> Retry {
    let pick = |f: fn(&RetrySpec) -> Option<u64>| own.and_then(f).or_else(|| txn.and_then(f));
    let initial = pick(|r| r.initial_backoff_ms).unwrap_or(api::DEFAULT_INITIAL_BACKOFF_MS);
    Retry {
        initial_backoff_ms: initial,
        max_backoff_ms: pick(|r| r.max_backoff_ms)
            .unwrap_or(api::DEFAULT_MAX_BACKOFF_MS)
            .max(initial),
        max_attempts: own
            .and_then(|r| r.max_attempts)
            .or_else(|| txn.and_then(|r| r.max_attempts))
            .unwrap_or(api::DEFAULT_MAX_ATTEMPTS),
    }
}

/// A validated request as a log record. `request` must have passed
/// `validate::txn_request`.
pub(crate) fn new_txn(request: &TxnRequest) -> ApiResult<NewTxn> {
    let (fwd, fin, back) = request.mode.ops();
    let step_timeout = request
        .step_timeout_ms
        .unwrap_or(api::DEFAULT_STEP_TIMEOUT_MS);
    let index = |name: &str| {
        request
            .steps
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    };
    let mut steps = Vec::with_capacity(request.steps.len());
    for s in &request.steps {
        let forward = s
            .call(fwd)
            .ok_or_else(|| ApiError::invalid("steps", format!("step {:?} has no {fwd}", s.name)))?;
        steps.push(NewStep {
            name: s.name.clone(),
            forward: call(forward)?,
            finish: fin.and_then(|op| s.call(op)).map(call).transpose()?,
            backward: s.call(back).map(call).transpose()?,
            timeout_ms: s.timeout_ms.unwrap_or(step_timeout),
            retry: retry(s.retry.as_ref(), request.retry.as_ref()),
            deps: request
                .depends_on
                .get(&s.name)
                .map(|d| d.iter().filter_map(|n| index(n)).collect())
                .unwrap_or_default(),
        });
    }
    Ok(NewTxn {
        id: request.id.clone(),
        mode: request.mode,
        concurrent: request.concurrent,
        timeout_ms: request
            .timeout_secs
            .unwrap_or(api::DEFAULT_TIMEOUT_SECS)
            .saturating_mul(1000),
        branch_timeout_ms: step_timeout,
        branch_retry: retry(None, request.retry.as_ref()),
        steps,
        digest: digest(request)?,
    })
}

/// SHA-256 of the request without `wait` (which only shapes the answer), so a
/// resubmission with or without waiting is the same transaction.
fn digest(request: &TxnRequest) -> ApiResult<String> {
    let mut r = request.clone();
    r.wait = false;
    let bytes = serde_json::to_vec(&r)
        .map_err(|e| ApiError::internal(format!("cannot encode the request: {e}")))?;
    let hash = Sha256::digest(&bytes);
    Ok(hash.iter().map(|b| format!("{b:02x}")).collect())
}

/// A validated TCC branch as a log record; limits default to the transaction's.
pub(crate) fn new_branch(b: &BranchRequest, txn: &TxnRecord) -> ApiResult<NewStep> {
    let retry = match &b.retry {
        None => txn.branch_retry,
        Some(own) => {
            let base = RetrySpec {
                initial_backoff_ms: Some(txn.branch_retry.initial_backoff_ms),
                max_backoff_ms: Some(txn.branch_retry.max_backoff_ms),
                max_attempts: Some(txn.branch_retry.max_attempts),
            };
            retry(Some(own), Some(&base))
        }
    };
    Ok(NewStep {
        name: b.name.clone(),
        forward: call(&b.try_)?,
        finish: Some(call(&b.confirm)?),
        backward: Some(call(&b.cancel)?),
        timeout_ms: b.timeout_ms.unwrap_or(txn.branch_timeout_ms),
        retry,
        deps: Vec::new(),
    })
}

/// What a step is doing, in words: its latest op that has started, and how that went.
pub(crate) fn step_status(mode: api::TxnMode, s: &StepRecord) -> (String, Option<api::TxnOp>, u32) {
    for phase in [Phase::Backward, Phase::Finish] {
        let slot = s.slot(phase);
        if slot.attempts == 0 {
            continue;
        }
        let op = phase.op(mode);
        let word = match (phase, op, slot.state) {
            (_, _, SlotState::Running | SlotState::Waiting { .. }) => match op {
                Some(api::TxnOp::Compensate) => "compensating",
                Some(api::TxnOp::Cancel) => "cancelling",
                Some(api::TxnOp::Rollback) => "rolling_back",
                Some(api::TxnOp::Confirm) => "confirming",
                _ => "committing",
            },
            (_, _, SlotState::Done) => match op {
                Some(api::TxnOp::Compensate) => "compensated",
                Some(api::TxnOp::Cancel) => "cancelled",
                Some(api::TxnOp::Rollback) => "rolled_back",
                Some(api::TxnOp::Confirm) => "confirmed",
                _ => "committed",
            },
            (Phase::Backward, ..) => "undo_failed",
            _ => "finish_failed",
        };
        return (word.to_owned(), op, slot.attempts);
    }
    let (fwd, ..) = mode.ops();
    let word = match s.fwd.state {
        SlotState::Pending => "pending",
        SlotState::Running | SlotState::Waiting { .. } => "running",
        SlotState::Done => match mode {
            api::TxnMode::Saga => "succeeded",
            api::TxnMode::Tcc => "tried",
            api::TxnMode::TwoPc => "prepared",
        },
        SlotState::Refused => "refused",
        SlotState::Exhausted => "failed",
        SlotState::Skipped => "skipped",
    };
    let op = (s.fwd.attempts > 0).then_some(fwd);
    (word.to_owned(), op, s.fwd.attempts)
}

fn history(rec: &TxnRecord, h: &HistoryEntry) -> HistoryView {
    let op = match h.mark {
        Mark::Call(op) => op.as_str(),
        Mark::Create => "create",
        Mark::Branch => "branch",
        Mark::Status => "phase",
        Mark::Timeout => "timeout",
        Mark::Commit => "commit",
        Mark::Abort => "abort",
        Mark::Retry => "retry",
        Mark::Resolve => "resolve",
    };
    let outcome = match h.verdict {
        Verdict::Started => "started",
        Verdict::Succeeded => "succeeded",
        Verdict::Refused => "refused",
        Verdict::Pending => "pending",
        Verdict::Failed => "failed",
        Verdict::Exhausted => "exhausted",
        Verdict::Interrupted => "interrupted",
        Verdict::Became(s) => s.as_str(),
    };
    HistoryView {
        at: rfc3339(h.at_ms),
        step: h
            .step
            .and_then(|i| rec.steps.get(i as usize))
            .map(|s| s.name.clone()),
        op: op.to_owned(),
        attempt: h.attempt,
        outcome: outcome.to_owned(),
        http_status: h.http_status,
        latency_ms: h.latency_ms,
        error: h.error.clone(),
    }
}

/// The full view of `GET /v1/transactions/{id}`.
pub(crate) fn view(rec: &TxnRecord) -> TxnView {
    TxnView {
        id: rec.id.clone(),
        mode: rec.mode,
        status: rec.status,
        created_at: rfc3339(rec.created_at_ms),
        finished_at: rec.finished_at_ms.map(rfc3339),
        reason: rec.reason.clone(),
        steps: rec
            .steps
            .iter()
            .map(|s| {
                let (status, op, attempts) = step_status(rec.mode, s);
                StepView {
                    name: s.name.clone(),
                    status,
                    op,
                    attempts,
                }
            })
            .collect(),
        history: rec.history.iter().map(|h| history(rec, h)).collect(),
        revision: rec.revision,
    }
}

/// One line of `GET /v1/transactions`.
pub(crate) fn summary(rec: &TxnRecord) -> TxnSummary {
    TxnSummary {
        id: rec.id.clone(),
        mode: rec.mode,
        status: rec.status,
        created_at: rfc3339(rec.created_at_ms),
        steps: rec.steps.len(),
        reason: rec.reason.clone(),
        revision: rec.revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: serde_json::Value) -> TxnRequest {
        serde_json::from_value(v).expect("request")
    }

    #[test]
    fn defaults_fill_in_from_step_then_transaction_then_built_in() {
        let r = request(serde_json::json!({
            "mode": "saga", "step_timeout_ms": 700, "retry": {"max_attempts": 4},
            "steps": [
                {"name": "a", "action": {"url": "http://h/a", "body": {"x": 1}}},
                {"name": "b", "action": {"url": "http://h/b", "method": "PUT"}, "timeout_ms": 50,
                 "retry": {"initial_backoff_ms": 10}}
            ],
            "concurrent": true, "depends_on": {"b": ["a"]}
        }));
        let t = new_txn(&r).expect("converts");
        assert_eq!(t.timeout_ms, 60_000);
        assert_eq!(t.steps[0].timeout_ms, 700);
        assert_eq!(t.steps[0].retry.max_attempts, 4);
        assert_eq!(t.steps[0].retry.initial_backoff_ms, 200);
        assert_eq!(t.steps[0].forward.method, "POST");
        assert_eq!(t.steps[0].forward.body.as_deref(), Some("{\"x\":1}"));
        assert_eq!(t.steps[1].timeout_ms, 50);
        assert_eq!(t.steps[1].retry.initial_backoff_ms, 10);
        assert_eq!(t.steps[1].retry.max_attempts, 4);
        assert_eq!(t.steps[1].forward.method, "PUT");
        assert_eq!(t.steps[1].deps, vec![0]);
        assert!(t.steps[0].backward.is_none());
    }

    #[test]
    fn waiting_or_not_is_the_same_transaction() {
        let mut r = request(serde_json::json!({
            "id": "x", "mode": "saga", "steps": [{"name": "a", "action": {"url": "http://h/a"}}]
        }));
        let d1 = new_txn(&r).unwrap().digest;
        r.wait = true;
        assert_eq!(new_txn(&r).unwrap().digest, d1);
        r.timeout_secs = Some(5);
        assert_ne!(new_txn(&r).unwrap().digest, d1);
    }
}
