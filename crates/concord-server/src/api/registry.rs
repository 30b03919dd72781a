//! Registry endpoints: register, heartbeat, deregister, list, discover (with blocking
//! queries and filters), namespaces. Every call takes `?namespace=` (default `default`).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use concord_api::registry::{
    HealthStatus, HeartbeatResponse, Instance, InstanceFilter, InstanceSpec, NamespaceList,
    NamespaceSummary, RegisterResponse, RevisionResponse, ServiceDetail, ServiceList,
    ServiceSummary,
};
use concord_api::validate;
use concord_state::{Command, InstanceRef, Outcome};

use super::index_header;
use crate::error::{ApiError, ApiResult};
use crate::leases::Keepalive;
use crate::node::SharedNode;
use crate::params::{JsonBody, Params};

/// Longest a blocking query may wait, as Consul allows.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Wait used when `index` is given without `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The instance a request names, with every part validated.
pub(super) fn instance_ref(params: &Params, service: &str, id: &str) -> ApiResult<InstanceRef> {
    let namespace = params.namespace()?;
    validate::service_name(service)?;
    validate::instance_id(id)?;
    Ok(InstanceRef::new(&namespace, service, id))
}

/// `PUT /v1/services/{service}/instances/{id}`
pub async fn register(
    State(node): State<SharedNode>,
    Path((service, id)): Path<(String, String)>,
    params: Params,
    JsonBody(spec): JsonBody<InstanceSpec>,
) -> ApiResult<impl IntoResponse> {
    let at = instance_ref(&params, &service, &id)?;
    validate::instance_spec(&spec)?;
    let outcome = node.write(Command::Register { at, spec }).await?;
    match outcome {
        Outcome::Registered {
            revision,
            instance,
            lease,
        } => {
            if let (Some(lease), Some(ttl)) = (lease, instance.ttl_secs) {
                node.leases
                    .granted(node.leading_term(), lease, ttl, Instant::now());
            }
            Ok((
                index_header(revision),
                Json(RegisterResponse { revision, instance }),
            ))
        }
        other => Err(unexpected(other)),
    }
}

/// `PUT /v1/services/{service}/instances/{id}/heartbeat`: renews the instance's lease in
/// the leader's memory; nothing is written to the log.
pub async fn heartbeat(
    State(node): State<SharedNode>,
    Path((service, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let at = instance_ref(&params, &service, &id)?;
    let (revision, lease) = {
        let state = node.state();
        let record = state
            .instance(&at.namespace, &at.service, &at.id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "instance {service}/{id} is not registered in namespace {} (or has expired); register it again",
                    at.namespace
                ))
            })?;
        let lease = record.lease.zip(record.instance.ttl_secs);
        (state.revision(), lease)
    };
    let Some((lease, ttl)) = lease else {
        return Err(ApiError::invalid(
            "id",
            format!(
                "instance {service}/{id} is persistent (registered without ttl_secs); heartbeats are for ephemeral instances"
            ),
        ));
    };
    match node
        .leases
        .keepalive(node.leading_term(), lease, ttl, Instant::now())
    {
        Keepalive::Renewed => Ok((
            index_header(revision),
            Json(HeartbeatResponse {
                revision,
                ttl_secs: ttl,
            }),
        )),
        Keepalive::Expired => Err(ApiError::not_found(format!(
            "instance {service}/{id} has expired; register it again"
        ))),
        Keepalive::NotLeader => Err(not_leader(&node)),
    }
}

/// `DELETE /v1/services/{service}/instances/{id}`
pub async fn deregister(
    State(node): State<SharedNode>,
    Path((service, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let at = instance_ref(&params, &service, &id)?;
    match node.write(Command::Deregister { at }).await? {
        Outcome::Deregistered { revision } => {
            Ok((index_header(revision), Json(RevisionResponse { revision })))
        }
        other => Err(unexpected(other)),
    }
}

/// `GET /v1/services?namespace=NS`
pub async fn list(State(node): State<SharedNode>, params: Params) -> ApiResult<impl IntoResponse> {
    let namespace = params.namespace()?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let revision = state.revision();
    let services = state
        .services(&namespace)
        .map(|(name, s)| ServiceSummary {
            name: name.to_owned(),
            instances: s.instances.len(),
            passing: s
                .instances
                .values()
                .filter(|r| r.instance.status == HealthStatus::Passing)
                .count(),
        })
        .collect();
    Ok((
        meta,
        index_header(revision),
        Json(ServiceList {
            revision,
            namespace,
            services,
        }),
    ))
}

/// `GET /v1/namespaces`
pub async fn namespaces(
    State(node): State<SharedNode>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let meta = node.read(&params).await?;
    let state = node.state();
    let revision = state.revision();
    let namespaces = state
        .namespaces()
        .into_iter()
        .map(|ns| {
            let (services, instances) = state
                .services(ns)
                .fold((0, 0), |(s, i), (_, svc)| (s + 1, i + svc.instances.len()));
            NamespaceSummary {
                name: ns.to_owned(),
                services,
                instances,
            }
        })
        .collect();
    Ok((
        meta,
        index_header(revision),
        Json(NamespaceList {
            revision,
            namespaces,
        }),
    ))
}

/// The discovery filters of a query: `passing=true`, `tag=` (repeatable),
/// `meta=KEY:VALUE` (repeatable).
pub(super) fn filter(params: &Params) -> ApiResult<InstanceFilter> {
    let meta = params
        .all("meta")
        .into_iter()
        .map(|m| {
            m.split_once(':')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    ApiError::invalid("meta", format!("meta filter {m:?} must be KEY:VALUE"))
                })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(InstanceFilter {
        passing: params.flag("passing")?,
        tags: params.all("tag").into_iter().map(str::to_owned).collect(),
        meta,
    })
}

/// `GET /v1/services/{service}?namespace=&passing=true&tag=..&meta=k:v&index=M&wait=30s`
pub async fn get(
    State(node): State<SharedNode>,
    Path(service): Path<String>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let namespace = params.namespace()?;
    validate::service_name(&service)?;
    let filter = filter(&params)?;
    let index = params.u64("index")?;
    let wait = params
        .duration("wait")?
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let meta = node.read(&params).await?;
    if let Some(index) = index {
        wait_for_change(&node, &namespace, &service, index, wait).await;
    }
    let state = node.state();
    let revision = state.revision();
    let instances: Vec<Instance> = state
        .service(&namespace, &service)
        .map(|s| {
            s.instances
                .values()
                .map(|r| &r.instance)
                .filter(|i| filter.matches(i))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok((
        meta,
        index_header(revision),
        Json(ServiceDetail {
            revision,
            namespace,
            name: service,
            instances,
        }),
    ))
}

/// Returns once the service changed after `index`, or when `wait` runs out.
async fn wait_for_change(
    node: &SharedNode,
    namespace: &str,
    service: &str,
    index: u64,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut applied = node.raft.applied();
    loop {
        if node.state().service_mod_revision(namespace, service) > index {
            return;
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// A 503 that names the leader when one is known.
pub fn not_leader(node: &SharedNode) -> ApiError {
    let st = node.raft.status();
    let leader = st.leader_id.and_then(|id| {
        st.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| (id, m.client_addr.clone()))
    });
    concord_raft::ProposeError::NotLeader {
        leader_id: leader.as_ref().map(|l| l.0),
        leader_client_addr: leader.map(|l| l.1),
    }
    .into()
}

/// An outcome that does not match its command: a bug, reported rather than panicked on.
pub fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::internal(format!(
        "unexpected outcome from the state machine: {outcome:?}"
    ))
}
