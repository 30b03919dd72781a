//! Configuration center endpoints (`/v1/config/{namespace}/{group}/{id}` and friends).
//!
//! Items are addressed by namespace, group and id, each one URL path segment.
//! Reads of one addressed thing (the item, one history version, the staged
//! gray candidate) return `Ok(None)` when it does not exist, as
//! [`Client::kv_get`] does.

use std::time::Duration;

use concord_api::config::{
    ConfigEvent, ConfigFormat, ConfigItem, ConfigList, ConfigVersionDetail, ConfigVersionSummary,
    GrayInfo, GrayRequest, GraySelector, PublishResponse, RollbackRequest,
};
use concord_api::registry::RevisionResponse;
use concord_api::{ErrorBody, ErrorCode, INDEX_HEADER};
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::client::Client;
use crate::encode::{Query, encode_segment};
use crate::error::ClientError;
use crate::watch::WatchStream;

/// Header carrying a publish's comment, recorded in the item's history.
const COMMENT_HEADER: &str = "X-Concord-Comment";
/// Header carrying the published version on `?raw=true` reads.
const VERSION_HEADER: &str = "X-Concord-Config-Version";
/// Every format, to map a `Content-Type` back to one.
const FORMATS: [ConfigFormat; 5] = [
    ConfigFormat::Json,
    ConfigFormat::Yaml,
    ConfigFormat::Toml,
    ConfigFormat::Properties,
    ConfigFormat::Text,
];

/// Conditions and attachments of a publish, kept out of the common `config_put` signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Only publish if the item's current version is exactly this (0: only if
    /// the item does not exist); otherwise the server answers `cas_failed`.
    pub cas: Option<u64>,
    /// Recorded with the version in the item's history. Must be printable ASCII
    /// (it travels as an HTTP header) and at most 1024 bytes.
    pub comment: Option<String>,
}

/// An item read with `?raw=true`: the content alone, metadata from the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawConfig {
    /// The content exactly as published.
    pub content: String,
    /// The item's format, from the answer's `Content-Type`, when recognized.
    pub format: Option<ConfigFormat>,
    /// The published version (`X-Concord-Config-Version`), when the server sent it.
    pub version: Option<u64>,
    /// The revision of the item's last change (`X-Concord-Index`), when the server sent it.
    pub index: Option<u64>,
}

fn item_path(namespace: &str, group: &str, id: &str) -> String {
    format!(
        "/v1/config/{}/{}/{}",
        encode_segment(namespace),
        encode_segment(group),
        encode_segment(id)
    )
}

fn namespace_path(namespace: &str) -> String {
    format!("/v1/config/{}", encode_segment(namespace))
}

/// `?format=F&cas=V`; without a format the server keeps the item's (text for a new item).
fn put_query(format: Option<ConfigFormat>, cas: Option<u64>) -> Query {
    let mut q = Query::default();
    q.push_opt("format", format).push_opt("cas", cas);
    q
}

/// `?config=NS/GROUP/ID&instance=S/ID&from_revision=R` for `/v1/watch`.
fn watch_query(
    namespace: &str,
    group: &str,
    id: &str,
    instance: Option<&str>,
    from_revision: Option<u64>,
) -> Query {
    let mut q = Query::default();
    q.push("config", format!("{namespace}/{group}/{id}"))
        .push_opt("instance", instance)
        .push_opt("from_revision", from_revision);
    q
}

/// Milliseconds always parse on the server and never lose precision.
fn format_wait(wait: Duration) -> String {
    format!("{}ms", wait.as_millis())
}

/// The comment as a header value. Anything but printable ASCII (and tab) is
/// refused here with the error the server would give: control characters cannot
/// be sent in a header at all, and the server refuses other bytes.
fn comment_header(comment: &str) -> Result<HeaderValue, ClientError> {
    let printable = comment
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    printable
        .then(|| HeaderValue::from_str(comment).ok())
        .flatten()
        .ok_or_else(|| {
            ClientError::from_body(
                ErrorCode::InvalidArgument.status(),
                ErrorBody::new(
                    ErrorCode::InvalidArgument,
                    "the comment must be printable ASCII (it is sent as the X-Concord-Comment header)",
                ),
            )
        })
}

/// The format whose media type a `Content-Type` names (parameters ignored).
fn format_of_content_type(content_type: &str) -> Option<ConfigFormat> {
    let media = |ct: &str| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let wanted = media(content_type);
    FORMATS
        .into_iter()
        .find(|f| media(f.content_type()) == wanted)
}

fn header_str<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

