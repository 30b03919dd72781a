//! The [`Client`] handle, the shared request plumbing and the node endpoints
//! (`/v1/status`, `/v1/health`, `/v1/ready`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_api::status::Status;
use serde::de::DeserializeOwned;

use crate::encode::Query;
use crate::error::ClientError;

/// Where the server is expected when nothing else is configured.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:7600";

/// How long to wait for a TCP connection before reporting the node unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect timeout of multi-server clients: a dead node should cost little
/// before the next one is tried.
const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a multi-server client keeps retrying a request that is safe to
/// retry (connect errors, `503 no_leader`/`unavailable`) before giving up:
/// long enough to ride out a leader election.
pub const DEFAULT_FAILOVER_BUDGET: Duration = Duration::from_secs(10);

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
    /// Set by [`Client::with_servers`]: the nodes requests may fail over to.
    failover: Option<Arc<Failover>>,
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
            failover: None,
            http,
            consistency: Consistency::Default,
            namespace: None,
        }
    }

    /// A client for several nodes of one cluster, failing over between them.
    ///
    /// Requests go to one node (the last one that worked) and move on to the
    /// next when it cannot be reached, or when it answers `503 no_leader` /
    /// `unavailable`, with a short jittered backoff, for at most
    /// [`DEFAULT_FAILOVER_BUDGET`] in total (see [`Client::with_failover_budget`]).
    /// Only what is safe is retried: a connect error means the request was never
    /// sent and a `503` means nothing was committed, so any request is retried on
    /// those; other transport errors (a reset or timeout after sending) are
    /// retried for reads (`GET`/`HEAD`) only, because a write may have been
    /// applied. An empty list means [`DEFAULT_BASE_URL`].
    ///
    /// ```
    /// let client = concord_client::Client::with_servers(["10.0.0.1:7600", "10.0.0.2:7600"]);
    /// assert_eq!(client.servers().len(), 2);
    /// ```
    pub fn with_servers<I, S>(servers: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut bases: Vec<String> = servers
            .into_iter()
            .map(|s| concord_api::base_url(s.as_ref()))
            .collect();
        if bases.is_empty() {
            bases.push(DEFAULT_BASE_URL.to_owned());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(FAILOVER_CONNECT_TIMEOUT)
            .build()
            .unwrap_or_default();
        let mut client = Client::with_http_client(&bases[0], http);
        client.failover = Some(Arc::new(Failover {
            urls: bases.iter().map(|b| reqwest::Url::parse(b).ok()).collect(),
            bases,
            current: AtomicUsize::new(0),
            budget: DEFAULT_FAILOVER_BUDGET,
        }));
        client
    }

    /// Returns this client with failover retries bounded by `budget` in total
    /// (no effect on a single-server client made with [`Client::new`]).
    pub fn with_failover_budget(mut self, budget: Duration) -> Self {
        if let Some(f) = &self.failover {
            self.failover = Some(Arc::new(Failover {
                bases: f.bases.clone(),
                urls: f.urls.clone(),
                current: AtomicUsize::new(f.current.load(Ordering::Relaxed)),
                budget,
            }));
        }
        self
    }

    /// The nodes this client talks to: one, or every node given to [`Client::with_servers`].
    pub fn servers(&self) -> Vec<String> {
        match &self.failover {
            Some(f) => f.bases.clone(),
            None => vec![self.base.clone()],
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

    /// The normalized base URL requests go to (the first server of a
    /// multi-server client), for messages and logs.
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
    ///
    /// A multi-server client fails over as described on [`Client::with_servers`].
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        match &self.failover {
            None => Self::send_once(request.send().await).await,
            Some(failover) => failover.send(&self.http, request.build()?).await,
        }
    }

    async fn send_once(
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ClientError> {
        let response = sent?;
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

/// The nodes of a multi-server client and which one is in use.
#[derive(Debug)]
struct Failover {
    bases: Vec<String>,
    /// `bases` parsed, to re-point a built request; `None` for an unparsable base.
    urls: Vec<Option<reqwest::Url>>,
    /// Index of the node that answered last; shared by clones so they agree.
    current: AtomicUsize,
    budget: Duration,
}

/// First backoff between failover rounds; doubles up to [`FAILOVER_BACKOFF_MAX`].
const FAILOVER_BACKOFF_BASE: Duration = Duration::from_millis(50);
const FAILOVER_BACKOFF_MAX: Duration = Duration::from_millis(1000);

impl Failover {
    async fn send(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, ClientError> {
        let deadline = Instant::now() + self.budget;
        let read = matches!(
            *request.method(),
            reqwest::Method::GET | reqwest::Method::HEAD
        );
        let mut attempt: u32 = 0;
        loop {
            let index = self.current.load(Ordering::Relaxed) % self.bases.len();
            let Some(mut this_try) = request.try_clone() else {
                // A streaming body cannot be replayed: one attempt only.
                return Client::send_once(http.execute(self.point(request, index)).await).await;
            };
            this_try = self.point(this_try, index);
            let outcome = Client::send_once(http.execute(this_try).await).await;
            let retry = match &outcome {
                Ok(_) => false,
                Err(ClientError::Api { status: 503, .. }) => outcome
                    .as_ref()
                    .err()
                    .is_some_and(ClientError::is_unavailable),
                Err(ClientError::Transport(e)) => e.is_connect() || read,
                Err(_) => false,
            };
            if !retry || Instant::now() >= deadline {
                return outcome;
            }
            attempt += 1;
            // Move on; a node that failed is tried again after the others.
            let _ = self.current.compare_exchange(
                index,
                (index + 1) % self.bases.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            // Back off once per full round, so a dead node costs nothing extra
            // while another is live, and an election is waited out.
            if attempt.is_multiple_of(self.bases.len() as u32) {
                let round = attempt / self.bases.len() as u32;
                let delay = concord_balance::retry::backoff_between(
                    round,
                    FAILOVER_BACKOFF_BASE,
                    FAILOVER_BACKOFF_MAX,
                )
                .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// The request with its scheme, host and port set to node `index`.
    fn point(&self, mut request: reqwest::Request, index: usize) -> reqwest::Request {
        if let Some(base) = &self.urls[index] {
            let url = request.url_mut();
            let _ = url.set_scheme(base.scheme());
            let _ = url.set_host(base.host_str());
            let _ = url.set_port(base.port_or_known_default());
        }
        request
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
