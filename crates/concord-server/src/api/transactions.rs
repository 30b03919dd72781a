//! Distributed transactions: `POST|GET /v1/transactions`, `GET /v1/transactions/{id}`,
//! and the branch, commit, abort, retry and resolve actions.
//!
//! Every endpoint only proposes commands and reads state; the participant calls are
//! the leader's driver's job. Waiting for an outcome watches this node's applied
//! state, so any node can take any request.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use concord_api::transactions::{
    BranchRequest, ResolveRequest, TxnAccepted, TxnList, TxnRequest, TxnStatus,
};
use concord_api::{ErrorCode, validate};
use concord_state::{Command, Outcome, SlotState, StateMachine, TxnDecision, TxnRecord};
use serde::Deserialize;

use super::index_header;
use super::registry::unexpected;
use crate::configs::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::{JsonBody, Params, RawBody, parse_json};
use crate::transactions::convert;

/// Most transactions one list answer holds.
const MAX_LIMIT: u64 = 1000;
/// Default page size.
const DEFAULT_LIMIT: u64 = 100;

/// Waits until `done` holds on this node's applied state, or `limit` passes.
async fn wait_for(
    node: &SharedNode,
    limit: Duration,
    mut done: impl FnMut(&StateMachine) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut applied = node.raft.applied();
    loop {
        if done(&node.state()) {
            return true;
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() { return false },
            _ = tokio::time::sleep_until(deadline.into()) => return done(&node.state()),
        }
    }
}

/// Proposes `cmd` and waits until this node has applied it, so what the handler
/// reads next reflects the write (a follower applies after the leader answers).
async fn write(node: &SharedNode, cmd: Command) -> ApiResult<Outcome> {
    let outcome = node.write(cmd).await?;
    let revision = match &outcome {
        Outcome::TxnCreated { revision, .. } | Outcome::TxnChanged { revision, .. } => *revision,
        _ => 0,
    };
    if !wait_for(node, node.config.write_timeout, |s| {
        s.revision() >= revision
    })
    .await
    {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the write is committed but this node has not applied it yet; read it again shortly",
        ));
    }
    Ok(outcome)
}

fn is_final(state: &StateMachine, id: &str) -> bool {
    state.transaction(id).is_none_or(|t| t.status.is_final())
}

/// 200 with the full view when final (or `full`), else 202 with id and status.
fn answer(node: &SharedNode, id: &str, full: bool) -> ApiResult<Response> {
    let state = node.state();
    let rec = state
        .transaction(id)
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))?;
    let headers = index_header(rec.revision);
    if full || rec.status.is_final() {
        Ok((headers, Json(convert::view(rec))).into_response())
    } else {
        Ok((
            StatusCode::ACCEPTED,
            headers,
            Json(TxnAccepted {
                id: rec.id.clone(),
                status: rec.status,
            }),
        )
            .into_response())
    }
}

/// `POST /v1/transactions`
pub async fn create(
    State(node): State<SharedNode>,
    JsonBody(request): JsonBody<TxnRequest>,
) -> ApiResult<Response> {
    validate::txn_request(&request)?;
    let txn = convert::new_txn(&request)?;
    let limit = Duration::from_millis(txn.timeout_ms);
    let cmd = Command::TxnCreate {
        txn,
        at_ms: now_ms(),
    };
    let id = match write(&node, cmd).await? {
        Outcome::TxnCreated { id, .. } => id,
        other => return Err(unexpected(other)),
    };
    if request.wait {
        wait_for(&node, limit, |s| is_final(s, &id)).await;
        let state = node.state();
        if let Some(rec) = state.transaction(&id)
            && rec.status.is_final()
        {
            return Ok((index_header(rec.revision), Json(convert::view(rec))).into_response());
        }
    }
    accepted(&node, &id)
}

fn accepted(node: &SharedNode, id: &str) -> ApiResult<Response> {
    let state = node.state();
    let rec = state
        .transaction(id)
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))?;
    Ok((
        StatusCode::ACCEPTED,
        index_header(rec.revision),
        Json(TxnAccepted {
            id: rec.id.clone(),
            status: rec.status,
        }),
    )
        .into_response())
}

/// `GET /v1/transactions/{id}`
pub async fn get(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    validate::txn_id("id", &id)?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let rec = state
        .transaction(&id)
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))?;
    Ok((meta, index_header(rec.revision), Json(convert::view(rec))))
}

/// `GET /v1/transactions?status=&limit=&after=`
pub async fn list(State(node): State<SharedNode>, params: Params) -> ApiResult<impl IntoResponse> {
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(TxnStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                format!(
                    "status must be one of running, trying, aborting, succeeded, aborted, stuck, resolved; got {s:?}"
                ),
            )
        })?),
    };
    let limit = params.u64("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1-{MAX_LIMIT}"),
        ));
    }
    let after = params.get("after").map(str::to_owned);
    if let Some(a) = &after {
        validate::txn_id("after", a)?;
    }
    let meta = node.read(&params).await?;
    let state = node.state();
    let mut matching = state
        .txns_after(after.as_deref())
        .filter(|t| status.is_none_or(|s| t.status == s));
    let transactions: Vec<_> = matching
        .by_ref()
        .take(limit as usize)
        .map(convert::summary)
        .collect();
    let next = if matching.next().is_some() {
        transactions.last().map(|t| t.id.clone())
    } else {
        None
    };
    let revision = state.revision();
    Ok((
        meta,
        index_header(revision),
        Json(TxnList {
            transactions,
            next,
            revision,
        }),
    ))
}

