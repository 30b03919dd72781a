//! Gateway routes: `PUT|GET|DELETE /v1/gateway/routes/{name}`, `GET /v1/gateway/routes`.
//!
//! A route is validated here, before it is proposed, so an invalid route never
//! reaches the log or a gateway.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use concord_api::gateway::{RouteList, RouteSpec, StoredRoute};
use concord_api::registry::RevisionResponse;
use concord_api::validate;
use concord_state::{Command, Outcome, RouteEntry};

use super::index_header;
use super::registry::unexpected;
use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::{JsonBody, Params};

/// `PUT /v1/gateway/routes/{name}`
pub async fn put(
    State(node): State<SharedNode>,
    Path(name): Path<String>,
    JsonBody(route): JsonBody<RouteSpec>,
) -> ApiResult<impl IntoResponse> {
    validate::route_name(&name)?;
    validate::route(&route)?;
    let json = serde_json::to_string(&route)
        .map_err(|e| ApiError::internal(format!("cannot encode the route: {e}")))?;
    match node.write(Command::RoutePut { name, json }).await? {
        Outcome::RouteChanged { revision } => {
            Ok((index_header(revision), Json(RevisionResponse { revision })))
        }
        other => Err(unexpected(other)),
    }
}

/// `DELETE /v1/gateway/routes/{name}`
pub async fn delete(
    State(node): State<SharedNode>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    validate::route_name(&name)?;
    match node.write(Command::RouteDelete { name }).await? {
        Outcome::RouteChanged { revision } => {
            Ok((index_header(revision), Json(RevisionResponse { revision })))
        }
        other => Err(unexpected(other)),
    }
}

/// A stored route as the API returns it.
pub(super) fn stored(name: &str, entry: &RouteEntry) -> ApiResult<StoredRoute> {
    let route = serde_json::from_str(&entry.json)
        .map_err(|e| ApiError::internal(format!("stored route {name:?} does not decode: {e}")))?;
    Ok(StoredRoute {
        name: name.to_owned(),
        route,
        revision: entry.revision,
    })
}

/// `GET /v1/gateway/routes/{name}`
pub async fn get(
    State(node): State<SharedNode>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    validate::route_name(&name)?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let entry = state
        .route(&name)
        .ok_or_else(|| ApiError::not_found(format!("route {name:?} not found")))?;
    let route = stored(&name, entry)?;
    Ok((meta, index_header(state.revision()), Json(route)))
}

/// `GET /v1/gateway/routes`
pub async fn list(State(node): State<SharedNode>, params: Params) -> ApiResult<impl IntoResponse> {
    let meta = node.read(&params).await?;
    let state = node.state();
    let revision = state.revision();
    let routes = state
        .routes()
        .map(|(name, entry)| stored(name, entry))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((
        meta,
        index_header(revision),
        Json(RouteList { revision, routes }),
    ))
}
