//! Health endpoints: maintenance mode and TTL check updates.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use concord_api::registry::{
    CheckType, CheckUpdateRequest, CheckUpdateResponse, HealthStatus, MaintenanceRequest,
    RegisterResponse,
};
use concord_api::validate;
use concord_state::{Command, Outcome};

use super::index_header;
use super::registry::{instance_ref, not_leader, unexpected};
use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::{JsonBody, Params, parse_json};

/// Longest reason or output kept.
const MAX_NOTE_BYTES: usize = 4096;

/// `PUT /v1/services/{service}/instances/{id}/maintenance {"enabled":true,"reason":"deploy"}`
pub async fn maintenance(
    State(node): State<SharedNode>,
    Path((service, id)): Path<(String, String)>,
    params: Params,
    JsonBody(req): JsonBody<MaintenanceRequest>,
) -> ApiResult<impl IntoResponse> {
    let at = instance_ref(&params, &service, &id)?;
    let reason = req.reason.unwrap_or_default();
    if reason.len() > MAX_NOTE_BYTES || reason.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "reason",
            format!("reason must be at most {MAX_NOTE_BYTES} bytes without control characters"),
        ));
    }
    let reason = req.enabled.then_some(reason);
    match node.write(Command::Maintenance { at, reason }).await? {
        Outcome::Maintenance { revision, instance } => Ok((
            index_header(revision),
            Json(RegisterResponse { revision, instance }),
        )),
        other => Err(unexpected(other)),
    }
}

/// `PUT /v1/services/{service}/instances/{id}/checks/{check}/{pass|warn|fail}`
/// with an optional `{"output":"..."}` body (or `?output=`): reports a TTL check.
///
/// Served by the leader (followers relay it), which restarts the check's TTL in
/// memory and logs a change only when the status moves.
pub async fn ttl_update(
    State(node): State<SharedNode>,
    Path((service, id, check, verb)): Path<(String, String, String, String)>,
    params: Params,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let at = instance_ref(&params, &service, &id)?;
    validate::check_id(&check)?;
    let status = match verb.as_str() {
        "pass" => HealthStatus::Passing,
        "warn" => HealthStatus::Warning,
        "fail" => HealthStatus::Critical,
        other => {
            return Err(ApiError::not_found(format!(
                "no such check update {other:?}; use pass, warn or fail"
            )));
        }
    };
    let req: CheckUpdateRequest = if body.is_empty() {
        CheckUpdateRequest::default()
    } else {
        parse_json(&body)?
    };
    let output = req
        .output
        .or_else(|| params.get("output").map(str::to_owned))
        .unwrap_or_else(|| format!("TTL update: {verb}"));
    if output.len() > MAX_NOTE_BYTES {
        return Err(ApiError::invalid(
            "output",
            format!("output must be at most {MAX_NOTE_BYTES} bytes"),
        ));
    }
    let (current, unchecked, revision) = {
        let state = node.state();
        let record = state
            .instance(&at.namespace, &at.service, &at.id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "instance {service}/{id} is not registered in namespace {}",
                    at.namespace
                ))
            })?;
        let spec = record
            .health
            .checks
            .iter()
            .find(|c| c.id == check)
            .ok_or_else(|| {
                ApiError::not_found(format!("instance {service}/{id} has no check {check:?}"))
            })?;
        if spec.kind != CheckType::Ttl {
            return Err(ApiError::invalid(
                "check",
                format!("check {check:?} is probed by the servers; only ttl checks take updates"),
            ));
        }
        let current = record
            .instance
            .checks
            .iter()
            .find(|c| c.id == check)
            .map_or(HealthStatus::Critical, |c| c.status);
        (current, record.unchecked.contains(&check), state.revision())
    };
    let key = (at.clone(), check.clone());
    if !node
        .health
        .ttl
        .restart(node.leading_term(), key, Instant::now())
    {
        return Err(not_leader(&node));
    }
    if current == status && !unchecked {
        return Ok((
            index_header(revision),
            Json(CheckUpdateResponse { revision, status }),
        ));
    }
    let cmd = Command::CheckStatus {
        at,
        check,
        status,
        output,
        expected: None,
    };
    match node.write(cmd).await? {
        Outcome::CheckStatus {
            revision, status, ..
        } => {
            node.metrics.observe_transition(status);
            Ok((
                index_header(revision),
                Json(CheckUpdateResponse { revision, status }),
            ))
        }
        other => Err(unexpected(other)),
    }
}
