//! End-to-end tests of `RaftNode`: real redb files, real HTTP on loopback.
//!
//! Every wait polls a condition against a generous deadline, so the tests hold on a
//! loaded machine; nothing relies on a bare sleep to order events.

mod node {
    pub mod cluster;
    pub mod group_commit;
    pub mod membership;
    pub mod single_node;
    pub mod snapshots;
    pub mod support;
}
