//! Configuration center endpoints: `/v1/config/{namespace}/{group}/{id}` and friends.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use concord_api::config::{
    ConfigFormat, ConfigItem, ConfigList, ConfigSummary, ConfigVersionDetail, ConfigVersionSummary,
    GrayInfo, GrayRequest, PublishResponse, RollbackRequest,
};
use concord_api::{ErrorCode, validate};
use concord_state::{Command, ConfigEntry, ConfigKey, Outcome, PublishMeta};

use super::index_header;
use super::registry::unexpected;
use crate::configs::gray::Asker;
use crate::configs::{format, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::{JsonBody, Params};

/// Header carrying a publish's comment, recorded in history.
const COMMENT_HEADER: &str = "x-concord-comment";
/// Longest comment kept.
const MAX_COMMENT_BYTES: usize = 1024;
/// Longest a blocking read may wait.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Wait used when `index` is given without `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

fn key_of(ns: &str, group: &str, id: &str) -> ApiResult<ConfigKey> {
    validate::config_key(ns, group, id)?;
    Ok(ConfigKey::new(ns, group, id))
}

fn not_found(key: &ConfigKey) -> ApiError {
    ApiError::not_found(format!("config {key} not found"))
}

/// The content of a request body: UTF-8, within the size limit, parsing in `format`.
fn content_of(node: &SharedNode, body: &[u8], format: ConfigFormat) -> ApiResult<String> {
    if body.len() > node.config.max_value_bytes {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "the content is {} bytes; at most {} are allowed (max_value_bytes)",
                body.len(),
                node.config.max_value_bytes
            ),
        ));
    }
    let content = std::str::from_utf8(body)
        .map_err(|e| ApiError::invalid("content", format!("content must be UTF-8: {e}")))?;
    format::validate(format, content).map_err(|e| {
        let mut err = ApiError::invalid(
            "content",
            format!(
                "content is not valid {format}: line {}, column {}: {}",
                e.line, e.column, e.message
            ),
        );
        err.position = Some((e.line, e.column));
        err
    })?;
    Ok(content.to_owned())
}

fn publish_meta(node: &SharedNode, headers: &HeaderMap) -> ApiResult<PublishMeta> {
    let comment = match headers.get(COMMENT_HEADER) {
        None => String::new(),
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::invalid("X-Concord-Comment", "the comment must be ASCII"))?
            .to_owned(),
    };
    if comment.len() > MAX_COMMENT_BYTES {
        return Err(ApiError::invalid(
            "X-Concord-Comment",
            format!("the comment must be at most {MAX_COMMENT_BYTES} bytes"),
        ));
    }
    Ok(PublishMeta {
        comment,
        at_ms: now_ms(),
        keep: u32::try_from(node.config.config_history).unwrap_or(u32::MAX),
    })
}

/// `{"revision":N}` for a delete or a gray change.
fn revision_only(outcome: Outcome) -> ApiResult<Response> {
    match outcome {
        Outcome::ConfigDeleted { revision } | Outcome::ConfigGray { revision } => Ok((
            index_header(revision),
            Json(concord_api::registry::RevisionResponse { revision }),
        )
            .into_response()),
        other => Err(unexpected(other)),
    }
}

fn published(outcome: Outcome) -> ApiResult<Response> {
    match outcome {
        Outcome::ConfigPublished {
            revision,
            version,
            sha256,
        } => Ok((
            index_header(revision),
            Json(PublishResponse {
                version,
                revision,
                sha256,
            }),
        )
            .into_response()),
        other => Err(unexpected(other)),
    }
}

/// `PUT /v1/config/{namespace}/{group}/{id}?format=yaml&cas=V`, body = the content.
pub async fn put(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let format = match params.get("format") {
        Some(f) => f
            .parse::<ConfigFormat>()
            .map_err(|e| ApiError::invalid("format", e))?,
        // An existing item keeps its format; a new one is text.
        None => node
            .state()
            .config(&key)
            .and_then(|e| e.current())
            .map_or(ConfigFormat::Text, |c| c.format),
    };
    let cas = params.u64("cas")?;
    let content = content_of(&node, &body, format)?;
    let sha256 = format::sha256(&content);
    let meta = publish_meta(&node, &headers)?;
    let outcome = node
        .write(Command::ConfigPublish {
            key,
            format,
            content,
            sha256,
            cas,
            meta,
        })
        .await?;
    node.metrics.config_publishes.inc();
    published(outcome)
}

