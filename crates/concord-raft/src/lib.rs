//! openraft glue for Concord: the replicated log under the state machine.
//!
//! A [`RaftNode`] owns one openraft instance and everything it needs: the Raft log
//! and vote in a redb file (`data_dir/raft.redb`, every append fsynced before
//! openraft hears it is durable), the in-memory [`concord_state::StateMachine`]
//! persisted by snapshot files (`data_dir/snapshots/`), and an HTTP peer network
//! (axum server on the peer listener, one pooled reqwest client).
//!
//! openraft 0.9 fsyncs every client write as its own entry, so `propose` groups
//! concurrent proposals into one entry (one fsync) per batch; see `proposer.rs`.
//! A follower relays its proposals to the leader in batches; see `relay.rs`.
//!
//! Membership: `initialize` bootstraps (on one node, or identically on every node
//! of a static list); `add_learner`, `promote` and `remove_member` change it on
//! the leader, whose background task promotes caught-up learners to voters; and
//! `client_addr_of` finds a member's client API address (asking the member's
//! `/raft/info` when the membership lacks it).
//!
//! No openraft type crosses this crate's public API: callers propose
//! [`concord_state::Command`]s, read the shared state machine, and watch
//! [`RaftStatus`], [`Leadership`] and the applied revision.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod client_addrs;
mod codec;
#[cfg(test)]
mod conformance;
mod error;
mod liveness;
mod log_store;
mod membership;
mod network;
mod node;
mod peer_server;
mod promoter;
mod proposer;
mod read_index;
mod regroup;
mod relay;
mod snapshot_files;
mod state_machine;
mod type_config;

pub use error::{MembershipError, ProposeError, RaftError};
pub use node::{Leadership, MemberInfo, RaftNode, RaftOptions, RaftStatus, WriteStats};
pub use state_machine::ApplyObserver;
pub use type_config::NodeInfo;
