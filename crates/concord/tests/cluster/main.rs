//! Fault-injection suite: real `concord server` processes on loopback, a
//! controllable TCP proxy on every peer link, and a linearizability check of
//! everything the clients saw.
//!
//! Each run starts a 3- or 5-node cluster whose nodes dial each other only
//! through the proxies ([`proxy`], wired up in [`cluster`]). Clients
//! ([`workload`]) put, read and compare-and-swap a few keys on random nodes
//! while watch streams ([`watches`]) follow every change; meanwhile rounds of
//! faults ([`faults`]: leader isolation, minority/majority splits, asymmetric
//! cuts, `kill -9` and restart, SIGSTOP/SIGCONT, slow links) come and go. After
//! healing and convergence ([`verify`], [`scenarios`]):
//!
//! - the history of every operation is linearizable (`concord-check`, per key);
//! - every acknowledged write is in the store's history at its revision, and
//!   every node ends with the state that history leads to;
//! - the revisions each client saw never went backwards;
//! - every watch stream, across reconnections, is exactly the history: no gap,
//!   no duplicate, in order.
//!
//! The short runs (`three_nodes_faults_short`, `five_nodes_faults_short`) go
//! through every fault once, in about 40 s each. The long run takes any
//! duration:
//!
//! ```text
//! CONCORD_FAULT_SECS=1800 CONCORD_FAULT_NODES=5 \
//!   cargo test -p concord --test cluster faults_long -- --ignored --nocapture
//! ```
//!
//! `CONCORD_FAULT_SEED` fixes the random choices (faults, keys, values);
//! `CONCORD_FAULT_SNAPSHOT_EVERY` (default 500, small so that restarts load
//! snapshots and lagging followers install them) sets `--snapshot-every`;
//! `CONCORD_KEEP_CLUSTER=1` keeps the nodes' logs and data when a run fails.

mod cluster;
mod converge;
mod faults;
mod proxy;
mod scenarios;
mod summary;
mod transactions;
mod verify;
mod watches;
mod workload;
