//! Builders that turn a few chained calls into a [`TxnRequest`] (or a TCC
//! [`Tcc`] start), plus [`CallSpecExt`] to write participant calls tersely.
//!
//! The builders only assemble data: the server validates the request (unique
//! step names, the calls each mode needs, dependencies on earlier steps) and
//! answers `invalid_argument` naming the field, so that rule lives in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use concord_api::transactions::{CallSpec, RetrySpec, StepSpec, TxnMode, TxnRequest};

/// Short constructors for [`CallSpec`], which lives in the wire-types crate and
/// so cannot carry SDK conveniences itself; bring the trait into scope and write
/// `CallSpec::post(url).json(body).header("x-tenant", "acme")`.
pub trait CallSpecExt: Sized {
    /// A `POST` to `url` (the method field is left out: the coordinator's default).
    fn post(url: impl Into<String>) -> Self;
    /// A `PUT` to `url`.
    fn put(url: impl Into<String>) -> Self;
    /// A `DELETE` to `url`.
    fn delete(url: impl Into<String>) -> Self;
    /// Replaces the HTTP method (`"PATCH"`, ...).
    fn method(self, method: impl Into<String>) -> Self;
    /// Sets the JSON body sent as is (`serde_json::json!({...})`, or
    /// `serde_json::to_value(&typed)?` for a typed body).
    fn json(self, body: impl Into<serde_json::Value>) -> Self;
    /// Adds (or replaces) one request header.
    fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self;
}

impl CallSpecExt for CallSpec {
    fn post(url: impl Into<String>) -> Self {
        CallSpec {
            url: url.into(),
            method: None,
            body: None,
            headers: BTreeMap::new(),
        }
    }

    fn put(url: impl Into<String>) -> Self {
        CallSpec::post(url).method("PUT")
    }

    fn delete(url: impl Into<String>) -> Self {
        CallSpec::post(url).method("DELETE")
    }

    fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn json(mut self, body: impl Into<serde_json::Value>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// Whole seconds, rounded up: a 500 ms timeout must not become "no time at all".
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Whole milliseconds, rounded up and saturating.
fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A request of `mode` with nothing else set.
fn empty_request(mode: TxnMode) -> TxnRequest {
    TxnRequest {
        id: None,
        mode,
        steps: Vec::new(),
        concurrent: false,
        depends_on: BTreeMap::new(),
        timeout_secs: None,
        step_timeout_ms: None,
        retry: None,
        wait: false,
    }
}

/// The setters every mode shares. A macro rather than a trait so callers need
/// no extra import to chain them.
macro_rules! common_setters {
    () => {
        /// Client-chosen id (1-128 of `A-Za-z0-9._:-`); resubmitting the same id
        /// and body is idempotent, so pick one you can regenerate after a crash.
        /// Without it the server picks one.
        pub fn id(mut self, id: impl Into<String>) -> Self {
            self.request.id = Some(id.into());
            self
        }

        /// How long the forward phase may take before the transaction aborts
        /// (whole seconds, rounded up).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.request.timeout_secs = Some(ceil_secs(timeout));
            self
        }

        /// Per-call timeout for steps that set none (milliseconds, rounded up).
        pub fn step_timeout(mut self, timeout: Duration) -> Self {
            self.request.step_timeout_ms = Some(ceil_millis(timeout));
            self
        }

        /// Retry limits for steps that set none.
        pub fn retry(mut self, retry: RetrySpec) -> Self {
            self.request.retry = Some(retry);
            self
        }
    };
}

/// Builds a saga: actions in order (or by dependency with
/// [`Saga::concurrent`]); on failure the coordinator compensates what took
/// effect, in reverse.
///
/// ```no_run
/// # async fn demo() -> Result<(), concord_client::ClientError> {
/// use std::time::Duration;
///
/// use concord_client::api::transactions::{CallSpec, RetrySpec};
/// use concord_client::{CallSpecExt, Client, Saga, TxnAnswer};
/// use serde_json::json;
///
/// let client = Client::new("http://127.0.0.1:7600");
/// let order = Saga::new()
///     .id("order-1042")
///     .step(
///         "reserve",
///         CallSpec::post("concord://stock/reserve").json(json!({"sku": "A7", "qty": 2})),
///         Some(CallSpec::post("concord://stock/release").json(json!({"sku": "A7", "qty": 2}))),
///     )
///     .step(
///         "charge",
///         CallSpec::post("concord://payments/charge").json(json!({"cents": 1999})),
///         Some(CallSpec::post("concord://payments/refund")),
///     )
///     .step("notify", CallSpec::post("concord://mail/order-placed"), None)
///     // Reserve and charge at once; notify only after both.
///     .concurrent()
///     .depends_on("notify", ["reserve", "charge"])
///     .timeout(Duration::from_secs(30))
///     .retry(RetrySpec { max_attempts: Some(5), ..RetrySpec::default() })
///     .wait(true)
///     .build();
/// match client.create_transaction(&order).await? {
///     TxnAnswer::Finished(view) => println!("{} ended {}", view.id, view.status),
///     TxnAnswer::Accepted(accepted) => println!("{} still {}", accepted.id, accepted.status),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Saga {
    request: TxnRequest,
}

