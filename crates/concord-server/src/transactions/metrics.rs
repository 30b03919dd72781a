//! Transaction metrics: by mode and status (set at scrape time), participant calls
//! by op and outcome, call latency, retries, and the stuck/running gauges to alert on.

use concord_api::transactions::{TxnMode, TxnStatus};
use concord_state::StateMachine;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeStatus {
    mode: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

fn call_histogram() -> Histogram {
    // 500 µs .. ~65 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Everything the coordinator exports.
#[derive(Debug)]
pub struct TxnMetrics {
    by_status: Family<ModeStatus, Gauge>,
    stuck: Gauge,
    running: Gauge,
    calls: Family<CallLabels, Counter>,
    latency: Family<OpLabel, Histogram, fn() -> Histogram>,
    /// Calls retried after a failure or a 425 (on the leader).
    pub retries: Counter,
    /// Finished transactions forgotten after their retention.
    pub forgotten: Counter,
}

impl TxnMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = TxnMetrics {
            by_status: Family::default(),
            stuck: Gauge::default(),
            running: Gauge::default(),
            calls: Family::default(),
            latency: Family::new_with_constructor(call_histogram),
            retries: Counter::default(),
            forgotten: Counter::default(),
        };
        registry.register(
            "transactions",
            "Transactions held, by mode and status",
            m.by_status.clone(),
        );
        registry.register(
            "transactions_stuck",
            "Transactions waiting for an operator (alert when above zero)",
            m.stuck.clone(),
        );
        registry.register(
            "transactions_unfinished",
            "Transactions running, trying or aborting",
            m.running.clone(),
        );
        registry.register(
            "transaction_step_calls",
            "Participant calls this node made as leader, by op and outcome",
            m.calls.clone(),
        );
        registry.register(
            "transaction_step_duration_seconds",
            "Participant call latency by op",
            m.latency.clone(),
        );
        registry.register(
            "transaction_retries",
            "Participant calls retried after a failure or a 425",
            m.retries.clone(),
        );
        registry.register(
            "transactions_forgotten",
            "Finished transactions dropped after their retention",
            m.forgotten.clone(),
        );
        m
    }

    /// Counts one participant call and its latency.
    pub(crate) fn observe_call(&self, op: &'static str, outcome: &'static str, latency_ms: u64) {
        self.calls.get_or_create(&CallLabels { op, outcome }).inc();
        self.latency
            .get_or_create(&OpLabel { op })
            .observe(latency_ms as f64 / 1000.0);
    }

    /// Recounts transactions by mode and status from the state (at scrape time).
    pub(crate) fn refresh(&self, state: &StateMachine) {
        let modes = [TxnMode::Saga, TxnMode::Tcc, TxnMode::TwoPc];
        let mut counts = [[0i64; TxnStatus::ALL.len()]; 3];
        for t in state.txns_after(None) {
            let m = modes.iter().position(|&m| m == t.mode).unwrap_or(0);
            let s = TxnStatus::ALL
                .iter()
                .position(|&s| s == t.status)
                .unwrap_or(0);
            counts[m][s] += 1;
        }
        let mut stuck = 0;
        let mut running = 0;
        for (m, mode) in modes.iter().enumerate() {
            for (s, status) in TxnStatus::ALL.iter().enumerate() {
                let n = counts[m][s];
                self.by_status
                    .get_or_create(&ModeStatus {
                        mode: mode.as_str(),
                        status: status.as_str(),
                    })
                    .set(n);
                match status {
                    TxnStatus::Stuck => stuck += n,
                    TxnStatus::Running | TxnStatus::Trying | TxnStatus::Aborting => running += n,
                    _ => {}
                }
            }
        }
        self.stuck.set(stuck);
        self.running.set(running);
    }
}
