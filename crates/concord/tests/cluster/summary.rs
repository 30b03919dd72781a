//! The human-readable account of a run: what each round did, how many
//! operations of each kind and outcome there were, what the watches went
//! through, and what the checker spent.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::verify;
use crate::watches::StreamLog;
use crate::workload::ClientLog;

/// What a round did, for the summary.
pub struct RoundLog {
    pub fault: String,
    pub leader_before: u64,
    pub leader_during: Option<u64>,
    pub leader_after: u64,
    pub settle: Duration,
}

/// Everything the summary reports on.
pub struct Summary<'a> {
    pub nodes: u64,
    pub snapshot_every: u64,
    pub rounds: &'a [RoundLog],
    pub logs: &'a [ClientLog],
    pub streams: &'a [StreamLog],
    pub reference: &'a verify::Reference,
    pub acked_checked: usize,
    pub report: &'a concord_check::Report,
    pub load_time: Duration,
    pub total: Duration,
    pub unused_links: Vec<(u64, u64)>,
    pub late_writes: usize,
    pub log_index: u64,
}

pub fn print_summary(s: Summary<'_>) {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in s.logs.iter().flat_map(|l| &l.records) {
        let what = match (&r.op.call, r.op.completion.as_ref().map(|c| &c.ret)) {
            (concord_check::Call::Get, _) => "get",
            (concord_check::Call::Put { .. }, Some(_)) => "put acked",
            (concord_check::Call::Put { .. }, None) => "put unknown",
            (_, Some(concord_check::Ret::Swapped(true))) => "cas swapped",
            (_, Some(_)) => "cas not swapped",
            (_, None) => "cas unknown",
        };
        *counts.entry(what).or_default() += 1;
    }
    let total: u64 = counts.values().sum();
    let not_sent: u64 = s.logs.iter().map(|l| l.not_sent).sum();
    let dropped: u64 = s.logs.iter().map(|l| l.dropped_reads).sum();
    let mut reasons: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for l in s.logs {
        for (k, (n, msg)) in &l.unknown_reasons {
            let e = reasons.entry(k.as_str()).or_insert((0, msg.as_str()));
            e.0 += n;
        }
    }
    eprintln!("==== fault run summary ({} nodes) ====", s.nodes);
    for (i, r) in s.rounds.iter().enumerate() {
        eprintln!(
            "round {i}: {} | leader {} -> during {:?} -> after {} | settled in {:?}",
            r.fault, r.leader_before, r.leader_during, r.leader_after, r.settle
        );
    }
    eprintln!(
        "ops: {total} recorded {counts:?}; {not_sent} writes not sent (connect failed), {dropped} reads without answer; {} late writes after convergence",
        s.late_writes
    );
    eprintln!(
        "unknown outcomes by reason: count, how many the history shows applied, first message:"
    );
    let applied = verify::applied_unknowns(s.reference, s.logs);
    for (why, (n, msg)) in &reasons {
        match applied.get(*why) {
            Some(u) if u.applied > 0 => eprintln!(
                "  {why}: {n}, {} applied, e.g. {:?} (first: {msg:?})",
                u.applied,
                u.applied_example.as_deref().unwrap_or_default()
            ),
            _ => eprintln!("  {why}: {n}, none applied (first: {msg:?})"),
        }
    }
    eprintln!(
        "history: {} events through revision {} (complete after {}); {} acknowledged writes found in it",
        s.reference
            .by_revision
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        s.reference.until,
        s.reference.after,
        s.acked_checked
    );
    for st in s.streams {
        eprintln!(
            "watch on node {}: {} segment(s), {} events, connections {:?}, breaks {:?}",
            st.home,
            st.segments.len(),
            st.segments.iter().map(|g| g.changes.len()).sum::<usize>(),
            st.connections,
            st.breaks
        );
    }
    eprintln!(
        "checker: {:?} on {} keys, {} ops, {} steps, {:?}",
        s.report.verdict.is_linearizable(),
        s.report.keys,
        s.report.ops,
        s.report.steps,
        s.report.elapsed
    );
    eprintln!(
        "raft log reached index {} (a snapshot every {} entries)",
        s.log_index, s.snapshot_every
    );
    eprintln!("links never used: {:?}", s.unused_links);
    eprintln!("time: {:?} under load, {:?} in total", s.load_time, s.total);
}
