//! Cluster membership endpoints: list, add (as a learner, promoted automatically
//! once caught up), remove. Changes need the leader; listing is this node's view.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use concord_api::ErrorCode;
use concord_api::cluster::{AddMemberRequest, ClusterMember, MemberRole, MembersResponse};
use concord_api::validate;
use concord_raft::{MembershipError, NodeInfo};

use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::JsonBody;

/// Deadline for one membership change (it may first wait for another to finish).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `"voter": true` waits for the new member to catch up and be promoted.
const VOTER_TIMEOUT: Duration = Duration::from_secs(60);

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::Invalid(m) => ApiError::new(ErrorCode::InvalidArgument, m),
            MembershipError::UnknownMember(_) => ApiError::not_found(e.to_string()),
            MembershipError::Raft(p) => p.into(),
        }
    }
}

/// `GET /v1/cluster/members`: answered locally, without a leader.
pub async fn list(State(node): State<SharedNode>) -> Json<MembersResponse> {
    Json(members(&node).await)
}

/// `POST /v1/cluster/members {"id","peer_addr","client_addr","voter"?}`
pub async fn add(
    State(node): State<SharedNode>,
    JsonBody(req): JsonBody<AddMemberRequest>,
) -> ApiResult<Json<MembersResponse>> {
    validate::add_member(&req)?;
    let id = req.id;
    let info = NodeInfo {
        peer_addr: req.peer_addr,
        client_addr: req.client_addr,
    };
    if req.voter {
        let add_and_promote = async {
            node.raft.add_learner(id, info, true).await?;
            node.raft.promote(id).await
        };
        tokio::time::timeout(VOTER_TIMEOUT, add_and_promote)
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {id} was added as a learner but did not catch up within {} s; it is promoted automatically once it does",
                        VOTER_TIMEOUT.as_secs()
                    ),
                )
            })??;
    } else {
        tokio::time::timeout(CHANGE_TIMEOUT, node.raft.add_learner(id, info, false))
            .await
            .map_err(|_| change_timed_out())??;
    }
    Ok(Json(members(&node).await))
}

/// `DELETE /v1/cluster/members/{id}`
pub async fn remove(
    State(node): State<SharedNode>,
    Path(id): Path<String>,
) -> ApiResult<Json<MembersResponse>> {
    let id = match id.parse::<u64>() {
        Ok(id) if id > 0 => id,
        _ => {
            return Err(ApiError::invalid(
                "id",
                format!("member id must be a number greater than 0, got {id:?}"),
            ));
        }
    };
    tokio::time::timeout(CHANGE_TIMEOUT, node.raft.remove_member(id))
        .await
        .map_err(|_| change_timed_out())??;
    Ok(Json(members(&node).await))
}

fn change_timed_out() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the membership change was not committed in time; it may still take effect — list the members before retrying",
    )
}

/// This node's view of the members, client addresses looked up where the
/// membership lacks them (concurrently, each bounded; empty when unreachable).
pub async fn members(node: &SharedNode) -> MembersResponse {
    let st = node.raft.status();
    let lookups = st.members.iter().map(|m| async move {
        if m.client_addr.is_empty() {
            node.raft.client_addr_of(m.id).await.unwrap_or_default()
        } else {
            m.client_addr.clone()
        }
    });
    let client_addrs = futures::future::join_all(lookups).await;
    let members = st
        .members
        .iter()
        .zip(client_addrs)
        .map(|(m, client_addr)| ClusterMember {
            id: m.id,
            peer_addr: m.peer_addr.clone(),
            client_addr,
            role: if m.voter {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            },
            is_leader: st.leader_id == Some(m.id),
        })
        .collect();
    MembersResponse { members }
}
