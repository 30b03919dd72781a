//! Checks run after the faults are healed and the cluster has converged: the
//! nodes' event histories agree, every watch stream matches them exactly, every
//! acknowledged write is in them, no value appears that nobody wrote, and every
//! node holds the same final state, the one the history leads to.

use std::collections::{BTreeMap, HashSet};

use crate::watches::{Change, NodeHistory, Segment, StreamLog};
use crate::workload::{ClientLog, Record};
use concord_check::Call;

/// The store's history of the workload's prefix, merged from every node.
#[derive(Debug, Default)]
pub struct Reference {
    /// Changes after this revision are complete (0 unless every node compacted).
    pub after: u64,
    /// Through this revision.
    pub until: u64,
    pub by_revision: BTreeMap<u64, Vec<Change>>,
}

impl Reference {
    /// The changes in `(from, to]`, in order.
    fn range(&self, from: u64, to: u64) -> Vec<&Change> {
        if from >= to {
            return Vec::new();
        }
        self.by_revision
            .range(from + 1..=to)
            .flat_map(|(_, cs)| cs.iter())
            .collect()
    }

    /// Key -> value after replaying every change, or `None` if the history
    /// does not start at revision 0 (then the state cannot be derived from it).
    pub fn final_state(&self) -> Option<BTreeMap<String, String>> {
        if self.after != 0 {
            return None;
        }
        let mut state = BTreeMap::new();
        for c in self.by_revision.values().flatten() {
            match &c.value {
                Some(v) => state.insert(c.key.clone(), v.clone()),
                None => state.remove(&c.key),
            };
        }
        Some(state)
    }
}

/// Order and uniqueness within one list of changes.
fn order_problems(what: &str, changes: &[Change]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for w in changes.windows(2) {
        if w[1].revision < w[0].revision {
            problems.push(format!(
                "{what}: revision {} after {} (out of order)",
                w[1].revision, w[0].revision
            ));
        }
    }
    for c in changes {
        if !seen.insert((c.revision, c.key.as_str())) {
            problems.push(format!("{what}: duplicate event {c:?}"));
        }
    }
    problems
}

/// The first place two change lists differ, described.
fn first_difference(what: &str, got: &[&Change], want: &[&Change]) -> Option<String> {
    let i = got
        .iter()
        .zip(want.iter())
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    if i == got.len() && i == want.len() {
        return None;
    }
    Some(format!(
        "{what}: differs from the history at position {i}: got {:?}, the history has {:?} ({} vs {} events)",
        got.get(i),
        want.get(i),
        got.len(),
        want.len()
    ))
}

/// Merges every node's history; each must be ordered, duplicate-free and equal
/// to the merge over the range it covers (nodes never disagree on a revision).
pub fn merge_histories(histories: &[NodeHistory], until: u64) -> (Reference, Vec<String>) {
    let mut problems = Vec::new();
    let mut r = Reference {
        after: histories.iter().map(|h| h.after).min().unwrap_or(0),
        until,
        by_revision: BTreeMap::new(),
    };
    for h in histories {
        problems.extend(order_problems(
            &format!("node {} history", h.node),
            &h.changes,
        ));
        for c in &h.changes {
            let at = r.by_revision.entry(c.revision).or_default();
            if !at.contains(c) {
                at.push(c.clone());
            }
        }
    }
    for h in histories {
        let got: Vec<&Change> = h.changes.iter().collect();
        let want = r.range(h.after, until);
        if let Some(d) = first_difference(&format!("node {} history", h.node), &got, &want) {
            problems.push(d);
        }
    }
    (r, problems)
}

/// A watch stream must be exactly the history over the revisions it covered.
pub fn stream_problems(r: &Reference, log: &StreamLog) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, seg) in log.segments.iter().enumerate() {
        let what = format!("watch homed on node {} segment {i}", log.home);
        problems.extend(order_problems(&what, &seg.changes));
        problems.extend(segment_vs_history(&what, r, seg));
    }
    problems
}

