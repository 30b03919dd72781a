//! Lease endpoints (`/v1/leases`). Lease ids are the API's 16-digit hex strings.

use concord_api::lease::{LeaseGrant, LeaseGrantRequest, LeaseInfo};
use concord_api::registry::RevisionResponse;

use crate::client::Client;
use crate::encode::{Query, encode_segment};
use crate::error::ClientError;

fn lease_path(id: &str) -> String {
    format!("/v1/leases/{}", encode_segment(id))
}

impl Client {
    /// `POST /v1/leases`: creates a lease that expires `ttl_secs` after its last keepalive.
    pub async fn lease_grant(&self, ttl_secs: u32) -> Result<LeaseGrant, ClientError> {
        let url = self.url("/v1/leases", &Query::default());
        self.send_json(self.http().post(url).json(&LeaseGrantRequest { ttl_secs }))
            .await
    }

    /// `PUT /v1/leases/{id}/keepalive`: restarts the lease's TTL; `not_found`
    /// means it already expired (and its keys are gone).
    pub async fn lease_keepalive(&self, id: &str) -> Result<LeaseGrant, ClientError> {
        let url = self.url(&format!("{}/keepalive", lease_path(id)), &Query::default());
        self.send_json(self.http().put(url)).await
    }

    /// `GET /v1/leases/{id}`: TTL, time left and the keys attached.
    pub async fn lease_info(&self, id: &str) -> Result<LeaseInfo, ClientError> {
        let q = self.read_query();
        self.get_json(&lease_path(id), &q).await
    }

    /// `DELETE /v1/leases/{id}`: ends the lease now, deleting its keys.
    pub async fn lease_revoke(&self, id: &str) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&lease_path(id), &Query::default());
        self.send_json(self.http().delete(url)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_paths() {
        assert_eq!(
            lease_path("00000000000000ab"),
            "/v1/leases/00000000000000ab"
        );
        assert_eq!(lease_path("../x"), "/v1/leases/..%2Fx");
    }
}
