//! One participant call: resolve the URL, send the protocol headers, classify the answer.

use std::time::{Duration, Instant};

use concord_api::registry::HealthStatus;
use concord_api::transactions::{
    TRACEPARENT_HEADER, TXN_ATTEMPT_HEADER, TXN_ID_HEADER, TXN_OP_HEADER, TXN_STEP_HEADER, TxnOp,
};
use concord_state::{Call, CallKind, CallResult, Retry, StateMachine};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Everything a call needs, cut out of the record so no lock is held while it runs.
#[derive(Debug, Clone)]
pub(crate) struct CallPlan {
    pub txn: String,
    pub step: String,
    pub op: TxnOp,
    pub attempt: u32,
    pub call: Call,
    pub timeout: Duration,
    pub retry: Retry,
}

/// The HTTP client for participant calls: no proxy, no redirects (a redirect would
/// repeat a non-idempotent call somewhere else), pooled keep-alive connections.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `concord://service[.namespace]/path` to `http://address:port/path` of a passing,
/// non-maintenance instance picked at random; other URLs unchanged.
pub(crate) fn resolve(state: &StateMachine, url: &str) -> Result<String, String> {
    let Some(rest) = url.strip_prefix("concord://") else {
        return Ok(url.to_owned());
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (service, namespace) = authority
        .split_once('.')
        .unwrap_or((authority, concord_api::registry::DEFAULT_NAMESPACE));
    let candidates: Vec<_> = state
        .service(namespace, service)
        .map(|s| {
            s.instances
                .values()
                .map(|r| &r.instance)
                .filter(|i| i.status == HealthStatus::Passing && i.maintenance.is_none())
                .collect()
        })
        .unwrap_or_default();
    if candidates.is_empty() {
        return Err(format!(
            "no passing instance of service {service:?} in namespace {namespace:?}"
        ));
    }
    let pick = candidates[rand::rng().random_range(0..candidates.len())];
    let host = if pick.address.contains(':') {
        format!("[{}]", pick.address)
    } else {
        pick.address.clone()
    };
    Ok(format!("http://{host}:{}{path}", pick.port))
}

/// A W3C `traceparent` whose trace id is the same for every call of a transaction
/// (derived from its id) and whose span id is new per call.
fn traceparent(txn: &str) -> String {
    let hash = Sha256::digest(txn.as_bytes());
    let trace: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    let span: u64 = rand::rng().random_range(1..u64::MAX);
    format!("00-{trace}-{span:016x}-01")
}

/// Jittered exponential backoff: a uniform pick in the upper half of the doubling
/// delay, so retries of many transactions spread out instead of arriving together.
pub(crate) fn backoff_ms(retry: &Retry, attempt: u32) -> u64 {
    let full = retry.backoff_ms(attempt);
    if full < 2 {
        return full;
    }
    rand::rng().random_range(full / 2..=full)
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured: no clocks compared).
fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(secs.saturating_mul(1000).min(3_600_000))
}

/// Makes the call and says how it went; never fails.
pub(crate) async fn run(
    http: &reqwest::Client,
    url: Result<String, String>,
    plan: &CallPlan,
) -> CallResult {
    let started = Instant::now();
    let failed = |error: String, status: Option<u16>| CallResult {
        kind: CallKind::Failed,
        http_status: status,
        latency_ms: started.elapsed().as_millis() as u64,
        error: Some(error),
        retry_in_ms: backoff_ms(&plan.retry, plan.attempt),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => return failed(e, None),
    };
    let method = match reqwest::Method::from_bytes(plan.call.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return failed(format!("invalid method {:?}", plan.call.method), None),
    };
    let mut req = http
        .request(method, &url)
        .timeout(plan.timeout)
        .header(TXN_ID_HEADER, &plan.txn)
        .header(TXN_STEP_HEADER, &plan.step)
        .header(TXN_OP_HEADER, plan.op.as_str())
        .header(TXN_ATTEMPT_HEADER, plan.attempt.to_string())
        .header(TRACEPARENT_HEADER, traceparent(&plan.txn));
    for (k, v) in &plan.call.headers {
        req = req.header(k, v);
    }
    if let Some(body) = &plan.call.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return failed(
                format!("timed out after {} ms", plan.timeout.as_millis()),
                None,
            );
        }
        Err(e) => return failed(error_chain(&e), None),
    };
    let status = resp.status();
    let after = retry_after(&resp);
    // Read (and bound) the body so the connection can be reused; keep a snippet
    // of it for the history when the call did not succeed.
    let snippet = read_snippet(resp).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let code = status.as_u16();
    let (kind, error) = match code {
        200..=299 => (CallKind::Success, None),
        409 => (CallKind::Refused, Some(snippet)),
        425 => (CallKind::Pending, None),
        _ => (CallKind::Failed, Some(format!("HTTP {code}: {snippet}"))),
    };
    let retry_in_ms = match kind {
        CallKind::Pending => after.unwrap_or_else(|| backoff_ms(&plan.retry, plan.attempt)),
        _ => after
            .unwrap_or(0)
            .max(backoff_ms(&plan.retry, plan.attempt)),
    };
    CallResult {
        kind,
        http_status: Some(code),
        latency_ms,
        error,
        retry_in_ms,
    }
}

/// At most 256 characters of the body, lossy UTF-8.
async fn read_snippet(resp: reqwest::Response) -> String {
    const MAX: usize = 256;
    let mut resp = resp;
    let mut buf = Vec::new();
    while buf.len() < 64 * 1024 {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.chars().take(MAX).collect()
}

/// The error and its causes, which is where reqwest says "connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_under_the_cap() {
        let r = Retry {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            max_attempts: 10,
        };
        for _ in 0..100 {
            let b1 = backoff_ms(&r, 1);
            assert!((50..=100).contains(&b1), "{b1}");
            let b3 = backoff_ms(&r, 3);
            assert!((200..=400).contains(&b3), "{b3}");
            let b9 = backoff_ms(&r, 9);
            assert!((500..=1000).contains(&b9), "{b9}");
        }
    }

    #[test]
    fn traceparents_share_the_trace_id_of_their_transaction() {
        let a = traceparent("t1");
        let b = traceparent("t1");
        assert_eq!(a.len(), 55);
        assert_eq!(a[..35], b[..35]);
        assert_ne!(a[..35], traceparent("t2")[..35]);
    }

    #[test]
    fn plain_urls_pass_through_and_unknown_services_fail() {
        let sm = StateMachine::new(Default::default());
        assert_eq!(resolve(&sm, "http://h:1/x").unwrap(), "http://h:1/x");
        assert!(resolve(&sm, "concord://inventory/reserve").is_err());
    }
}
