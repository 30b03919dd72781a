//! Forgetting finished transactions: after `txn_retention` (timed by the leader's
//! own clock from when it saw the revision, so a new leader only ever keeps them
//! longer) or beyond `txn_max_finished`, oldest first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use concord_state::Command;
use tokio::sync::watch;
use tracing::warn;

use crate::node::SharedNode;

/// How often the leader looks.
const TICK: Duration = Duration::from_secs(1);
/// Most ids per forget command, to keep log entries small.
const BATCH: usize = 1000;

/// Runs until `shutdown` flips.
pub(crate) async fn run(node: SharedNode, mut shutdown: watch::Receiver<bool>) {
    let retention = node.config.txn_retention;
    let cap = node.config.txn_max_finished;
    // (when this leader saw it, the revision then), oldest first.
    let mut seen: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut term = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let leading = node.leading_term();
        if leading != term {
            seen.clear();
            term = leading;
        }
        if term.is_none() {
            continue;
        }
        let now = Instant::now();
        let ids: Vec<String> = {
            let state = node.state();
            seen.push_back((now, state.revision()));
            // The newest revision seen at least `retention` ago.
            let mut oldest = None;
            while let Some(&(at, rev)) = seen.front() {
                if now.duration_since(at) < retention {
                    break;
                }
                oldest = Some((at, rev));
                seen.pop_front();
            }
            // Keep it: it stays the horizon until a newer one ages past it.
            let horizon = oldest.map_or(0, |(_, rev)| rev);
            if let Some(o) = oldest {
                seen.push_front(o);
            }
            let over = state.finished_txn_count().saturating_sub(cap);
            let old = state.finished_txns_until(horizon).count();
            state
                .finished_txns_until(u64::MAX)
                .take(over.max(old).min(BATCH))
                .map(str::to_owned)
                .collect()
        };
        if ids.is_empty() {
            continue;
        }
        let n = ids.len();
        match node.write(Command::TxnForget { ids }).await {
            Ok(_) => {
                node.metrics.txn.forgotten.inc_by(n as u64);
            }
            Err(e) => warn!(error = %e.message, "could not forget finished transactions"),
        }
    }
}