fn segment_vs_history(what: &str, r: &Reference, seg: &Segment) -> Option<String> {
    let from = seg.after.max(r.after);
    let to = seg.reached.min(r.until);
    let got: Vec<&Change> = seg
        .changes
        .iter()
        .filter(|c| c.revision > from && c.revision <= to)
        .collect();
    first_difference(what, &got, &r.range(from, to))
}

/// The value an acknowledged write stored, and the revision it was given.
fn acked_write(rec: &Record) -> Option<(u64, &str)> {
    let value = match &rec.op.call {
        Call::Put { value } => value,
        Call::Cas { new, .. } => new,
        _ => return None,
    };
    rec.write_revision.map(|rev| (rev, value.as_str()))
}

/// Every acknowledged write must be in the history at the revision it was
/// acknowledged with. Returns the problems and how many writes could be checked
/// (those older than every node's retained history cannot).
pub fn acked_write_problems(r: &Reference, logs: &[ClientLog]) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut checked = 0;
    for rec in logs.iter().flat_map(|l| &l.records) {
        let acked_put = matches!(rec.op.call, Call::Put { .. }) && rec.op.completion.is_some();
        if acked_put && rec.write_revision.is_none() {
            problems.push(format!("acknowledged put without a revision: {}", rec.op));
        }
        let Some((rev, value)) = acked_write(rec) else {
            continue;
        };
        if rev <= r.after {
            continue;
        }
        checked += 1;
        let want = Change {
            revision: rev,
            key: rec.op.key.clone(),
            value: Some(value.to_owned()),
        };
        if !r.by_revision.get(&rev).is_some_and(|cs| cs.contains(&want)) {
            problems.push(format!(
                "acknowledged write lost: {} (node {}) at revision {rev}; the history has {:?} there",
                rec.op,
                rec.node,
                r.by_revision.get(&rev)
            ));
        }
    }
    (problems, checked)
}

/// Every value in the history was written by some client (or is the marker).
pub fn phantom_problems(r: &Reference, logs: &[ClientLog], marker: &str) -> Vec<String> {
    let written: HashSet<&str> = logs
        .iter()
        .flat_map(|l| &l.records)
        .filter_map(|rec| match &rec.op.call {
            Call::Put { value } => Some(value.as_str()),
            Call::Cas { new, .. } => Some(new.as_str()),
            _ => None,
        })
        .chain([marker])
        .collect();
    r.by_revision
        .values()
        .flatten()
        .filter(|c| c.value.as_deref().is_some_and(|v| !written.contains(v)))
        .map(|c| format!("history holds a value no client wrote: {c:?}"))
        .collect()
}

/// Writes that ended as unknown outcomes for one reason.
#[derive(Debug, Default)]
pub struct UnknownWrites {
    pub total: u64,
    /// How many the history shows applied.
    pub applied: u64,
    /// The server's message on one that was applied.
    pub applied_example: Option<String>,
}

/// Unknown-outcome writes by reason, and how many of them were applied. A
/// reason whose writes are sometimes applied must not be presented to clients
/// as a plain "retry": retrying a write that did happen applies it twice.
pub fn applied_unknowns(r: &Reference, logs: &[ClientLog]) -> BTreeMap<String, UnknownWrites> {
    let applied: HashSet<(&str, &str)> = r
        .by_revision
        .values()
        .flatten()
        .filter_map(|c| Some((c.key.as_str(), c.value.as_deref()?)))
        .collect();
    let mut out: BTreeMap<String, UnknownWrites> = BTreeMap::new();
    for rec in logs.iter().flat_map(|l| &l.records) {
        let Some((why, message)) = &rec.unknown_reason else {
            continue;
        };
        let value = match &rec.op.call {
            Call::Put { value } => value,
            Call::Cas { new, .. } => new,
            _ => continue,
        };
        let e = out.entry(why.clone()).or_default();
        e.total += 1;
        if applied.contains(&(rec.op.key.as_str(), value.as_str())) {
            e.applied += 1;
            e.applied_example.get_or_insert_with(|| message.clone());
        }
    }
    out
}