fn header_u64(response: &reqwest::Response, name: &str) -> Option<u64> {
    header_str(response, name)?.trim().parse().ok()
}

/// `Ok(None)` for a `not_found` answer, so callers can tell "absent" from failures.
fn absent_is_none<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Client {
    /// `PUT /v1/config/{namespace}/{group}/{id}?format=F`: publishes `content` as
    /// the item's next version. The server refuses content that does not parse
    /// as `format` (HTTP 400, the message naming line and column) and, with
    /// [`PublishOptions::cas`], a lost compare-and-swap (`cas_failed`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), concord_client::ClientError> {
    /// use concord_client::PublishOptions;
    /// use concord_client::api::config::ConfigFormat;
    ///
    /// let client = concord_client::Client::new("http://127.0.0.1:7600");
    /// let options = PublishOptions {
    ///     cas: Some(0), // only if the item does not exist yet
    ///     comment: Some("first version".into()),
    /// };
    /// let published = client
    ///     .config_put("prod", "orders", "app.yaml", ConfigFormat::Yaml, "pool: 8\n", &options)
    ///     .await?;
    /// println!("version {} ({})", published.version, published.sha256);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn config_put(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        format: ConfigFormat,
        content: &str,
        options: &PublishOptions,
    ) -> Result<PublishResponse, ClientError> {
        self.publish(namespace, group, id, Some(format), content, options)
            .await
    }

    /// As [`Client::config_put`], but without naming a format: the server keeps
    /// the item's current format, and a new item is `text`. Spares a read when
    /// the caller does not know the format (the server decides atomically).
    pub async fn config_put_keep_format(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        content: &str,
        options: &PublishOptions,
    ) -> Result<PublishResponse, ClientError> {
        self.publish(namespace, group, id, None, content, options)
            .await
    }

    async fn publish(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        format: Option<ConfigFormat>,
        content: &str,
        options: &PublishOptions,
    ) -> Result<PublishResponse, ClientError> {
        let url = self.url(
            &item_path(namespace, group, id),
            &put_query(format, options.cas),
        );
        let content_type = format.unwrap_or(ConfigFormat::Text).content_type();
        let mut request = self
            .http()
            .put(url)
            .header(CONTENT_TYPE, content_type)
            .body(content.to_owned());
        if let Some(comment) = &options.comment {
            request = request.header(COMMENT_HEADER, comment_header(comment)?);
        }
        self.send_json(request).await
    }

    /// `GET /v1/config/{namespace}/{group}/{id}`: the published content with its
    /// metadata, `None` when the item does not exist.
    pub async fn config_get(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<Option<ConfigItem>, ClientError> {
        let q = self.read_query();
        absent_is_none(self.get_json(&item_path(namespace, group, id), &q).await)
    }

    /// `GET ...?instance=SERVICE/ID`: the content the registered instance
    /// `SERVICE/ID` (in the item's namespace) should use: the staged gray
    /// candidate when its selector picks the instance (`gray` is then true),
    /// else the published content. `None` when the item does not exist.
    pub async fn config_get_for(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        instance: &str,
    ) -> Result<Option<ConfigItem>, ClientError> {
        let mut q = self.read_query();
        q.push("instance", instance);
        absent_is_none(self.get_json(&item_path(namespace, group, id), &q).await)
    }

    /// `GET ...?raw=true`: the published content alone (what an application
    /// would load as a file), `None` when the item does not exist.
    pub async fn config_get_raw(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<Option<RawConfig>, ClientError> {
        let mut q = self.read_query();
        q.push("raw", "true");
        let url = self.url(&item_path(namespace, group, id), &q);
        let Some(response) = absent_is_none(self.send(self.http().get(url)).await)? else {
            return Ok(None);
        };
        let format = header_str(&response, CONTENT_TYPE.as_str()).and_then(format_of_content_type);
        let version = header_u64(&response, VERSION_HEADER);
        let index = header_u64(&response, INDEX_HEADER);
        let body = response.bytes().await?;
        let content = String::from_utf8(body.to_vec())
            .map_err(|e| ClientError::Decode(format!("raw config content is not UTF-8: {e}")))?;
        Ok(Some(RawConfig {
            content,
            format,
            version,
            index,
        }))
    }

    /// `GET ...?index=M&wait=W`: a blocking read that answers once the item
    /// changed after revision `index` (a publish, a delete, a gray change), or
    /// after `wait` with the unchanged item. Feed the answer's `revision` back in
    /// as the next `index` to follow an item without a watch stream. `None`
    /// when the item (still) does not exist; the server caps `wait` at 10 minutes.
    pub async fn config_get_blocking(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Option<ConfigItem>, ClientError> {
        let mut q = self.read_query();
        q.push("index", index).push("wait", format_wait(wait));
        absent_is_none(self.get_json(&item_path(namespace, group, id), &q).await)
    }

    /// `DELETE /v1/config/{namespace}/{group}/{id}`: deletes the item with its
    /// history and any gray candidate (`not_found` when it does not exist).
    pub async fn config_delete(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&item_path(namespace, group, id), &Query::default());
        self.send_json(self.http().delete(url)).await
    }

    /// `GET /v1/config/{namespace}[?group=G]`: the items of a namespace (of one
    /// group, when given), without their content.
    pub async fn config_list(
        &self,
        namespace: &str,
        group: Option<&str>,
    ) -> Result<ConfigList, ClientError> {
        let mut q = self.read_query();
        q.push_opt("group", group);
        self.get_json(&namespace_path(namespace), &q).await
    }

    /// `GET .../history`: the kept versions of an item, newest first
    /// (`not_found` when the item does not exist).
    pub async fn config_history(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<Vec<ConfigVersionSummary>, ClientError> {
        let path = format!("{}/history", item_path(namespace, group, id));
        self.get_json(&path, &self.read_query()).await
    }

    /// `GET .../history/{version}`: one kept version with its content, `None`
    /// when the item or that version (no longer) exists.
    pub async fn config_history_version(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<ConfigVersionDetail>, ClientError> {
        let path = format!("{}/history/{version}", item_path(namespace, group, id));
        absent_is_none(self.get_json(&path, &self.read_query()).await)
    }

    /// `POST .../rollback`: publishes the content of kept `version` again, as
    /// a new version (history is never rewritten).
    pub async fn config_rollback(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        version: u64,
    ) -> Result<PublishResponse, ClientError> {
        let path = format!("{}/rollback", item_path(namespace, group, id));
        let url = self.url(&path, &Query::default());
        let body = RollbackRequest { version };
        self.send_json(self.http().post(url).json(&body)).await
    }

    /// `PUT .../gray`: stages `content` as a gray candidate served only to the
    /// instances `selector` picks, replacing any staged one. The content must
    /// parse in the item's format; the item must exist.
    pub async fn config_gray_put(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        content: &str,
        selector: &GraySelector,
    ) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&gray_path(namespace, group, id), &Query::default());
        let body = GrayRequest {
            content: content.to_owned(),
            selector: selector.clone(),
        };
        self.send_json(self.http().put(url).json(&body)).await
    }

    /// `GET .../gray`: the staged gray candidate, `None` when there is none
    /// (or the item does not exist).
    pub async fn config_gray_get(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<Option<GrayInfo>, ClientError> {
        let path = gray_path(namespace, group, id);
        absent_is_none(self.get_json(&path, &self.read_query()).await)
    }

    /// `POST .../gray/promote`: publishes the staged gray candidate to everyone
    /// as the item's next version.
    pub async fn config_gray_promote(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<PublishResponse, ClientError> {
        let path = format!("{}/promote", gray_path(namespace, group, id));
        let url = self.url(&path, &Query::default());
        self.send_json(self.http().post(url)).await
    }

    /// `DELETE .../gray`: withdraws the staged gray candidate; its instances go
    /// back to the published content.
    pub async fn config_gray_cancel(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
    ) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&gray_path(namespace, group, id), &Query::default());
        self.send_json(self.http().delete(url)).await
    }

    /// `GET /v1/watch?config=NS/GROUP/ID`: the item's publish and delete events;
    /// with `instance` (`SERVICE/ID`, registered in the item's namespace) also
    /// the gray changes that target it, each event carrying the content that
    /// instance should now use. `from_revision` replays retained history first,
    /// as for [`Client::watch_prefix`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), concord_client::ClientError> {
    /// use concord_client::WatchEvent;
    /// use futures::StreamExt;
    ///
    /// let client = concord_client::Client::new("http://127.0.0.1:7600");
    /// let mut events = client
    ///     .watch_config("prod", "orders", "app.yaml", Some("orders/o1"), None)
    ///     .await?;
    /// while let Some(event) = events.next().await {
    ///     if let WatchEvent::Change(change) = event? {
    ///         println!("v{}: {}", change.version, change.content);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch_config(
        &self,
        namespace: &str,
        group: &str,
        id: &str,
        instance: Option<&str>,
        from_revision: Option<u64>,
    ) -> Result<WatchStream<ConfigEvent>, ClientError> {
        let q = watch_query(namespace, group, id, instance, from_revision);
        self.watch(&q).await
    }
}

