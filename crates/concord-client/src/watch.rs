//! Watch streams: `GET /v1/watch` as a `Stream` of typed events.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use concord_api::ErrorBody;
use concord_api::config::ConfigEvent;
use concord_api::watch::{KvEvent, ProgressEvent, ServiceEvent};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::encode::Query;
use crate::error::{ClientError, UNKNOWN_CODE};
use crate::sse::{SseEvent, SseParser};

/// One item of a watch: a change, or a progress note on an idle stream.
///
/// Progress events carry no change but advance the revision a watcher has
/// seen, so a reconnect can resume from there instead of from far behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent<E> {
    /// A change (`put`/`delete` for keys; `register`/`update`/`deregister`/`expire` for services;
    /// `publish`/`delete`/`gray`/`gray_cancel` for config items).
    Change(E),
    /// Nothing changed up to `revision`.
    Progress(ProgressEvent),
}

impl<E: WatchPayload> WatchEvent<E> {
    /// The store revision this event brings the watcher to: the value to pass
    /// back as `from_revision` when reconnecting (see [`Client::watch_prefix`]).
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Change(e) => e.revision(),
            WatchEvent::Progress(p) => p.revision,
        }
    }
}

/// A change type that can arrive on a watch stream.
///
/// Lets one stream implementation serve both key and service watches while
/// ignoring SSE event names it does not know (forward compatibility).
pub trait WatchPayload: DeserializeOwned + Send + 'static {
    /// Whether an SSE `event:` name carries this payload.
    fn accepts(event_name: &str) -> bool;
    /// The revision of the change.
    fn revision(&self) -> u64;
}

impl WatchPayload for KvEvent {
    fn accepts(event_name: &str) -> bool {
        matches!(event_name, "put" | "delete")
    }
    fn revision(&self) -> u64 {
        self.revision
    }
}

impl WatchPayload for ServiceEvent {
    fn accepts(event_name: &str) -> bool {
        matches!(event_name, "register" | "update" | "deregister" | "expire")
    }
    fn revision(&self) -> u64 {
        self.revision
    }
}

impl WatchPayload for ConfigEvent {
    fn accepts(event_name: &str) -> bool {
        matches!(event_name, "publish" | "delete" | "gray" | "gray_cancel")
    }
    fn revision(&self) -> u64 {
        self.revision
    }
}

/// The events of one watch, in revision order, until the server closes the stream.
///
/// Ends after a transport error or an error sent by the server; reconnect with
/// the last seen [`WatchEvent::revision`] to continue without gaps (a
/// `compacted` error then says how far back the server still reaches).
pub struct WatchStream<E> {
    inner: BoxStream<'static, Result<WatchEvent<E>, ClientError>>,
}

impl<E> std::fmt::Debug for WatchStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl<E> Stream for WatchStream<E> {
    type Item = Result<WatchEvent<E>, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// Parser state carried between polls of the byte stream.
struct State<E> {
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    done: bool,
    _payload: PhantomData<fn() -> E>,
}

impl<E: WatchPayload> WatchStream<E> {
    /// Turns an SSE byte stream into typed events.
    pub(crate) fn from_bytes(
        body: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    ) -> Self {
        let state = State::<E> {
            body: body.boxed(),
            parser: SseParser::new(),
            pending: VecDeque::new(),
            done: false,
            _payload: PhantomData,
        };
        let events = futures::stream::unfold(state, |mut st| async move {
            loop {
                while let Some(sse) = st.pending.pop_front() {
                    if let Some(item) = decode_event::<E>(&sse) {
                        if sse.event == "error" {
                            st.done = true;
                            st.pending.clear();
                        }
                        return Some((item, st));
                    }
                }
                if st.done {
                    return None;
                }
                match st.body.next().await {
                    Some(Ok(chunk)) => {
                        let events = st.parser.push(&chunk);
                        st.pending.extend(events);
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(ClientError::Transport(e)), st));
                    }
                    None => return None,
                }
            }
        });
        WatchStream {
            inner: events.boxed(),
        }
    }
}

/// Maps one SSE event to a watch item; `None` for event names this watch does not know.
fn decode_event<E: WatchPayload>(sse: &SseEvent) -> Option<Result<WatchEvent<E>, ClientError>> {
    let decode_err = |e: serde_json::Error| {
        ClientError::Decode(format!("watch event {:?} ({}): {e}", sse.event, sse.data))
    };
    match sse.event.as_str() {
        "progress" => Some(
            serde_json::from_str(&sse.data)
                .map(WatchEvent::Progress)
                .map_err(decode_err),
        ),
        "error" => Some(Err(match serde_json::from_str::<ErrorBody>(&sse.data) {
            Ok(body) => {
                let status = ClientError::status_for_code(&body.error.code);
                ClientError::from_body(status, body)
            }
            Err(_) => ClientError::Api {
                status: 500,
                code: UNKNOWN_CODE.to_owned(),
                message: sse.data.clone(),
                oldest_revision: None,
            },
        })),
        name if E::accepts(name) => Some(
            serde_json::from_str(&sse.data)
                .map(WatchEvent::Change)
                .map_err(decode_err),
        ),
        _ => None,
    }
}

