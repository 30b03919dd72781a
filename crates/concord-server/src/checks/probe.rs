//! One probe: an HTTP request, a TCP connect or a gRPC health `Check`, each
//! bounded by its timeout and reduced to a [`CheckHealth`] and a short output.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

pub use concord_api::expect_status::{ExpectStatus, ExpectStatusError};
use reqwest::header::{HeaderName, HeaderValue};
use tokio::time::{Instant, timeout_at};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[cfg(test)]
mod tests;

/// At most this much of an HTTP response body goes into the output: enough to
/// read an error message, small enough to store on every status change.
const OUTPUT_BODY_LIMIT: usize = 512;

/// The health a probe reports and a check is stored with (Consul's three states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckHealth {
    /// The target answered as expected.
    Passing,
    /// The target answered but asked us to back off (HTTP 429): degraded, not down.
    Warning,
    /// The target did not answer as expected, or not in time.
    Critical,
}

impl CheckHealth {
    /// The lower-case name used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckHealth::Passing => "passing",
            CheckHealth::Warning => "warning",
            CheckHealth::Critical => "critical",
        }
    }
}

impl fmt::Display for CheckHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe found: the health and a short human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The raw (undamped) health of this one probe.
    pub status: CheckHealth,
    /// Status line plus the start of the body, or the error; short enough to store.
    pub output: String,
}

impl ProbeResult {
    fn new(status: CheckHealth, output: String) -> Self {
        ProbeResult { status, output }
    }

    fn critical(output: String) -> Self {
        Self::new(CheckHealth::Critical, output)
    }
}

/// What one probe does; the caller maps its stored check definitions to this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// A plain-HTTP request; redirects are not followed and no proxy is used,
    /// so the check sees the target itself.
    Http {
        /// `http://` URL (no TLS backend is built in).
        url: String,
        /// `GET`, `HEAD`, ...; empty means `GET`.
        method: String,
        /// Which statuses count as passing.
        expect: ExpectStatus,
        /// Extra request headers, sent as given (repeated names are all sent).
        headers: Vec<(String, String)>,
    },
    /// A TCP connect; passing once the handshake completes.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// A gRPC health v1 `Check` call over plain-text HTTP/2.
    Grpc {
        /// `host:port`.
        address: String,
        /// The service to ask about; `""` asks for the overall server health.
        service: String,
    },
}

/// The client HTTP probes should share: no redirects (a 301 to a login page is
/// not health), no proxy from the environment (the check must reach the target
/// itself), no retries (one probe, one attempt), and no idle connection pool.
///
/// Sharing the client shares its resolver and configuration. Idle connections
/// are not kept because probes run seconds apart: a kept connection would
/// mostly be closed by the target in between, and reusing one just as the
/// target closes it fails the probe spuriously (the keep-alive race). A fresh
/// connection per probe also checks that the target still accepts connections,
/// as Consul does (it disables keep-alives for HTTP checks).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .retry(reqwest::retry::never())
        .pool_max_idle_per_host(0)
        .user_agent("Concord Health Check")
        .build()
}

/// Runs one probe and reduces it to a health and an output.
///
/// Every step (resolve, connect, request, body) runs against one deadline of
/// `timeout` from the call, so a probe never takes much longer than `timeout`;
/// an HTTP body still arriving at the deadline is cut, not waited for.
///
/// gRPC probes connect per probe rather than caching channels: probes are
/// seconds apart, so a cache would mostly hold idle connections and need its
/// own bounding and eviction, while a fresh connection also checks that the
/// target accepts connections (Consul's gRPC check dials per probe too).
pub async fn probe(target: &ProbeTarget, timeout: Duration, http: &reqwest::Client) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    match target {
        ProbeTarget::Http {
            url,
            method,
            expect,
            headers,
        } => probe_http(http, url, method, expect, headers, deadline, timeout).await,
        ProbeTarget::Tcp { address } => probe_tcp(address, deadline, timeout).await,
        ProbeTarget::Grpc { address, service } => {
            probe_grpc(address, service, deadline, timeout).await
        }
    }
}

