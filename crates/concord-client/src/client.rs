//! The [`Client`] handle, the shared request plumbing and the node endpoints
//! (`/v1/status`, `/v1/health`, `/v1/ready`).

use std::time::Duration;

use bytes::Bytes;
use concord_api::status::Status;
use serde::de::DeserializeOwned;

use crate::encode::Query;
use crate::error::ClientError;

/// Where the server is expected when nothing else is configured.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:7600";

/// How long to wait for a TCP connection before reporting the node unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which read guarantee reads ask the server for.
///
/// Linearizable reads go through the leader; stale reads are answered by
/// whichever node is asked, which is faster and works without a leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable reads (the server's default).
    #[default]
    Default,
    /// `?consistency=stale`: the contacted node answers from its local state.
    Stale,
}

/// A handle on one Concord node's HTTP API.
///
/// Cheap to clone (the connection pool is shared), so hand clones to tasks
/// instead of wrapping it in an `Arc`.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    consistency: Consistency,
    /// Registry namespace; `None` means the server's default.
    namespace: Option<String>,
}

impl Client {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:7600`).
    ///
    /// A missing scheme means `http://` and trailing slashes are ignored, so
    /// `127.0.0.1:7600` and `http://127.0.0.1:7600/` both work.
    pub fn new(base_url: impl AsRef<str>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self::with_http_client(base_url, http)
    }

    /// As [`Client::new`], but reusing a configured `reqwest::Client`
    /// (timeouts, pools, headers) the application already has.
    pub fn with_http_client(base_url: impl AsRef<str>, http: reqwest::Client) -> Self {
        Client {
            base: concord_api::base_url(base_url.as_ref()),
            http,
            consistency: Consistency::Default,
            namespace: None,
        }
    }

    /// Returns this client with every read using the given consistency.
    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Returns this client with every registry call (and service watch) in `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The registry namespace this client uses (`default` unless set).
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(concord_api::registry::DEFAULT_NAMESPACE)
    }

    /// A query naming the namespace when one was set, for registry endpoints.
    pub(crate) fn namespace_query(&self, mut q: Query) -> Query {
        if let Some(ns) = &self.namespace {
            q.push("namespace", ns);
        }
        q
    }

    /// The normalized base URL requests go to, for messages and logs.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v1/status`: the node's view of the cluster (leader, term, revision, members).
    pub async fn status(&self) -> Result<Status, ClientError> {
        let q = self.read_query();
        self.get_json("/v1/status", &q).await
    }

    /// `GET /v1/health`: succeeds when the process is up and serving HTTP.
    pub async fn health(&self) -> Result<(), ClientError> {
        let url = self.url("/v1/health", &Query::default());
        self.send(self.http.get(url)).await.map(drop)
    }

    /// `GET /v1/ready`: succeeds when the node can serve requests (it knows a
    /// leader and has caught up); an API error (503) otherwise.
    pub async fn ready(&self) -> Result<(), ClientError> {
        let url = self.url("/v1/ready", &Query::default());
        self.send(self.http.get(url)).await.map(drop)
    }

    // ---- plumbing shared by the endpoint modules ----

    /// Full URL for an already-encoded path and query.
    pub(crate) fn url(&self, path: &str, query: &Query) -> String {
        format!("{}{}{}", self.base, path, query.as_str())
    }

    /// A query pre-filled with the read consistency, for read endpoints.
    pub(crate) fn read_query(&self) -> Query {
        let mut q = Query::default();
        if self.consistency == Consistency::Stale {
            q.push("consistency", "stale");
        }
        q
    }

    /// The underlying HTTP client, for endpoint modules that build requests.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request; non-2xx answers become [`ClientError::Api`].
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await?;
        Err(ClientError::from_response(status.as_u16(), &body))
    }

    /// Sends a request and decodes its JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let body = response.bytes().await?;
        decode_json(&body)
    }

    /// `GET path?query` decoded as JSON.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<T, ClientError> {
        self.send_json(self.http.get(self.url(path, query))).await
    }
}

impl Default for Client {
    /// A client for [`DEFAULT_BASE_URL`], the address `concord dev` listens on.
    fn default() -> Self {
        Client::new(DEFAULT_BASE_URL)
    }
}

/// Decodes a JSON body, naming the expected type on failure.
pub(crate) fn decode_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ClientError> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Decode(format!("expected {} JSON: {e}", short_type_name::<T>())))
}

/// `concord_api::kv::KvItem` -> `KvItem`, for readable decode errors.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(Client::new("http://h:1/").base_url(), "http://h:1");
        assert_eq!(Client::new("h:1").base_url(), "http://h:1");
        assert_eq!(Client::new(" https://h// ").base_url(), "https://h");
        assert_eq!(Client::default().base_url(), DEFAULT_BASE_URL);
    }

    #[test]
    fn stale_reads_add_the_query_flag() {
        let c = Client::new("h:1");
        assert_eq!(c.read_query().as_str(), "");
        let c = c.with_consistency(Consistency::Stale);
        assert_eq!(
            c.url("/v1/status", &c.read_query()),
            "http://h:1/v1/status?consistency=stale"
        );
    }

    #[test]
    fn decode_errors_name_the_type() {
        let err = decode_json::<Status>(&Bytes::from_static(b"{}")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("expected Status JSON"), "{text}");
    }
}
