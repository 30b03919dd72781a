//! Cluster membership wire types (`/v1/cluster/members`).

use serde::{Deserialize, Serialize};

/// Whether a member votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Counts toward elections and commit quorums.
    Voter,
    /// Receives the log but does not vote; promoted to voter once caught up.
    Learner,
}

impl MemberRole {
    /// The lowercase name written on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        }
    }
}

/// One member as `GET /v1/cluster/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    pub id: u64,
    /// Where the member serves Raft traffic.
    pub peer_addr: String,
    /// Where the member serves this API; empty when the answering node cannot find it out
    /// (a member bootstrapped by `--initial-cluster` that is unreachable right now).
    #[serde(default)]
    pub client_addr: String,
    pub role: MemberRole,
    /// Whether the answering node believes this member leads.
    #[serde(default)]
    pub is_leader: bool,
}

/// Body of `GET`, and of successful `POST` and `DELETE`, on `/v1/cluster/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    pub members: Vec<ClusterMember>,
}

/// Body of `POST /v1/cluster/members`.
///
/// Unknown fields are rejected so a typo (`"voters": true`) never silently adds a learner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The new member's node id (> 0, not yet in the cluster).
    pub id: u64,
    /// `HOST:PORT` where the new node serves Raft traffic.
    pub peer_addr: String,
    /// `HOST:PORT` where the new node serves the client API.
    pub client_addr: String,
    /// Wait until the new member has caught up and been promoted to voter before answering.
    #[serde(default)]
    pub voter: bool,
}