fn gray_path(namespace: &str, group: &str, id: &str) -> String {
    format!("{}/gray", item_path(namespace, group, id))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use concord_api::config::ConfigEventKind;
    use futures::StreamExt;

    use super::*;
    use crate::WatchEvent;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(
            item_path("prod", "orders", "app.yaml"),
            "/v1/config/prod/orders/app.yaml"
        );
        // A stray '/' or '?' never reaches another route.
        assert_eq!(
            item_path("a/b", "g?x", "i d"),
            "/v1/config/a%2Fb/g%3Fx/i%20d"
        );
        assert_eq!(namespace_path("prod"), "/v1/config/prod");
        assert_eq!(gray_path("n", "g", "i"), "/v1/config/n/g/i/gray");
    }

    #[test]
    fn put_urls() {
        let c = Client::new("h:1");
        let path = item_path("n", "g", "i");
        assert_eq!(
            c.url(&path, &put_query(Some(ConfigFormat::Yaml), Some(3))),
            "http://h:1/v1/config/n/g/i?format=yaml&cas=3"
        );
        assert_eq!(
            c.url(&path, &put_query(None, None)),
            "http://h:1/v1/config/n/g/i"
        );
    }

    #[test]
    fn read_urls() {
        let c = Client::new("h:1").with_consistency(crate::Consistency::Stale);
        let mut q = c.read_query();
        q.push("index", 7)
            .push("wait", format_wait(Duration::from_secs(30)));
        assert_eq!(
            c.url(&item_path("n", "g", "i"), &q),
            "http://h:1/v1/config/n/g/i?consistency=stale&index=7&wait=30000ms"
        );
        let mut q = Query::default();
        q.push("instance", "orders/o 1");
        assert_eq!(q.as_str(), "?instance=orders/o%201");
        let mut q = Query::default();
        q.push_opt("group", Some("a&b"));
        assert_eq!(
            c.url(&namespace_path("n"), &q),
            "http://h:1/v1/config/n?group=a%26b"
        );
    }

    #[test]
    fn watch_urls() {
        let c = Client::new("h:1");
        assert_eq!(
            c.url("/v1/watch", &watch_query("n", "g", "i", None, None)),
            "http://h:1/v1/watch?config=n/g/i"
        );
        assert_eq!(
            c.url(
                "/v1/watch",
                &watch_query("n", "g", "i", Some("orders/o1"), Some(9))
            ),
            "http://h:1/v1/watch?config=n/g/i&instance=orders/o1&from_revision=9"
        );
    }

    #[test]
    fn waits_are_milliseconds() {
        assert_eq!(format_wait(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_wait(Duration::ZERO), "0ms");
    }

    #[test]
    fn comments_must_be_headers() {
        assert!(comment_header("bump pool size to 8").is_ok());
        let err = comment_header("größer").unwrap_err();
        assert_eq!(err.code(), Some("invalid_argument"));
        assert_eq!(err.status(), Some(400));
        assert!(comment_header("two\nlines").is_err());
    }

    #[test]
    fn content_types_map_back_to_formats() {
        for f in FORMATS {
            assert_eq!(format_of_content_type(f.content_type()), Some(f));
        }
        assert_eq!(
            format_of_content_type("text/plain;charset=UTF-8"),
            Some(ConfigFormat::Text)
        );
        assert_eq!(format_of_content_type("application/xml"), None);
    }

    #[test]
    fn config_events_decode() {
        let body = futures::stream::iter([Ok::<_, reqwest::Error>(Bytes::from_static(
            b"id: 4\nevent: gray_cancel\ndata: {\"revision\":4,\"type\":\"gray_cancel\",\"namespace\":\"n\",\"group\":\"g\",\"id\":\"i\",\"version\":2,\"format\":\"yaml\",\"content\":\"a: 1\\n\",\"sha256\":\"ab\",\"published_at_ms\":5}\n\n\
              event: put\ndata: {}\n\nevent: progress\ndata: {\"revision\":6}\n\n",
        ))]);
        let events: Vec<_> =
            futures::executor::block_on(WatchStream::<ConfigEvent>::from_bytes(body).collect());
        assert_eq!(events.len(), 2);
        match &events[0] {
            Ok(WatchEvent::Change(e)) => {
                assert_eq!(e.kind, ConfigEventKind::GrayCancel);
                assert_eq!((e.version, e.format), (2, ConfigFormat::Yaml));
                assert_eq!(e.content, "a: 1\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[1].as_ref().unwrap().revision(), 6);
    }
}
