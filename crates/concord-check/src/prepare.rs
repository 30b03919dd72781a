//! Turns one key's operations into what the search replays, using what the
//! answers reveal about unanswered writes (see `search` for why it matters).

use std::collections::{HashMap, HashSet};

use crate::history::Op;
use crate::model::{State, Step, Values};
use crate::search::SearchOp;

/// One key's operations, ready to search; `kept[i]` is the operation behind `ops[i]`.
pub(crate) struct Prepared<'a> {
    pub(crate) ops: Vec<SearchOp>,
    pub(crate) kept: Vec<&'a Op>,
    pub(crate) values: Values,
}

/// Interns values, drops unanswered reads (they constrain nothing), gives
/// observed unanswered writes a deadline and marks dead ones.
pub(crate) fn prepare<'a>(history: &[&'a Op]) -> Prepared<'a> {
    let mut values = Values::default();
    let mut kept = Vec::with_capacity(history.len());
    let mut ops = Vec::with_capacity(history.len());
    for &op in history {
        if let Some(step) = values.step(op) {
            kept.push(op);
            ops.push(SearchOp {
                step,
                invoke: op.invoke,
                complete: op.completion.as_ref().map(|c| c.time),
                dead: false,
            });
        }
    }
    bound_observed_writes(&mut ops);
    mark_dead_writes(&mut ops);
    // Index order = invocation order with dead writes last, so the search's
    // linearized set is mostly a run of ones then zeros, which its memo table
    // stores compactly.
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].dead, ops[i].invoke));
    let ops = order.iter().map(|&i| ops[i]).collect();
    let kept = order.iter().map(|&i| kept[i]).collect();
    Prepared { ops, kept, values }
}

/// The value an operation writes, if it writes one.
fn written(step: Step) -> Option<State> {
    match step {
        Step::Put(v) | Step::Cas { new: v, .. } => Some(v),
        Step::Get(_) | Step::Delete => None,
    }
}

/// An unanswered write whose value was read (or successfully compared against)
/// happened before the first such answer arrived, and, if a CAS, it swapped:
/// nothing else could have stored that value. This holds only when exactly one
/// operation writes the value, so values written twice are left alone.
fn bound_observed_writes(ops: &mut [SearchOp]) {
    let mut writers: HashMap<State, usize> = HashMap::new();
    for op in ops.iter() {
        if let Some(v) = written(op.step) {
            *writers.entry(v).or_default() += 1;
        }
    }
    // The earliest answer that shows each value.
    let mut first_seen: HashMap<State, u64> = HashMap::new();
    for op in ops.iter() {
        let shown = match op.step {
            Step::Get(v) => Some(v),
            Step::Cas {
                expect,
                swapped: Some(true),
                ..
            } => Some(expect),
            _ => None,
        };
        if let (Some(v), Some(t)) = (shown, op.complete) {
            let e = first_seen.entry(v).or_insert(t);
            *e = (*e).min(t);
        }
    }
    for op in ops.iter_mut().filter(|o| o.complete.is_none()) {
        let Some(v) = written(op.step) else { continue };
        let Some(&seen_by) = first_seen.get(&v) else {
            continue;
        };
        if writers.get(&v) != Some(&1) {
            continue;
        }
        // An answer before the invocation is impossible; the clamped deadline keeps
        // the event order sane and the search still finds the contradiction.
        op.complete = Some(seen_by.max(op.invoke));
        if let Step::Cas { swapped, .. } = &mut op.step {
            *swapped = Some(true);
        }
    }
}

/// Marks unanswered writes whose value no read returned and no CAS expects.
fn mark_dead_writes(ops: &mut [SearchOp]) {
    let observed: HashSet<State> = ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Get(v) | Step::Cas { expect: v, .. } => Some(v),
            Step::Put(_) | Step::Delete => None,
        })
        .collect();
    for op in ops.iter_mut().filter(|o| o.complete.is_none()) {
        op.dead = written(op.step).is_some_and(|v| !observed.contains(&v));
    }
}
