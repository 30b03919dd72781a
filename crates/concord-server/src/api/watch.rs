//! `GET /v1/watch`: Server-Sent Events over the event history.
//!
//! Each event's SSE id is its revision, so a reconnecting EventSource resumes with
//! `Last-Event-ID` and sees every later event exactly once. Events come from the
//! state machine's bounded history, read after each applied batch, so a stream is
//! gap-free as long as it keeps up; one that falls behind the history gets a
//! `compacted` event and is closed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use concord_api::config::{ConfigEvent, ConfigEventKind};
use concord_api::gateway::{RouteEvent, RouteEventKind};
use concord_api::kv::encode_value;
use concord_api::validate;
use concord_api::watch::{KvEvent, ProgressEvent, ServiceEvent};
use concord_state::{ConfigKey, Event, EventKind, StateMachine};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::index_header;
use crate::configs::gray::Asker;
use crate::error::{ApiError, ApiResult};
use crate::node::SharedNode;
use crate::params::Params;

/// Events sent to one watcher per pass, so one busy stream cannot hold the state lock long.
const BATCH: usize = 1024;

/// What a stream follows.
#[derive(Clone)]
enum Filter {
    Prefix(String),
    /// Namespace and service.
    Service(String, String),
    /// One config item; with an instance, also the gray changes that target it.
    Config(ConfigKey, Option<Asker>),
    /// Every gateway route.
    Routes,
}

impl Filter {
    fn matches(&self, e: &Event, state: &StateMachine) -> bool {
        match (self, &e.kind) {
            (Filter::Routes, EventKind::Route { .. }) => true,
            (
                Filter::Config(want, asker),
                EventKind::Config {
                    key,
                    selector,
                    kind,
                    ..
                },
            ) => {
                if key != want {
                    return false;
                }
                match kind {
                    ConfigEventKind::Publish | ConfigEventKind::Delete => true,
                    ConfigEventKind::Gray | ConfigEventKind::GrayCancel => {
                        match (asker, selector) {
                            (Some(a), Some(sel)) => a.selected(state, sel),
                            _ => false,
                        }
                    }
                }
            }
            (Filter::Prefix(p), EventKind::Kv { key, .. }) => key.starts_with(p.as_str()),
            (
                Filter::Service(ns, s),
                EventKind::Service {
                    namespace, service, ..
                },
            ) => service == s && namespace == ns,
            _ => false,
        }
    }
}

/// `GET /v1/watch?prefix=P&from_revision=R` or `?service=S&namespace=NS&from_revision=R`
pub async fn watch(
    State(node): State<SharedNode>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let routes = params.flag("routes")?;
    let filter = match (
        params.get("prefix"),
        params.get("service"),
        params.get("config"),
    ) {
        (None, None, None) if routes => Filter::Routes,
        (None, None, Some(c)) if !routes => config_filter(c, &params)?,
        (Some(p), None, None) if !routes => {
            if p.len() > validate::MAX_KEY_BYTES {
                validate::key(p)?;
            }
            Filter::Prefix(p.to_owned())
        }
        (None, Some(s), None) if !routes => {
            validate::service_name(s)?;
            Filter::Service(params.namespace()?, s.to_owned())
        }
        _ => {
            return Err(ApiError::invalid(
                "prefix",
                "give exactly one of prefix=KEY_PREFIX, service=NAME, config=NAMESPACE/GROUP/ID or routes=true",
            ));
        }
    };
    // Last-Event-ID (a reconnecting EventSource) wins over from_revision.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid("Last-Event-ID", "Last-Event-ID must be a revision number")
            })
        })
        .transpose()?;
    let from = last_event_id.or(params.u64("from_revision")?);
    // No read barrier: any node serves watches from its own applied history, and
    // revisions are the same on every node, so a client can resume anywhere.
    params.stale()?;
    let start = {
        let state = node.state();
        match from {
            Some(r) => {
                if r < state.compacted_revision() {
                    return Err(ApiError::compacted(state.compacted_revision()));
                }
                r
            }
            None => state.revision(),
        }
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(pump(node.clone(), filter, start, tx));
    let stream = ReceiverStream::new(rx);
    Ok((
        index_header(start),
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    ))
}

/// `config=NAMESPACE/GROUP/ID` with an optional `instance=SERVICE/ID`
/// (`instance_namespace=` for its registry namespace; default the config's).
fn config_filter(spec: &str, params: &Params) -> ApiResult<Filter> {
    let mut parts = spec.splitn(3, '/');
    let (Some(ns), Some(group), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::invalid(
            "config",
            "config must be NAMESPACE/GROUP/ID",
        ));
    };
    validate::config_key(ns, group, id)?;
    let asker = match params.get("instance") {
        None => None,
        Some(i) => {
            let registry_ns = params.get("instance_namespace").unwrap_or(ns);
            validate::namespace(registry_ns)?;
            Some(
                Asker::parse(i, registry_ns)
                    .ok_or_else(|| ApiError::invalid("instance", "instance must be SERVICE/ID"))?,
            )
        }
    };
    Ok(Filter::Config(ConfigKey::new(ns, group, id), asker))
}

