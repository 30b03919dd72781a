//! Node endpoints: status, liveness, readiness, metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use concord_api::ErrorCode;
use concord_api::registry::HealthStatus;
use concord_api::status::{Member, Status};

use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;

/// `GET /v1/status`: this node's view; answered locally, without a leader.
/// Client addresses missing from the membership come from the lookup cache
/// (warmed in the background), so this never waits on the network.
pub async fn status(State(node): State<SharedNode>) -> Json<Status> {
    let st = node.raft.status();
    let revision = node.state().revision();
    Json(Status {
        node_id: st.node_id,
        leader_id: st.leader_id,
        term: st.term,
        revision,
        commit_index: st.commit_index,
        applied_index: st.applied_index,
        members: st
            .members
            .into_iter()
            .map(|m| Member {
                id: m.id,
                peer_addr: m.peer_addr,
                client_addr: m.client_addr,
                voter: m.voter,
            })
            .collect(),
    })
}

/// `GET /v1/health`: the process is alive and serving HTTP.
pub async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /v1/ready`: a leader is known and what was committed at start has been applied.
pub async fn ready(State(node): State<SharedNode>) -> ApiResult<impl IntoResponse> {
    if node.is_ready() && node.raft.status().leader_id.is_some() {
        Ok((StatusCode::OK, Json(serde_json::json!({"status": "ready"}))))
    } else {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "not ready: no leader yet, or still applying the log",
        ))
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(node): State<SharedNode>) -> impl IntoResponse {
    refresh_gauges(&node);
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.encode(),
    )
}

fn refresh_gauges(node: &SharedNode) {
    let st = node.raft.status();
    let m = &node.metrics;
    m.raft_term.set(st.term as i64);
    m.raft_leader.set(st.leader_id.unwrap_or(0) as i64);
    m.raft_commit_index.set(st.commit_index as i64);
    m.raft_applied_index.set(st.applied_index as i64);
    m.write_path.refresh(node.raft.write_stats());
    let state = node.state();
    m.revision.set(state.revision() as i64);
    m.kv_keys.set(state.kv_len() as i64);
    m.services.set(state.service_count() as i64);
    m.instances.set(state.instance_count() as i64);
    m.leases.set(state.leases().count() as i64);
    m.config_items.set(state.config_count() as i64);
    m.txn.refresh(&state);
    let mut by_status = [0i64; 3];
    for (_, record) in state.instances_with_health() {
        for check in &record.instance.checks {
            let slot = match check.status {
                HealthStatus::Passing => 0,
                HealthStatus::Warning => 1,
                _ => 2,
            };
            by_status[slot] += 1;
        }
    }
    for (status, count) in [
        HealthStatus::Passing,
        HealthStatus::Warning,
        HealthStatus::Critical,
    ]
    .into_iter()
    .zip(by_status)
    {
        m.checks
            .get_or_create(&crate::metrics::StatusLabels {
                status: status.as_str().to_owned(),
            })
            .set(count);
    }
}