/// The record, read linearizably, or 404.
async fn record(node: &SharedNode, id: &str) -> ApiResult<TxnRecord> {
    validate::txn_id("id", id)?;
    node.read(&Params::parse("")).await?;
    node.state()
        .transaction(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))
}

/// `POST /v1/transactions/{id}/branches`: adds a TCC branch, waits for its try and
/// answers how it went: 200 tried, 409 refused, 502 failed for good, 202 still trying.
pub async fn branch(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<BranchRequest>,
) -> ApiResult<Response> {
    validate::branch(&request)?;
    let rec = record(&node, &id).await?;
    let step = convert::new_branch(&request, &rec)?;
    let name = step.name.clone();
    let limit = Duration::from_millis(rec.timeout_ms);
    write(
        &node,
        Command::TxnBranch {
            id: id.clone(),
            step,
            at_ms: now_ms(),
        },
    )
    .await?;
    let settled = |s: &StateMachine| {
        s.transaction(&id).is_none_or(|t| {
            t.status != TxnStatus::Trying
                || t.steps
                    .iter()
                    .find(|b| b.name == name)
                    .is_none_or(|b| !b.fwd.busy())
        })
    };
    wait_for(&node, limit, settled).await;
    let state = node.state();
    let rec = state
        .transaction(&id)
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))?;
    let Some(b) = rec.steps.iter().find(|b| b.name == name) else {
        return Err(ApiError::internal("the branch vanished"));
    };
    let last_error = || {
        rec.history
            .iter()
            .rev()
            .find(|h| {
                h.step
                    .and_then(|i| rec.steps.get(i as usize))
                    .is_some_and(|s| s.name == name)
            })
            .and_then(|h| h.error.clone())
            .unwrap_or_default()
    };
    let (status, word) = match b.fwd.state {
        SlotState::Done => (StatusCode::OK, "succeeded"),
        SlotState::Refused => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("branch {name:?} try was refused: {}", last_error()),
            ));
        }
        SlotState::Exhausted => {
            return Err(ApiError::new(
                ErrorCode::BadGateway,
                format!(
                    "branch {name:?} try failed after {} attempts: {}",
                    b.fwd.attempts,
                    last_error()
                ),
            ));
        }
        _ => (StatusCode::ACCEPTED, "running"),
    };
    Ok((
        status,
        index_header(rec.revision),
        Json(serde_json::json!({"name": name, "status": word, "transaction": rec.status})),
    )
        .into_response())
}

/// Optional body of commit and abort.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// Wait for the outcome (default true).
    #[serde(default)]
    wait: Option<bool>,
    /// Abort only: why.
    #[serde(default)]
    reason: Option<String>,
}

fn decision_body(body: &[u8]) -> ApiResult<DecisionBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    parse_json(body)
}

async fn decide_and_wait(
    node: SharedNode,
    id: String,
    decision: TxnDecision,
    wait: bool,
) -> ApiResult<Response> {
    let rec = record(&node, &id).await?;
    write(
        &node,
        Command::TxnDecide {
            id: id.clone(),
            decision,
            at_ms: now_ms(),
        },
    )
    .await?;
    if wait {
        let limit = Duration::from_millis(rec.timeout_ms);
        wait_for(&node, limit, |s| is_final(s, &id)).await;
    }
    answer(&node, &id, false)
}

/// `POST /v1/transactions/{id}/commit` (TCC)
pub async fn commit(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let body = decision_body(&body)?;
    if body.reason.is_some() {
        return Err(ApiError::invalid("reason", "commit takes no reason"));
    }
    decide_and_wait(node, id, TxnDecision::Commit, body.wait.unwrap_or(true)).await
}

/// `POST /v1/transactions/{id}/abort`
pub async fn abort(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let body = decision_body(&body)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "aborted by the client".to_owned());
    if reason.len() > 1024 {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 1024 characters",
        ));
    }
    decide_and_wait(
        node,
        id,
        TxnDecision::Abort { reason },
        body.wait.unwrap_or(true),
    )
    .await
}

/// `POST /v1/transactions/{id}/retry`: fresh attempts for a stuck transaction.
pub async fn retry(State(node): State<SharedNode>, Path(id): Path<String>) -> ApiResult<Response> {
    record(&node, &id).await?;
    write(
        &node,
        Command::TxnDecide {
            id: id.clone(),
            decision: TxnDecision::Retry,
            at_ms: now_ms(),
        },
    )
    .await?;
    status_only(&node, &id)
}

/// `POST /v1/transactions/{id}/resolve`: an operator closes it, with a reason.
pub async fn resolve(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ResolveRequest>,
) -> ApiResult<Response> {
    validate::resolve(&request)?;
    record(&node, &id).await?;
    write(
        &node,
        Command::TxnDecide {
            id: id.clone(),
            decision: TxnDecision::Resolve {
                reason: request.reason,
            },
            at_ms: now_ms(),
        },
    )
    .await?;
    status_only(&node, &id)
}

/// 200 `{"id","status"}`.
fn status_only(node: &SharedNode, id: &str) -> ApiResult<Response> {
    let state = node.state();
    let rec = state
        .transaction(id)
        .ok_or_else(|| ApiError::not_found(format!("transaction {id:?} not found")))?;
    Ok((
        index_header(rec.revision),
        Json(TxnAccepted {
            id: rec.id.clone(),
            status: rec.status,
        }),
    )
        .into_response())
}