/// Feeds one stream until the client goes away.
async fn pump(
    node: SharedNode,
    filter: Filter,
    mut after: u64,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    node.metrics.watchers.inc();
    let _guard = Dec(&node);
    let mut applied = node.raft.applied();
    let progress_every = node.config.progress_interval;
    let mut last_sent = tokio::time::Instant::now();
    // This node's own revision, when it is behind what the stream resumed from.
    let mut behind: Option<u64>;
    loop {
        let batch = {
            let state = node.state();
            match state.events_after(after) {
                Err(oldest) => Err((oldest, state.revision())),
                Ok(events) => {
                    let head = state.revision();
                    let mut out = Vec::new();
                    let mut scanned_to = after;
                    for e in events {
                        // Stop on a revision boundary so a resume never splits a revision.
                        if out.len() >= BATCH && e.revision != scanned_to {
                            break;
                        }
                        scanned_to = e.revision;
                        if filter.matches(e, &state) {
                            if let EventKind::Config { at_ms, .. } = &e.kind {
                                node.metrics.observe_config_push(*at_ms);
                            }
                            out.push(to_sse(e));
                        }
                    }
                    let reached = if out.len() >= BATCH { scanned_to } else { head };
                    Ok((out, reached))
                }
            }
        };
        match batch {
            Err((oldest, _)) => {
                let err = ApiError::compacted(oldest);
                let data = serde_json::json!({"error": {"code": "compacted", "message": err.message, "oldest_revision": oldest}});
                let _ = tx
                    .send(Ok(SseEvent::default()
                        .event("error")
                        .data(data.to_string())))
                    .await;
                return;
            }
            Ok((events, reached)) => {
                let sent_any = !events.is_empty();
                for ev in events {
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                // Behind what the stream resumed from: a lagging node, a snapshot
                // install, or a store restored from an older backup. Never resend;
                // progress events say so, and the watcher re-reads.
                behind = (reached < after).then_some(reached);
                after = after.max(reached);
                if sent_any {
                    last_sent = tokio::time::Instant::now();
                    continue;
                }
            }
        }
        let progress_at = last_sent + progress_every;
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(progress_at) => {
                let p = ProgressEvent { revision: after, head: behind };
                let ev = SseEvent::default()
                    .event("progress")
                    .id(after.to_string())
                    .data(serde_json::to_string(&p).unwrap_or_default());
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
            _ = tx.closed() => return,
        }
    }
}

struct Dec<'a>(&'a SharedNode);

impl Drop for Dec<'_> {
    fn drop(&mut self) {
        self.0.metrics.watchers.dec();
    }
}

fn to_sse(e: &Event) -> SseEvent {
    let (name, data) = match &e.kind {
        EventKind::Kv { kind, key, value } => {
            let (value, value_base64) = match kind {
                concord_api::watch::KvEventKind::Put => encode_value(value),
                concord_api::watch::KvEventKind::Delete => (None, None),
            };
            let ev = KvEvent {
                revision: e.revision,
                kind: *kind,
                key: key.clone(),
                value,
                value_base64,
            };
            (kind_name(&ev.kind), serde_json::to_string(&ev))
        }
        EventKind::Service {
            kind,
            namespace,
            service,
            instance,
        } => {
            let ev = ServiceEvent {
                revision: e.revision,
                kind: *kind,
                namespace: namespace.clone(),
                service: service.clone(),
                instance: instance.clone(),
            };
            (service_kind_name(kind), serde_json::to_string(&ev))
        }
        EventKind::Route { kind, name, json } => {
            let ev = RouteEvent {
                revision: e.revision,
                kind: *kind,
                name: name.clone(),
                route: serde_json::from_str(json).ok(),
            };
            let name = match kind {
                RouteEventKind::Put => "put",
                RouteEventKind::Delete => "delete",
            };
            (name, serde_json::to_string(&ev))
        }
        EventKind::Config {
            kind,
            key,
            version,
            format,
            content,
            sha256,
            at_ms,
            ..
        } => {
            let ev = ConfigEvent {
                revision: e.revision,
                kind: *kind,
                namespace: key.namespace.clone(),
                group: key.group.clone(),
                id: key.id.clone(),
                version: *version,
                format: *format,
                content: content.clone(),
                sha256: sha256.clone(),
                published_at_ms: *at_ms,
            };
            let name = match kind {
                ConfigEventKind::Publish => "publish",
                ConfigEventKind::Delete => "delete",
                ConfigEventKind::Gray => "gray",
                ConfigEventKind::GrayCancel => "gray_cancel",
            };
            (name, serde_json::to_string(&ev))
        }
    };
    SseEvent::default()
        .id(e.revision.to_string())
        .event(name)
        .data(data.unwrap_or_default())
}

fn kind_name(k: &concord_api::watch::KvEventKind) -> &'static str {
    match k {
        concord_api::watch::KvEventKind::Put => "put",
        concord_api::watch::KvEventKind::Delete => "delete",
    }
}

fn service_kind_name(k: &concord_api::watch::ServiceEventKind) -> &'static str {
    use concord_api::watch::ServiceEventKind::*;
    match k {
        Register => "register",
        Update => "update",
        Deregister => "deregister",
        Expire => "expire",
    }
}