async fn probe_http(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    expect: &ExpectStatus,
    headers: &[(String, String)],
    deadline: Instant,
    timeout: Duration,
) -> ProbeResult {
    let method = if method.is_empty() { "GET" } else { method };
    let label = format!("HTTP {method} {url}");
    let request = match http_request(client, url, method, headers) {
        Ok(r) => r,
        Err(e) => return ProbeResult::critical(format!("{label}: {e}")),
    };
    let mut response = match timeout_at(deadline, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return ProbeResult::critical(format!("{label}: {}", error_chain(&e))),
        Err(_) => return ProbeResult::critical(timed_out(&label, timeout)),
    };
    let status = response.status();
    let health = if expect.accepts(status.as_u16()) {
        CheckHealth::Passing
    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        CheckHealth::Warning
    } else {
        CheckHealth::Critical
    };
    let mut output = format!("{label}: {status}");
    let (body, problem) = body_prefix(&mut response, deadline).await;
    if !body.is_empty() {
        output.push_str(" Output: ");
        output.push_str(String::from_utf8_lossy(&body).trim_end());
    }
    if let Some(problem) = problem {
        output.push_str(&format!(" (body incomplete: {problem})"));
    }
    ProbeResult::new(health, output)
}

fn http_request(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    headers: &[(String, String)],
) -> Result<reqwest::RequestBuilder, String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "unsupported scheme `{}` (only http:// is built in)",
            url.scheme()
        ));
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("invalid method `{method}`"))?;
    let mut request = client.request(method, url);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        request = request.header(name, value);
    }
    Ok(request)
}

/// Reads at most [`OUTPUT_BODY_LIMIT`] bytes of the body before `deadline`;
/// the second value says why the body was cut short, if it was.
async fn body_prefix(
    response: &mut reqwest::Response,
    deadline: Instant,
) -> (Vec<u8>, Option<String>) {
    let mut body = Vec::new();
    while body.len() < OUTPUT_BODY_LIMIT {
        match timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = OUTPUT_BODY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return (body, Some(error_chain(&e))),
            Err(_) => return (body, Some("timed out".to_string())),
        }
    }
    (body, None)
}

async fn probe_tcp(address: &str, deadline: Instant, timeout: Duration) -> ProbeResult {
    let label = format!("TCP connect {address}");
    match timeout_at(deadline, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => ProbeResult::new(CheckHealth::Passing, format!("{label}: Success")),
        Ok(Err(e)) => ProbeResult::critical(format!("{label}: {e}")),
        Err(_) => ProbeResult::critical(timed_out(&label, timeout)),
    }
}

async fn probe_grpc(
    address: &str,
    service: &str,
    deadline: Instant,
    timeout: Duration,
) -> ProbeResult {
    let label = if service.is_empty() {
        format!("gRPC check {address}")
    } else {
        format!("gRPC check {address}/{service}")
    };
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = match tonic::transport::Endpoint::from_shared(uri) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return ProbeResult::critical(format!("{label}: invalid address: {e}")),
    };
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        HealthClient::new(channel)
            .check(request)
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    };
    match timeout_at(deadline, call).await {
        Ok(Ok(status)) => match ServingStatus::try_from(status) {
            Ok(ServingStatus::Serving) => {
                ProbeResult::new(CheckHealth::Passing, format!("{label}: SERVING"))
            }
            Ok(other) => ProbeResult::critical(format!("{label}: {}", other.as_str_name())),
            Err(_) => ProbeResult::critical(format!("{label}: unknown serving status {status}")),
        },
        Ok(Err(e)) => ProbeResult::critical(format!("{label}: {e}")),
        Err(_) => ProbeResult::critical(timed_out(&label, timeout)),
    }
}

fn timed_out(label: &str, timeout: Duration) -> String {
    format!("{label}: timed out after {timeout:?}")
}

/// The error and its sources on one line: reqwest and tonic put the useful
/// part ("connection refused") in the sources, not in the top-level message.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}
