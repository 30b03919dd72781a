//! [`ServiceClient`]: calls registered services by name, with the gateway's
//! call semantics but without a hop through the gateway.
//!
//! Every call: picks an instance from a cached [`Discovery`] (one per
//! service, kept by a watch), asks that instance's circuit breaker, sends with
//! a per-try timeout inside a total deadline, and retries on another instance
//! when the failure is one the [`CallPolicy`] lists, the method is idempotent
//! (or `non_idempotent` is set) and the retry budget allows. The breaker,
//! retry conditions, backoff and budget are [`concord_balance`]'s, the same
//! code a gateway route runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_api::registry::Instance;
use concord_balance::Pick;
use concord_balance::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Refused};
use concord_balance::retry::{self, Failure, RetryBudget, RetryOn, RetryPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::discovery::Discovery;

/// How calls to a service are protected; [`Default`] is a gateway route's
/// defaults (15 s per try, 30 s total, one retry, idempotent methods only, no
/// circuit breaker), retrying on `connect_failure` and also on `reset`: the
/// gateway's own connection pool resends a request that met a dead keep-alive
/// connection, reqwest's does not, and an instance killed between two calls
/// leaves exactly such connections behind.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPolicy {
    /// Longest wait for one attempt's response.
    pub per_try_timeout: Duration,
    /// Longest wait over all attempts, backoff included.
    pub total_timeout: Duration,
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Failures that are retried; empty means `connect_failure` only.
    pub retry_on: Vec<RetryOn>,
    /// Retry POST, PATCH and other non-idempotent methods too: only for
    /// services that deduplicate (a retried write may run twice).
    pub non_idempotent: bool,
    /// A breaker per instance with these settings; `None`: no breaker.
    pub circuit_breaker: Option<BreakerConfig>,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            per_try_timeout: retry::DEFAULT_PER_TRY_TIMEOUT,
            total_timeout: retry::DEFAULT_TOTAL_TIMEOUT,
            attempts: retry::DEFAULT_ATTEMPTS,
            retry_on: vec![RetryOn::ConnectFailure, RetryOn::Reset],
            non_idempotent: false,
            circuit_breaker: None,
        }
    }
}

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service has no passing instance (or discovery failed; the text says which).
    #[error("no instance of {0} is available")]
    NoInstance(String),
    /// Every candidate instance's circuit breaker refused the call.
    #[error("circuit open for every instance of {0}")]
    CircuitOpen(String),
    /// The per-try or total timeout ran out.
    #[error("the call timed out")]
    Timeout,
    /// The service answered with a non-2xx status (from the JSON helpers;
    /// [`ServiceClient::call`] returns such responses as they are).
    #[error("the service answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: Bytes,
    },
    /// The request could not be sent or its answer not received.
    #[error("transport error: {0}")]
    Transport(String),
    /// A request or response body was not the expected JSON.
    #[error("cannot decode: {0}")]
    Decode(String),
}

/// Calls registered services by name; see the module docs.
///
/// Cheap to clone; clones share discovery caches, breakers and budgets.
///
/// ```no_run
/// # async fn demo() -> Result<(), concord_client::CallError> {
/// use concord_client::{CallPolicy, Client, ServiceClient};
///
/// let services = ServiceClient::new(Client::new("http://127.0.0.1:7600"))
///     .with_policy(CallPolicy { attempts: 2, ..CallPolicy::default() });
/// let stock: serde_json::Value = services.get_json("inventory", "/stock/sku-1").await?;
/// # let _ = stock;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    http: reqwest::Client,
    policy: CallPolicy,
    retry: RetryPolicy,
    discoveries: tokio::sync::Mutex<HashMap<String, Discovery>>,
    /// Keyed by (service, instance id).
    breakers: Mutex<HashMap<(String, String), Arc<CircuitBreaker>>>,
    budgets: Mutex<HashMap<String, Arc<RetryBudget>>>,
}

/// The result of one attempt: a response, or how it failed.
enum Attempt {
    Answered(http::Response<Bytes>),
    Failed(Failure, CallError),
}

impl ServiceClient {
    /// A service client using `client` for discovery, with [`CallPolicy::default`].
    pub fn new(client: Client) -> ServiceClient {
        ServiceClient::build(client, CallPolicy::default())
    }

