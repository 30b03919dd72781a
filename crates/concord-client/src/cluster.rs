//! Cluster membership endpoints (`/v1/cluster/members`).

use concord_api::cluster::{AddMemberRequest, MembersResponse};

use crate::client::Client;
use crate::encode::Query;
use crate::error::ClientError;

impl Client {
    /// `GET /v1/cluster/members`: the members as the contacted node sees them
    /// (role, addresses, which one leads).
    pub async fn members(&self) -> Result<MembersResponse, ClientError> {
        self.get_json("/v1/cluster/members", &Query::default())
            .await
    }

    /// `POST /v1/cluster/members`: adds a node as a learner (promoted to voter
    /// automatically once caught up; with `voter: true` the call waits for that).
    /// Must reach the leader: other members answer `no_leader` (503) naming it.
    pub async fn add_member(
        &self,
        request: &AddMemberRequest,
    ) -> Result<MembersResponse, ClientError> {
        let url = self.url("/v1/cluster/members", &Query::default());
        self.send_json(self.http().post(url).json(request)).await
    }

    /// `DELETE /v1/cluster/members/{id}`: removes a member (voter or learner).
    pub async fn remove_member(&self, id: u64) -> Result<MembersResponse, ClientError> {
        let url = self.url(&format!("/v1/cluster/members/{id}"), &Query::default());
        self.send_json(self.http().delete(url)).await
    }
}
