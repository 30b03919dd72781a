//! Backups.

use bytes::Bytes;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// `GET /v1/snapshot`: a consistent backup of the whole store (the server's
    /// checked envelope around a state snapshot), ready to write to a file.
    pub async fn snapshot(&self) -> Result<Bytes, ClientError> {
        let q = self.read_query();
        let response = self
            .send(self.http().get(self.url("/v1/snapshot", &q)))
            .await?;
        Ok(response.bytes().await?)
    }
}
