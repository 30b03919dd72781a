//! The replicated state machine behind every Concord node.
//!
//! `apply` is pure: no clock, no randomness, no I/O. Every node applies the same
//! `Command`s in log order and reaches the same state, which is what makes it safe
//! to replicate through Raft and easy to property-test. One global revision counts
//! every change; watches and blocking queries are driven by it.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod command;
mod config;
mod history;
mod invariants;
mod kv;
mod lease;
mod machine;
#[cfg(test)]
mod postcard_tests;
#[cfg(test)]
mod proptests;
mod registry;
mod restore;
mod routes;
mod snapshot;
#[cfg(test)]
mod testutil;
mod transactions;
mod txn;

pub use command::{Command, Compare, CompareValue, Outcome, StateError, TxnOp, TxnOpOutcome};
pub use config::{ConfigEntry, ConfigKey, ConfigVersion, GrayEntry, PublishMeta};
pub use history::{Event, EventKind, HistoryLimits};
pub use kv::KvEntry;
pub use lease::Lease;
pub use machine::StateMachine;
pub use registry::{HealthConfig, InstanceRecord, InstanceRef, Service};
pub use routes::RouteEntry;
pub use snapshot::SnapshotError;
pub use transactions::{
    Call, CallKind, CallResult, HistoryEntry, MAX_BRANCHES, MAX_HISTORY, Mark, NewStep, NewTxn,
    Phase, Retry, Slot, SlotState, StepRecord, TxnDecision, TxnEvent, TxnRecord, Verdict,
};
