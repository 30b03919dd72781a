//! Key-value and transaction endpoints (`/v1/kv/{key}`, `/v1/txn`).

use bytes::Bytes;
use concord_api::kv::{DeleteResponse, KvItem, KvKeys, KvList};
use concord_api::registry::RevisionResponse;
use concord_api::txn::{TxnRequest, TxnResponse};
use concord_api::{INDEX_HEADER, MOD_REVISION_HEADER};

use crate::client::Client;
use crate::encode::{Query, encode_key};
use crate::error::ClientError;

/// Conditions and attachments of a put, kept out of the common `kv_put` signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Only write if the key's mod revision is exactly this (0: only if absent);
    /// otherwise the server answers `cas_failed`.
    pub cas: Option<u64>,
    /// Attach the key to this lease (hex id) so it is deleted when the lease expires.
    pub lease: Option<String>,
}

/// How a delete selects keys, kept out of the common `kv_delete` signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete every key starting with the given key instead of the key itself.
    pub prefix: bool,
    /// Only delete if the key's mod revision is exactly this.
    pub cas: Option<u64>,
}

/// A value read with `?raw=true`: the bytes exactly as stored, no JSON around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    /// The stored bytes.
    pub value: Bytes,
    /// The key's mod revision (`X-Concord-Mod-Revision`), when the server sent it.
    pub mod_revision: Option<u64>,
    /// The store revision the read reflects (`X-Concord-Index`), when the server sent it.
    pub index: Option<u64>,
}

fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", encode_key(key))
}

fn header_u64(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Client {
    /// `PUT /v1/kv/{key}`: writes `value` unconditionally; returns the new revision.
    pub async fn kv_put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
    ) -> Result<RevisionResponse, ClientError> {
        self.kv_put_with(key, value, &PutOptions::default()).await
    }

    /// `PUT /v1/kv/{key}?cas=R&lease=ID`: a put with a compare-and-swap guard
    /// and/or a lease. A lost CAS is [`ClientError::Api`] with code `cas_failed`.
    pub async fn kv_put_with(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        options: &PutOptions,
    ) -> Result<RevisionResponse, ClientError> {
        let mut q = Query::default();
        q.push_opt("cas", options.cas)
            .push_opt("lease", options.lease.as_deref());
        let request = self
            .http()
            .put(self.url(&kv_path(key), &q))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(value.into());
        self.send_json(request).await
    }

    /// `GET /v1/kv/{key}`: the key with its metadata, `None` when it does not exist.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvItem>, ClientError> {
        let q = self.read_query();
        match self.get_json(&kv_path(key), &q).await {
            Ok(item) => Ok(Some(item)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/kv/{key}?raw=true`: the value bytes untouched (no UTF-8/base64
    /// split), `None` when the key does not exist.
    pub async fn kv_get_raw(&self, key: &str) -> Result<Option<RawValue>, ClientError> {
        let mut q = self.read_query();
        q.push("raw", "true");
        let response = match self
            .send(self.http().get(self.url(&kv_path(key), &q)))
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mod_revision = header_u64(&response, MOD_REVISION_HEADER);
        let index = header_u64(&response, INDEX_HEADER);
        let value = response.bytes().await?;
        Ok(Some(RawValue {
            value,
            mod_revision,
            index,
        }))
    }

    /// `GET /v1/kv/{prefix}?prefix=true[&limit=K]`: every key (with value) under a prefix, in key order.
    pub async fn kv_list(&self, prefix: &str, limit: Option<u64>) -> Result<KvList, ClientError> {
        let mut q = self.read_query();
        q.push("prefix", "true").push_opt("limit", limit);
        self.get_json(&kv_path(prefix), &q).await
    }

    /// `GET /v1/kv/{prefix}?prefix=true&keys=true[&limit=K]`: only the key names
    /// under a prefix, cheaper than [`Client::kv_list`] for large values.
    pub async fn kv_keys(&self, prefix: &str, limit: Option<u64>) -> Result<KvKeys, ClientError> {
        let mut q = self.read_query();
        q.push("prefix", "true")
            .push("keys", "true")
            .push_opt("limit", limit);
        self.get_json(&kv_path(prefix), &q).await
    }

    /// `DELETE /v1/kv/{key}`: deletes one key; `deleted` is 0 when it was absent.
    pub async fn kv_delete(&self, key: &str) -> Result<DeleteResponse, ClientError> {
        self.kv_delete_with(key, &DeleteOptions::default()).await
    }

    /// `DELETE /v1/kv/{key}?prefix=true&cas=R`: a delete of a whole prefix
    /// and/or guarded by a compare-and-swap.
    pub async fn kv_delete_with(
        &self,
        key: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteResponse, ClientError> {
        let mut q = Query::default();
        if options.prefix {
            q.push("prefix", "true");
        }
        q.push_opt("cas", options.cas);
        self.send_json(self.http().delete(self.url(&kv_path(key), &q)))
            .await
    }

    /// `POST /v1/txn`: compares, then the success or failure branch, atomically.
    pub async fn txn(&self, request: &TxnRequest) -> Result<TxnResponse, ClientError> {
        let url = self.url("/v1/txn", &Query::default());
        self.send_json(self.http().post(url).json(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_paths_are_encoded() {
        assert_eq!(kv_path("app/db url"), "/v1/kv/app/db%20url");
        assert_eq!(kv_path("a?b"), "/v1/kv/a%3Fb");
    }
}