    /// Returns a service client with `policy` (fresh caches, breakers and budgets).
    pub fn with_policy(self, policy: CallPolicy) -> ServiceClient {
        ServiceClient::build(self.inner.client.clone(), policy)
    }

    fn build(client: Client, policy: CallPolicy) -> ServiceClient {
        let mut retry = RetryPolicy::new(policy.attempts, &policy.retry_on);
        retry.non_idempotent = policy.non_idempotent;
        let http = reqwest::Client::builder()
            .connect_timeout(retry::DEFAULT_CONNECT_TIMEOUT)
            .build()
            .unwrap_or_default();
        ServiceClient {
            inner: Arc::new(Inner {
                client,
                http,
                policy,
                retry,
                discoveries: tokio::sync::Mutex::new(HashMap::new()),
                breakers: Mutex::new(HashMap::new()),
                budgets: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The policy calls follow.
    pub fn policy(&self) -> &CallPolicy {
        &self.inner.policy
    }

    /// Sends `request` (its URI is the path and query, e.g. `/orders?limit=5`)
    /// to an instance of `service`, retrying and breaking as the policy says.
    ///
    /// Any answer that is not retried (or the last one) is returned as it is,
    /// whatever its status; errors are for calls that got no usable answer.
    pub async fn call(
        &self,
        service: &str,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, CallError> {
        let inner = &self.inner;
        let started = Instant::now();
        let deadline = started + inner.policy.total_timeout;
        let discovery = self.discovery(service).await?;
        let budget = self.budget(service);
        budget.record_request(started);
        let may_retry = inner.retry.allows_method(request.method());
        let mut tried: Vec<String> = Vec::new();
        let mut retries = 0;
        loop {
            let (instance, pick) = self.choose(service, &discovery, &tried)?;
            let breaker = self.breaker(service, &instance.id);
            let permit = match &breaker {
                Some(b) => match b.admit(Instant::now()) {
                    Ok(p) => Some(p),
                    Err(Refused::Open | Refused::Concurrency) => {
                        return Err(CallError::CircuitOpen(service.to_owned()));
                    }
                },
                None => None,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CallError::Timeout);
            }
            let timeout = inner.policy.per_try_timeout.min(remaining);
            let sent_at = Instant::now();
            let attempt = self.attempt(&instance, &request, timeout).await;
            let latency = sent_at.elapsed();
            let failure = match &attempt {
                Attempt::Answered(r) if r.status().is_server_error() => {
                    Some(Failure::Status(r.status().as_u16()))
                }
                Attempt::Answered(_) => None,
                Attempt::Failed(f, _) => Some(*f),
            };
            let broke = failure.is_some();
            if let (Some(b), Some(p)) = (&breaker, permit) {
                b.record(p, broke, latency, Instant::now());
            }
            if let Some(pick) = pick {
                pick.finish(latency, !broke);
            }
            tried.push(instance.id.clone());
            let retryable = failure.is_some_and(|f| inner.retry.retries_on(f))
                && may_retry
                && retries < inner.retry.attempts
                && budget.try_retry(Instant::now());
            if !retryable {
                return match attempt {
                    Attempt::Answered(r) => Ok(r),
                    Attempt::Failed(_, e) => Err(e),
                };
            }
            retries += 1;
            let pause =
                retry::backoff(retries).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }

    /// `GET path` on `service`, decoding a 2xx JSON answer; other statuses are
    /// [`CallError::Status`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        service: &str,
        path: &str,
    ) -> Result<T, CallError> {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| CallError::Transport(format!("bad request: {e}")))?;
        decode(self.call(service, request).await?)
    }

    /// `POST path` on `service` with `body` as JSON, decoding a 2xx JSON answer;
    /// other statuses are [`CallError::Status`]. Retried only when the policy
    /// says `non_idempotent`.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        service: &str,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body).map_err(|e| CallError::Decode(e.to_string()))?;
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| CallError::Transport(format!("bad request: {e}")))?;
        decode(self.call(service, request).await?)
    }

    /// The cached discovery of `service`, started on first use.
    async fn discovery(&self, service: &str) -> Result<Discovery, CallError> {
        let mut map = self.inner.discoveries.lock().await;
        if let Some(d) = map.get(service) {
            return Ok(d.clone());
        }
        let d = Discovery::start(self.inner.client.clone(), service)
            .await
            .map_err(|e| CallError::NoInstance(format!("{service} (discovery failed: {e})")))?;
        map.insert(service.to_owned(), d.clone());
        Ok(d)
    }

    /// An instance to try: preferably one not tried yet whose breaker is not
    /// open, as the balancer ranks them; else any such instance; else (so the
    /// breaker can say why) whatever the balancer picks.
    fn choose(
        &self,
        service: &str,
        discovery: &Discovery,
        tried: &[String],
    ) -> Result<(Instance, Option<Pick>), CallError> {
        let instances = discovery.instances();
        if instances.is_empty() {
            return Err(CallError::NoInstance(service.to_owned()));
        }
        let fresh = |id: &str| {
            !tried.iter().any(|t| t == id)
                && self
                    .breaker(service, id)
                    .is_none_or(|b| b.state(Instant::now()) != BreakerState::Open)
        };
        let mut fallback = None;
        // Bounded: a few balancer picks per instance.
        for _ in 0..instances.len() * 2 {
            let Some((instance, pick)) = discovery.pick_tracked(None) else {
                break;
            };
            if fresh(&instance.id) {
                return Ok((instance, Some(pick)));
            }
            fallback.get_or_insert((instance, None));
        }
        if let Some(instance) = instances.into_iter().find(|i| fresh(&i.id)) {
            return Ok((instance, None));
        }
        fallback.ok_or_else(|| CallError::NoInstance(service.to_owned()))
    }

    fn breaker(&self, service: &str, id: &str) -> Option<Arc<CircuitBreaker>> {
        let config = self.inner.policy.circuit_breaker.as_ref()?;
        let mut map = self
            .inner
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let breaker = map
            .entry((service.to_owned(), id.to_owned()))
            .or_insert_with(|| Arc::new(CircuitBreaker::new(config.clone())));
        Some(Arc::clone(breaker))
    }

    fn budget(&self, service: &str) -> Arc<RetryBudget> {
        let mut map = self
            .inner
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let budget = map
            .entry(service.to_owned())
            .or_insert_with(|| Arc::new(RetryBudget::new(retry::DEFAULT_BUDGET_PERCENT)));
        Arc::clone(budget)
    }

    /// One attempt at one instance within `timeout`.
    async fn attempt(
        &self,
        instance: &Instance,
        request: &http::Request<Bytes>,
        timeout: Duration,
    ) -> Attempt {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let url = format!(
            "http://{}:{}{}",
            host(&instance.address),
            instance.port,
            path
        );
        let mut builder = self
            .inner
            .http
            .request(request.method().clone(), url)
            .body(request.body().clone());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let sent = tokio::time::timeout(timeout, async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        })
        .await;
        match sent {
            Err(_) => Attempt::Failed(Failure::Timeout, CallError::Timeout),
            Ok(Err(e)) => {
                let failure = if e.is_connect() {
                    Failure::ConnectFailure
                } else if e.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Reset
                };
                Attempt::Failed(failure, CallError::Transport(e.to_string()))
            }
            Ok(Ok((status, headers, body))) => {
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                Attempt::Answered(response)
            }
        }
    }
}

/// IPv6 literals need brackets in a URL.
fn host(address: &str) -> std::borrow::Cow<'_, str> {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]").into()
    } else {
        address.into()
    }
}

fn decode<T: DeserializeOwned>(response: http::Response<Bytes>) -> Result<T, CallError> {
    let status = response.status();
    if !status.is_success() {
        return Err(CallError::Status {
            status: status.as_u16(),
            body: response.into_body(),
        });
    }
    serde_json::from_slice(response.body()).map_err(|e| CallError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_gateway_route_defaults_plus_resets() {
        let p = CallPolicy::default();
        assert_eq!(p.per_try_timeout, Duration::from_secs(15));
        assert_eq!(p.total_timeout, Duration::from_secs(30));
        assert_eq!(p.attempts, 1);
        // The gateway's pool resends on a dead keep-alive connection by itself;
        // reqwest's does not, so the SDK retries resets (idempotent methods only).
        assert_eq!(p.retry_on, vec![RetryOn::ConnectFailure, RetryOn::Reset]);
        assert!(!p.non_idempotent);
        assert!(p.circuit_breaker.is_none());
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(host("::1"), "[::1]");
        assert_eq!(host("10.0.0.1"), "10.0.0.1");
    }
}