/// The item as `GET` answers it, gray-aware for `asker`.
fn item_view(key: &ConfigKey, entry: &ConfigEntry, gray: bool) -> Option<ConfigItem> {
    let current = entry.current()?;
    let (content, sha256, revision, at_ms) = match (&entry.gray, gray) {
        (Some(g), true) => (
            g.content.clone(),
            g.sha256.clone(),
            entry.mod_revision,
            g.at_ms,
        ),
        _ => (
            current.content.clone(),
            current.sha256.clone(),
            entry.mod_revision,
            current.at_ms,
        ),
    };
    Some(ConfigItem {
        namespace: key.namespace.clone(),
        group: key.group.clone(),
        id: key.id.clone(),
        format: current.format,
        content,
        version: current.version,
        sha256,
        revision,
        updated_at: rfc3339(at_ms),
        gray,
    })
}

/// `GET /v1/config/{namespace}/{group}/{id}` with `?raw=true`, `?instance=SERVICE/ID`
/// (`&instance_namespace=`), and blocking `?index=M&wait=30s`.
pub async fn get(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let asker = asker(&params, &ns)?;
    let raw = params.flag("raw")?;
    let index = params.u64("index")?;
    let wait = params
        .duration("wait")?
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let meta = node.read(&params).await?;
    if let Some(index) = index {
        wait_for_change(&node, &key, index, wait).await;
    }
    let state = node.state();
    let revision = state.revision();
    let entry = state.config(&key).ok_or_else(|| not_found(&key))?;
    let gray = match (&asker, &entry.gray) {
        (Some(a), Some(g)) => a.selected(&state, &g.selector),
        _ => false,
    };
    let item = item_view(&key, entry, gray).ok_or_else(|| not_found(&key))?;
    drop(state);
    if raw {
        let mut resp = (meta, index_header(item.revision.max(1)), item.content).into_response();
        resp.headers_mut().insert(
            CONTENT_TYPE,
            axum::http::HeaderValue::from_static(item.format.content_type()),
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&item.version.to_string()) {
            resp.headers_mut().insert("x-concord-config-version", v);
        }
        return Ok(resp);
    }
    let _ = revision;
    Ok((meta, index_header(item.revision), Json(item)).into_response())
}

fn asker(params: &Params, ns: &str) -> ApiResult<Option<Asker>> {
    let Some(spec) = params.get("instance") else {
        return Ok(None);
    };
    let registry_ns = params.get("instance_namespace").unwrap_or(ns);
    validate::namespace(registry_ns)?;
    Asker::parse(spec, registry_ns)
        .map(Some)
        .ok_or_else(|| ApiError::invalid("instance", "instance must be SERVICE/ID"))
}

/// Returns once the item changed after `index`, or when `wait` runs out.
async fn wait_for_change(node: &SharedNode, key: &ConfigKey, index: u64, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut applied = node.raft.applied();
    loop {
        if node
            .state()
            .config(key)
            .is_some_and(|e| e.mod_revision > index)
        {
            return;
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// `DELETE /v1/config/{namespace}/{group}/{id}`
pub async fn delete(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let outcome = node
        .write(Command::ConfigDelete {
            key,
            at_ms: now_ms(),
        })
        .await?;
    revision_only(outcome)
}

/// `GET /v1/config/{namespace}?group=G`
pub async fn list(
    State(node): State<SharedNode>,
    Path(ns): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    validate::namespace(&ns)?;
    let group = params.get("group").map(str::to_owned);
    if let Some(g) = &group {
        validate::config_key(&ns, g, "x")?;
    }
    let meta = node.read(&params).await?;
    let state = node.state();
    let revision = state.revision();
    let items = state
        .configs_in(&ns, group.as_deref())
        .filter_map(|(k, e)| {
            let c = e.current()?;
            Some(ConfigSummary {
                id: k.id.clone(),
                group: k.group.clone(),
                format: c.format,
                version: c.version,
                updated_at: rfc3339(c.at_ms),
                gray: e.gray.is_some(),
            })
        })
        .collect();
    Ok((
        meta,
        index_header(revision),
        Json(ConfigList {
            revision,
            namespace: ns,
            items,
        }),
    )
        .into_response())
}

/// `GET /v1/config/{namespace}/{group}/{id}/history`: kept versions, newest first.
pub async fn history(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let entry = state
        .config(&key)
        .filter(|e| e.live)
        .ok_or_else(|| not_found(&key))?;
    let versions: Vec<ConfigVersionSummary> = entry
        .history
        .iter()
        .map(|v| ConfigVersionSummary {
            version: v.version,
            sha256: v.sha256.clone(),
            comment: v.comment.clone(),
            updated_at: rfc3339(v.at_ms),
            revision: v.revision,
        })
        .collect();
    Ok((meta, index_header(state.revision()), Json(versions)).into_response())
}

/// `GET /v1/config/{namespace}/{group}/{id}/history/{version}`
pub async fn history_version(
    State(node): State<SharedNode>,
    Path((ns, group, id, version)): Path<(String, String, String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::invalid("version", "version must be a number"))?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let v = state
        .config(&key)
        .filter(|e| e.live)
        .and_then(|e| e.history.iter().find(|v| v.version == version))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "config {key} has no version {version} in its history"
            ))
        })?;
    let detail = ConfigVersionDetail {
        version: v.version,
        format: v.format,
        content: v.content.clone(),
        sha256: v.sha256.clone(),
        comment: v.comment.clone(),
        updated_at: rfc3339(v.at_ms),
        revision: v.revision,
    };
    Ok((meta, index_header(state.revision()), Json(detail)).into_response())
}

