//! The entry point: split a history by key, search each key, explain a failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::history::{HistoryError, Op, show_value};
use crate::model::{ABSENT, State, Values};
use crate::prepare::{Prepared, prepare};
use crate::search::{self, Outcome};

/// How much work a check may do before giving up with [`Verdict::Unknown`].
///
/// The budget is counted in search steps, not wall time, so a verdict does not
/// depend on how loaded the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Search steps allowed for one key. Each step costs at most one memo-table
    /// insertion of about `ops / 8` bytes, so this also bounds memory.
    pub max_steps_per_key: u64,
}

impl Default for Budget {
    /// A million steps per key: a few seconds and a few hundred MB at worst, and
    /// far more than the histories of the fault-injection suite need.
    fn default() -> Self {
        Budget {
            max_steps_per_key: 1_000_000,
        }
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable,
    /// This key's history has none.
    NotLinearizable {
        /// The first key (in key order) without a linearization.
        key: String,
        /// What the search got stuck on, for a person to read.
        explanation: String,
    },
    /// The budget ran out on this key before an answer was found (no key
    /// checked before it was found non-linearizable).
    Unknown {
        /// The key whose search was cut short.
        key: String,
        /// Why, with the numbers.
        reason: String,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// The verdict and what it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The answer.
    pub verdict: Verdict,
    /// Distinct keys in the history.
    pub keys: usize,
    /// Operations searched (unanswered reads are dropped first: they constrain nothing).
    pub ops: usize,
    /// Search steps over all keys.
    pub steps: u64,
    /// Wall time spent.
    pub elapsed: Duration,
}

/// Checks a history with the default [`Budget`]; every key starts absent.
pub fn check_register(history: &[Op]) -> Result<Verdict, HistoryError> {
    check_register_with(history, Budget::default()).map(|r| r.verdict)
}

/// Checks a history key by key; every key starts absent.
///
/// Keys are searched in order and the first non-linearizable one decides the
/// verdict; a key that exceeds the budget makes the verdict `Unknown` unless a
/// later key is found non-linearizable (a definite answer beats an unknown one).
pub fn check_register_with(history: &[Op], budget: Budget) -> Result<Report, HistoryError> {
    let started = Instant::now();
    for (i, op) in history.iter().enumerate() {
        op.validate(i)?;
    }
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        keys: by_key.len(),
        ops: 0,
        steps: 0,
        elapsed: Duration::ZERO,
    };
    let mut unknown = None;
    for (key, ops) in by_key {
        let Prepared {
            ops: search_ops,
            kept,
            values,
        } = prepare(&ops);
        report.ops += search_ops.len();
        let result = search::search(&search_ops, ABSENT, budget.max_steps_per_key);
        report.steps += result.steps;
        match result.outcome {
            Outcome::Linearizable => {}
            Outcome::NotLinearizable {
                prefix,
                state,
                blocked,
            } => {
                report.verdict = Verdict::NotLinearizable {
                    key: key.to_owned(),
                    explanation: explain(key, &kept, &values, &prefix, state, blocked),
                };
                report.elapsed = started.elapsed();
                return Ok(report);
            }
            Outcome::BudgetExceeded => {
                unknown.get_or_insert_with(|| Verdict::Unknown {
                    key: key.to_owned(),
                    reason: format!(
                        "the search of key {key:?} ({} operations, {} unanswered) exceeded its budget of {} steps",
                        kept.len(),
                        kept.iter().filter(|o| o.completion.is_none()).count(),
                        budget.max_steps_per_key
                    ),
                });
            }
        }
    }
    if let Some(u) = unknown {
        report.verdict = u;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Most operations of the deepest linearization shown in an explanation.
const SHOWN_PREFIX: usize = 8;

/// Describes where the search got stuck: the deepest partial linearization it
/// found, the register value after it, and the answered operation that could not
/// be placed before its answer arrived.
fn explain(
    key: &str,
    ops: &[&Op],
    values: &Values,
    prefix: &[usize],
    state: State,
    blocked: usize,
) -> String {
    let mut s = format!(
        "key {key:?}: no order of its {} operations explains every answer. ",
        ops.len()
    );
    let _ = write!(
        s,
        "The longest explainable prefix places {} operations",
        prefix.len()
    );
    if prefix.is_empty() {
        s.push_str(". ");
    } else {
        let skipped = prefix.len().saturating_sub(SHOWN_PREFIX);
        s.push_str(if skipped > 0 { ", ending with:" } else { ":" });
        for &i in &prefix[skipped..] {
            let _ = write!(s, "\n  {}", ops[i]);
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        "After it the register holds {}, and this operation cannot be placed before it completed:\n  ",
        show_value(values.name(state))
    );
    let Some(op) = ops.get(blocked) else {
        s.push_str("(none recorded)");
        return s;
    };
    let _ = write!(s, "{op}");
    let end = op.completion.as_ref().map_or(u64::MAX, |c| c.time);
    let overlapping: Vec<_> = ops
        .iter()
        .filter(|o| !std::ptr::eq(**o, *op))
        .filter(|o| o.invoke <= end && o.completion.as_ref().is_none_or(|c| c.time >= op.invoke))
        .collect();
    if !overlapping.is_empty() {
        let _ = write!(s, "\nOperations overlapping it ({}):", overlapping.len());
        for o in overlapping.iter().take(SHOWN_PREFIX) {
            let _ = write!(s, "\n  {o}");
        }
    }
    s
}

#[cfg(test)]
mod tests;
