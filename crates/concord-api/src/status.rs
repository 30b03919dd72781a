//! Node status wire types.

use serde::{Deserialize, Serialize};

/// A cluster member as a node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub peer_addr: String,
    #[serde(default)]
    pub client_addr: String,
    #[serde(default)]
    pub voter: bool,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub revision: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub members: Vec<Member>,
}
