//! Key-value endpoints. The key is the rest of the path, percent-decoded.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use concord_api::kv::{DeleteResponse, KvItem, KvKeys, KvList, encode_value};
use concord_api::lease::format_lease_id;
use concord_api::registry::RevisionResponse;
use concord_api::{ErrorCode, MOD_REVISION_HEADER, validate};
use concord_state::{Command, KvEntry, Outcome};

use super::index_header;
use super::registry::unexpected;
use crate::error::{ApiError, ApiResult};
use crate::node::{Node, SharedNode};
use crate::params::{Params, RawBody};

/// The API's view of a stored entry.
pub fn item(key: &str, e: &KvEntry) -> KvItem {
    let (value, value_base64) = encode_value(&e.value);
    KvItem {
        key: key.to_owned(),
        value,
        value_base64,
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        version: e.version,
        lease: e.lease.map(format_lease_id),
    }
}

/// `PUT /v1/kv/{key}?cas=R&lease=ID`
pub async fn put(
    State(node): State<SharedNode>,
    Path(key): Path<String>,
    params: Params,
    RawBody(body): RawBody,
) -> ApiResult<impl IntoResponse> {
    validate::key(&key)?;
    check_value_size(&node, body.len())?;
    let cas = params.u64("cas")?;
    let lease = params
        .get("lease")
        .map(|l| Node::parse_lease("lease", l))
        .transpose()?;
    let cmd = Command::Put {
        key,
        value: body.to_vec(),
        lease,
        cas,
    };
    match node.write(cmd).await? {
        Outcome::Put { revision } => {
            Ok((index_header(revision), Json(RevisionResponse { revision })))
        }
        other => Err(unexpected(other)),
    }
}

/// 413 for values over the configured limit.
pub fn check_value_size(node: &Node, len: usize) -> ApiResult<()> {
    let max = node.config.max_value_bytes;
    if len > max {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("the value is {len} bytes; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// `GET /v1/kv/{key}` with `raw`, `prefix`, `keys`, `limit`.
pub async fn get(
    State(node): State<SharedNode>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    read(node, key, params).await
}

/// `GET /v1/kv?prefix=true`: the whole keyspace (the empty prefix).
pub async fn get_root(State(node): State<SharedNode>, params: Params) -> ApiResult<Response> {
    read(node, String::new(), params).await
}

async fn read(node: SharedNode, key: String, params: Params) -> ApiResult<Response> {
    let keys_only = params.flag("keys")?;
    // `keys=true` lists, as Consul's `?keys` does, so it implies a prefix read.
    let prefix = params.flag("prefix")? || keys_only;
    let raw = params.flag("raw")?;
    let limit = params.u64("limit")?.map(|l| l as usize);
    // The empty prefix (the whole keyspace) is the one key that may be empty.
    if !prefix || key.len() > validate::MAX_KEY_BYTES {
        validate::key(&key)?;
    }
    if prefix && raw {
        return Err(ApiError::invalid(
            "raw",
            "raw=true reads one key; it cannot be combined with prefix=true",
        ));
    }
    let meta = node.read(&params).await?;
    let state = node.state();
    let revision = state.revision();
    if prefix {
        let entries = state.kv_range(&key, limit);
        let body = if keys_only {
            Json(KvKeys {
                revision,
                keys: entries.iter().map(|(k, _)| (*k).to_owned()).collect(),
            })
            .into_response()
        } else {
            Json(KvList {
                revision,
                items: entries.iter().map(|(k, e)| item(k, e)).collect(),
            })
            .into_response()
        };
        return Ok((meta, index_header(revision), body).into_response());
    }
    let entry = state
        .kv_get(&key)
        .ok_or_else(|| ApiError::not_found(format!("key {key:?} not found")))?;
    if raw {
        let headers = [
            (concord_api::INDEX_HEADER, revision.to_string()),
            (MOD_REVISION_HEADER, entry.mod_revision.to_string()),
            (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
        ];
        return Ok((meta, headers, Body::from(entry.value.clone())).into_response());
    }
    Ok((meta, index_header(revision), Json(item(&key, entry))).into_response())
}

/// `DELETE /v1/kv/{key}?prefix=true&cas=R`
pub async fn delete(
    State(node): State<SharedNode>,
    Path(key): Path<String>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    remove(node, key, params).await
}

/// `DELETE /v1/kv?prefix=true`: deletes the whole keyspace (needs `prefix=true`).
pub async fn delete_root(
    State(node): State<SharedNode>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    remove(node, String::new(), params).await
}

async fn remove(node: SharedNode, key: String, params: Params) -> ApiResult<impl IntoResponse> {
    let prefix = params.flag("prefix")?;
    let cas = params.u64("cas")?;
    if !prefix || key.len() > validate::MAX_KEY_BYTES {
        validate::key(&key)?;
    }
    if prefix && cas.is_some() {
        return Err(ApiError::invalid(
            "cas",
            "cas applies to a single key; it cannot be combined with prefix=true",
        ));
    }
    match node.write(Command::Delete { key, prefix, cas }).await? {
        Outcome::Deleted { revision, deleted } => Ok((
            index_header(revision),
            Json(DeleteResponse { revision, deleted }),
        )),
        other => Err(unexpected(other)),
    }
}
