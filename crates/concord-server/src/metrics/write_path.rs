//! The Raft write path's counters (group commit, holds, fsyncs), copied from the
//! node at scrape time.

use std::sync::Mutex;

use concord_raft::WriteStats;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters that mirror [`WriteStats`]; each scrape adds what grew since the last.
pub struct WritePathMetrics {
    proposals: Counter,
    batches: Counter,
    holds: Counter,
    hold_timeouts: Counter,
    log_appends: Counter,
    log_syncs: Counter,
    /// What the counters already hold; the lock also keeps two scrapes from adding twice.
    last: Mutex<WriteStats>,
}

impl WritePathMetrics {
    /// Creates and registers the counters.
    pub fn new(registry: &mut Registry) -> Self {
        let m = WritePathMetrics {
            proposals: Counter::default(),
            batches: Counter::default(),
            holds: Counter::default(),
            hold_timeouts: Counter::default(),
            log_appends: Counter::default(),
            log_syncs: Counter::default(),
            last: Mutex::new(WriteStats::default()),
        };
        let counters = [
            (
                "raft_proposals",
                "Commands proposed through this node's own proposer",
                &m.proposals,
            ),
            (
                "raft_proposal_batches",
                "Log entries the proposer packed those commands into",
                &m.batches,
            ),
            (
                "raft_batch_holds",
                "Batches held briefly for the writers just answered (group commit)",
                &m.holds,
            ),
            (
                "raft_batch_hold_timeouts",
                "Batch holds that ran out of time before those writers were back",
                &m.hold_timeouts,
            ),
            (
                "raft_log_appends",
                "Log appends, each one fsync",
                &m.log_appends,
            ),
            (
                "raft_log_syncs",
                "Durable log commits of any kind (appends, votes, truncations, purges)",
                &m.log_syncs,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        m
    }

    /// Brings the counters up to `now`.
    pub fn refresh(&self, now: WriteStats) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let add = |c: &Counter, new: u64, old: u64| {
            c.inc_by(new.saturating_sub(old));
        };
        add(&self.proposals, now.proposals, last.proposals);
        add(&self.batches, now.proposal_batches, last.proposal_batches);
        add(&self.holds, now.batch_holds, last.batch_holds);
        add(
            &self.hold_timeouts,
            now.batch_hold_timeouts,
            last.batch_hold_timeouts,
        );
        add(&self.log_appends, now.log_appends, last.log_appends);
        add(&self.log_syncs, now.log_syncs, last.log_syncs);
        *last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn scrapes_add_only_what_grew() {
        let mut registry = Registry::with_prefix("concord");
        let m = WritePathMetrics::new(&mut registry);
        let mut stats = WriteStats {
            proposals: 10,
            proposal_batches: 2,
            batch_holds: 1,
            ..WriteStats::default()
        };
        m.refresh(stats);
        m.refresh(stats);
        stats.proposals = 25;
        stats.batch_hold_timeouts = 1;
        m.refresh(stats);
        let out = text(&registry);
        assert!(out.contains("concord_raft_proposals_total 25\n"), "{out}");
        assert!(
            out.contains("concord_raft_proposal_batches_total 2\n"),
            "{out}"
        );
        assert!(out.contains("concord_raft_batch_holds_total 1\n"), "{out}");
        assert!(
            out.contains("concord_raft_batch_hold_timeouts_total 1\n"),
            "{out}"
        );
        assert!(out.contains("concord_raft_log_syncs_total 0\n"), "{out}");
    }
}
