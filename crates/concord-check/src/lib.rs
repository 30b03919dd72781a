//! A linearizability checker for histories of a key-value store used as a set of
//! independent registers (one per key).
//!
//! Fault-injection tests record every client operation with the time it was
//! invoked and the time its answer arrived (or no answer: a timeout, whose effect
//! is unknown). [`check_register`] decides whether some total order of those
//! operations exists that respects real time (an operation that completed before
//! another was invoked comes first) and explains every answer by a sequential
//! register. If none does, the store returned something no correct implementation
//! could have: a stale read, a lost write, a compare-and-swap that saw the wrong
//! value.
//!
//! The search is Wing & Gong's, with Lowe's memoization of (linearized set, state)
//! pairs, run per key: linearizability is compositional (Herlihy & Wing), so a
//! history is linearizable exactly when each key's sub-history is, and small
//! per-key searches are exponentially cheaper than one big one. A step budget
//! bounds the work; a search that runs out answers [`Verdict::Unknown`] rather
//! than guessing.
//!
//! The crate does no I/O and knows nothing about Concord's API: the test harness
//! translates HTTP exchanges into [`Op`]s.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod check;
mod history;
mod model;
mod prepare;
#[cfg(test)]
mod proptests;
mod search;

pub use check::{Budget, Report, Verdict, check_register, check_register_with};
pub use history::{Call, Completion, HistoryError, Op, Ret};
