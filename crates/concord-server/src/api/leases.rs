//! Lease endpoints. Grant and revoke go through the log; keepalives stay in the leader's memory.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use concord_api::lease::{LeaseGrant, LeaseGrantRequest, LeaseInfo, format_lease_id};
use concord_api::registry::RevisionResponse;
use concord_api::validate;
use concord_state::{Command, Outcome};

use super::index_header;
use super::registry::{not_leader, unexpected};
use crate::error::{ApiError, ApiResult};
use crate::leases::Keepalive;
use crate::node::{Node, SharedNode};
use crate::params::{JsonBody, Params};

fn lease_not_found(id: u64) -> ApiError {
    ApiError::not_found(format!(
        "lease {} not found (revoked or expired)",
        format_lease_id(id)
    ))
}

/// `POST /v1/leases {"ttl_secs":10}`
pub async fn grant(
    State(node): State<SharedNode>,
    JsonBody(req): JsonBody<LeaseGrantRequest>,
) -> ApiResult<impl IntoResponse> {
    validate::ttl_secs("ttl_secs", req.ttl_secs)?;
    match node
        .write(Command::LeaseGrant {
            ttl_secs: req.ttl_secs,
        })
        .await?
    {
        Outcome::LeaseGranted {
            revision,
            id,
            ttl_secs,
        } => {
            node.leases
                .granted(node.leading_term(), id, ttl_secs, Instant::now());
            Ok((
                index_header(revision),
                Json(LeaseGrant {
                    id: format_lease_id(id),
                    ttl_secs,
                    revision: Some(revision),
                }),
            ))
        }
        other => Err(unexpected(other)),
    }
}

/// `PUT /v1/leases/{id}/keepalive`
pub async fn keepalive(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = Node::parse_lease("id", &id)?;
    let ttl = node
        .state()
        .lease(id)
        .map(|l| l.ttl_secs)
        .ok_or_else(|| lease_not_found(id))?;
    match node
        .leases
        .keepalive(node.leading_term(), id, ttl, Instant::now())
    {
        Keepalive::Renewed => Ok(Json(LeaseGrant {
            id: format_lease_id(id),
            ttl_secs: ttl,
            revision: None,
        })),
        Keepalive::Expired => Err(lease_not_found(id)),
        Keepalive::NotLeader => Err(not_leader(&node)),
    }
}

/// `GET /v1/leases/{id}`: the remaining time is the leader's view.
pub async fn info(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let id = Node::parse_lease("id", &id)?;
    let meta = node.read(&params).await?;
    let (ttl_secs, keys) = {
        let state = node.state();
        let lease = state.lease(id).ok_or_else(|| lease_not_found(id))?;
        (
            lease.ttl_secs,
            lease.keys.iter().cloned().collect::<Vec<_>>(),
        )
    };
    let remaining = node
        .leases
        .remaining(node.leading_term(), id, ttl_secs, Instant::now())
        .ok_or_else(|| not_leader(&node))?;
    Ok((
        meta,
        Json(LeaseInfo {
            id: format_lease_id(id),
            ttl_secs,
            remaining_ms: remaining.as_millis() as u64,
            keys,
        }),
    ))
}

/// `DELETE /v1/leases/{id}`: deletes every key and instance bound to the lease.
pub async fn revoke(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = Node::parse_lease("id", &id)?;
    match node.write(Command::LeaseRevoke { id }).await? {
        Outcome::LeaseRevoked { revision } => {
            Ok((index_header(revision), Json(RevisionResponse { revision })))
        }
        other => Err(unexpected(other)),
    }
}