impl Client {
    /// `GET /v1/watch?prefix=P[&from_revision=R]`: every put/delete of keys under
    /// `prefix`; with `from_revision` the server first replays retained history
    /// from there (it sends the events after revision R, so passing the last
    /// revision seen resumes without duplicates), without it only new changes.
    ///
    /// Fails up front (e.g. `compacted`, HTTP 410) when the server cannot serve
    /// the requested start; afterwards events arrive as the server streams them.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        from_revision: Option<u64>,
    ) -> Result<WatchStream<KvEvent>, ClientError> {
        let mut q = Query::default();
        q.push("prefix", prefix)
            .push_opt("from_revision", from_revision);
        self.watch(&q).await
    }

    /// `GET /v1/watch?service=S[&from_revision=R]`: register/update/deregister/expire
    /// events of one service's instances; `from_revision` as for [`Client::watch_prefix`].
    pub async fn watch_service(
        &self,
        service: &str,
        from_revision: Option<u64>,
    ) -> Result<WatchStream<ServiceEvent>, ClientError> {
        let mut q = self.namespace_query(Query::default());
        q.push("service", service)
            .push_opt("from_revision", from_revision);
        self.watch(&q).await
    }

    /// Opens `GET /v1/watch?{query}`; shared by the watch methods of every endpoint module.
    pub(crate) async fn watch<E: WatchPayload>(
        &self,
        query: &Query,
    ) -> Result<WatchStream<E>, ClientError> {
        let request = self
            .http()
            .get(self.url("/v1/watch", query))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = self.send(request).await?;
        Ok(WatchStream::from_bytes(response.bytes_stream()))
    }
}

#[cfg(test)]
mod tests {
    use concord_api::watch::KvEventKind;

    use super::*;

    fn collect<E: WatchPayload>(
        chunks: &[&'static [u8]],
    ) -> Vec<Result<WatchEvent<E>, ClientError>> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, reqwest::Error>(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        futures::executor::block_on(WatchStream::<E>::from_bytes(body).collect())
    }

    #[test]
    fn kv_events_and_progress_across_chunks() {
        let events = collect::<KvEvent>(&[
            b": connected\n\nid: 4\nevent: put\ndata: {\"revision\":4,\"type\":\"put\",\"key\":\"app/a\",\"va",
            b"lue\":\"1\"}\n\nid: 5\nevent: delete\ndata: {\"revision\":5,\"type\":\"delete\",\"key\":\"app/a\"}\n",
            b"\nevent: progress\ndata: {\"revision\":9}\n\nevent: future_kind\ndata: {}\n\n",
        ]);
        let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 3);
        match &events[0] {
            WatchEvent::Change(e) => {
                assert_eq!(e.kind, KvEventKind::Put);
                assert_eq!(e.key, "app/a");
                assert_eq!(e.value.as_deref(), Some("1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[1].revision(), 5);
        assert_eq!(
            events[2],
            WatchEvent::Progress(ProgressEvent {
                revision: 9,
                head: None
            })
        );
    }

    #[test]
    fn service_events_decode() {
        let events = collect::<ServiceEvent>(&[
            b"id: 7\nevent: expire\ndata: {\"revision\":7,\"type\":\"expire\",\"service\":\"orders\",\"instance\":{\"id\":\"o1\",\"address\":\"10.0.0.1\",\"port\":80,\"tags\":[],\"meta\":{},\"weight\":100,\"ttl_secs\":5}}\n\n",
            b"event: put\ndata: {}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        match events.into_iter().next().unwrap().unwrap() {
            WatchEvent::Change(e) => {
                assert_eq!(e.service, "orders");
                assert_eq!(e.instance.id, "o1");
                assert_eq!(e.revision, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_data_is_a_decode_error_and_the_stream_goes_on() {
        let events = collect::<KvEvent>(&[
            b"event: put\ndata: nope\n\nevent: progress\ndata: {\"revision\":1}\n\n",
        ]);
        assert!(matches!(events[0], Err(ClientError::Decode(_))));
        assert!(matches!(events[1], Ok(WatchEvent::Progress(_))));
    }

    #[test]
    fn error_events_end_the_stream() {
        let events = collect::<KvEvent>(&[
            b"event: error\ndata: {\"error\":{\"code\":\"compacted\",\"message\":\"gone\",\"oldest_revision\":10}}\n\n",
            b"event: progress\ndata: {\"revision\":11}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        match &events[0] {
            Err(e) => {
                assert!(e.is_compacted());
                assert_eq!(e.status(), Some(410));
                assert!(matches!(
                    e,
                    ClientError::Api {
                        oldest_revision: Some(10),
                        ..
                    }
                ));
            }
            Ok(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_urls() {
        let mut q = Query::default();
        q.push("prefix", "app/")
            .push_opt("from_revision", Some(3u64));
        let c = Client::new("h:1");
        assert_eq!(
            c.url("/v1/watch", &q),
            "http://h:1/v1/watch?prefix=app/&from_revision=3"
        );
    }
}