impl Default for Saga {
    fn default() -> Self {
        Saga::new()
    }
}

impl Saga {
    /// An empty saga.
    pub fn new() -> Self {
        Saga {
            request: empty_request(TxnMode::Saga),
        }
    }

    common_setters!();

    /// Adds a step: `action` moves forward, `compensate` undoes it (none for a
    /// step with nothing to undo, e.g. a final notification).
    pub fn step(
        self,
        name: impl Into<String>,
        action: CallSpec,
        compensate: Option<CallSpec>,
    ) -> Self {
        self.step_with(StepSpec {
            name: name.into(),
            action: Some(action),
            compensate,
            ..StepSpec::default()
        })
    }

    /// Adds a fully specified step (its own timeout or retry limits).
    pub fn step_with(mut self, step: StepSpec) -> Self {
        self.request.steps.push(step);
        self
    }

    /// Starts every action whose dependencies succeeded at once instead of one
    /// by one; without [`Saga::depends_on`] that means all actions in parallel.
    pub fn concurrent(mut self) -> Self {
        self.request.concurrent = true;
        self
    }

    /// `step` starts only after each of `after` succeeded (earlier steps only).
    /// Repeated calls for one step add to its list.
    pub fn depends_on<I, S>(mut self, step: impl Into<String>, after: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request
            .depends_on
            .entry(step.into())
            .or_default()
            .extend(after.into_iter().map(Into::into));
        self
    }

    /// Answer only once the saga ended (or its timeout passed), with its full view.
    pub fn wait(mut self, wait: bool) -> Self {
        self.request.wait = wait;
        self
    }

    /// The request to pass to [`Client::create_transaction`](crate::Client::create_transaction).
    pub fn build(self) -> TxnRequest {
        self.request
    }
}

/// Builds a two-phase commit: every step prepares (votes), then all commit, or
/// all that prepared roll back.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoPhase {
    request: TxnRequest,
}

impl Default for TwoPhase {
    fn default() -> Self {
        TwoPhase::new()
    }
}

impl TwoPhase {
    /// An empty two-phase transaction.
    pub fn new() -> Self {
        TwoPhase {
            request: empty_request(TxnMode::TwoPc),
        }
    }

    common_setters!();

    /// Adds a participant step with its three calls.
    pub fn step(
        self,
        name: impl Into<String>,
        prepare: CallSpec,
        commit: CallSpec,
        rollback: CallSpec,
    ) -> Self {
        self.step_with(StepSpec {
            name: name.into(),
            prepare: Some(prepare),
            commit: Some(commit),
            rollback: Some(rollback),
            ..StepSpec::default()
        })
    }

    /// Adds a fully specified step (its own timeout or retry limits).
    pub fn step_with(mut self, step: StepSpec) -> Self {
        self.request.steps.push(step);
        self
    }

    /// Answer only once the transaction ended (or its timeout passed).
    pub fn wait(mut self, wait: bool) -> Self {
        self.request.wait = wait;
        self
    }

    /// The request to pass to [`Client::create_transaction`](crate::Client::create_transaction).
    pub fn build(self) -> TxnRequest {
        self.request
    }
}

/// Options of a TCC transaction, started with
/// [`Client::begin_tcc`](crate::Client::begin_tcc); its branches are added one
/// by one through the returned [`TccHandle`](crate::TccHandle).
///
/// There is no `wait`: a TCC transaction only ends on commit or abort, so the
/// start must answer at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Tcc {
    request: TxnRequest,
}

impl Default for Tcc {
    fn default() -> Self {
        Tcc::new()
    }
}

impl Tcc {
    /// A TCC transaction with the server's defaults.
    pub fn new() -> Self {
        Tcc {
            request: empty_request(TxnMode::Tcc),
        }
    }

    common_setters!();

    /// The request that starts it, for callers that submit it themselves.
    pub fn build(self) -> TxnRequest {
        self.request
    }
}