/// `POST /v1/config/{namespace}/{group}/{id}/rollback {"version":V}`
pub async fn rollback(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let mut meta = publish_meta(&node, &headers)?;
    if meta.comment.is_empty() {
        meta.comment = format!("rollback to version {}", req.version);
    }
    let outcome = node
        .write(Command::ConfigRollback {
            key,
            version: req.version,
            meta,
        })
        .await?;
    node.metrics.config_publishes.inc();
    published(outcome)
}

/// `PUT /v1/config/{namespace}/{group}/{id}/gray {"content","selector"}`
pub async fn gray_put(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<GrayRequest>,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    if req.selector.is_empty() {
        return Err(ApiError::invalid(
            "selector",
            "the selector must name at least one instance, tag or meta pair",
        ));
    }
    for i in &req.selector.instances {
        if Asker::parse(i, &ns).is_none() {
            return Err(ApiError::invalid(
                "selector.instances",
                format!("{i:?} must be SERVICE/ID"),
            ));
        }
    }
    let format = node
        .state()
        .config(&key)
        .and_then(|e| e.current())
        .map(|c| c.format)
        .ok_or_else(|| not_found(&key))?;
    let content = content_of(&node, req.content.as_bytes(), format)?;
    let sha256 = format::sha256(&content);
    let outcome = node
        .write(Command::ConfigGray {
            key,
            content,
            sha256,
            selector: req.selector,
            at_ms: now_ms(),
        })
        .await?;
    revision_only(outcome)
}

/// `GET /v1/config/{namespace}/{group}/{id}/gray`: the staged candidate.
pub async fn gray_get(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let meta = node.read(&params).await?;
    let state = node.state();
    let g = state
        .config(&key)
        .and_then(|e| e.gray.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("config {key} has no gray release staged")))?;
    let info = GrayInfo {
        content: g.content.clone(),
        sha256: g.sha256.clone(),
        selector: g.selector.clone(),
        revision: g.revision,
        updated_at: rfc3339(g.at_ms),
    };
    Ok((meta, index_header(state.revision()), Json(info)).into_response())
}

/// `POST /v1/config/{namespace}/{group}/{id}/gray/promote`
pub async fn gray_promote(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let mut meta = publish_meta(&node, &headers)?;
    if meta.comment.is_empty() {
        meta.comment = "gray release promoted".to_owned();
    }
    let outcome = node.write(Command::ConfigGrayPromote { key, meta }).await?;
    node.metrics.config_publishes.inc();
    published(outcome)
}

/// `DELETE /v1/config/{namespace}/{group}/{id}/gray`
pub async fn gray_cancel(
    State(node): State<SharedNode>,
    Path((ns, group, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let key = key_of(&ns, &group, &id)?;
    let outcome = node
        .write(Command::ConfigGrayCancel {
            key,
            at_ms: now_ms(),
        })
        .await?;
    revision_only(outcome)
}
