//! Serde shapes for the API types this crate embeds, fit for postcard.
//!
//! `Instance` and `InstanceSpec` omit `ttl_secs` when it is `None`. Only
//! self-describing formats (JSON) can read that back: postcard would take the
//! next bytes for the missing field and fail or misread. Every field of ours that
//! holds one goes through these mirrors instead, which always write every field,
//! so snapshots, log entries (`Command`), outcomes and events round-trip in
//! postcard. In JSON the only difference is an explicit `"ttl_secs": null`; the
//! readers keep the API's defaults, so JSON written by the API types still reads.

/// `#[serde(with)]` for `Instance`.
pub(crate) mod instance {
    use std::collections::BTreeMap;

    use concord_api::registry::Instance;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Ref<'a> {
        id: &'a str,
        address: &'a str,
        port: u16,
        tags: &'a [String],
        meta: &'a BTreeMap<String, String>,
        weight: u32,
        ttl_secs: Option<u32>,
    }

    #[derive(Deserialize)]
    struct Owned {
        id: String,
        address: String,
        port: u16,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        meta: BTreeMap<String, String>,
        #[serde(default = "default_weight")]
        weight: u32,
        #[serde(default)]
        ttl_secs: Option<u32>,
    }

    fn default_weight() -> u32 {
        concord_api::registry::DEFAULT_WEIGHT
    }

    pub(crate) fn serialize<S: Serializer>(i: &Instance, s: S) -> Result<S::Ok, S::Error> {
        Ref {
            id: &i.id,
            address: &i.address,
            port: i.port,
            tags: &i.tags,
            meta: &i.meta,
            weight: i.weight,
            ttl_secs: i.ttl_secs,
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instance, D::Error> {
        let o = Owned::deserialize(d)?;
        Ok(Instance {
            id: o.id,
            address: o.address,
            port: o.port,
            tags: o.tags,
            meta: o.meta,
            weight: o.weight,
            ttl_secs: o.ttl_secs,
        })
    }
}

/// `#[serde(with)]` for `InstanceSpec`.
pub(crate) mod instance_spec {
    use std::collections::BTreeMap;

    use concord_api::registry::InstanceSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Ref<'a> {
        address: &'a str,
        port: u16,
        tags: &'a [String],
        meta: &'a BTreeMap<String, String>,
        weight: u32,
        ttl_secs: Option<u32>,
    }

    #[derive(Deserialize)]
    struct Owned {
        address: String,
        port: u16,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        meta: BTreeMap<String, String>,
        #[serde(default = "default_weight")]
        weight: u32,
        #[serde(default)]
        ttl_secs: Option<u32>,
    }

    fn default_weight() -> u32 {
        concord_api::registry::DEFAULT_WEIGHT
    }

    pub(crate) fn serialize<S: Serializer>(i: &InstanceSpec, s: S) -> Result<S::Ok, S::Error> {
        Ref {
            address: &i.address,
            port: i.port,
            tags: &i.tags,
            meta: &i.meta,
            weight: i.weight,
            ttl_secs: i.ttl_secs,
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InstanceSpec, D::Error> {
        let o = Owned::deserialize(d)?;
        Ok(InstanceSpec {
            address: o.address,
            port: o.port,
            tags: o.tags,
            meta: o.meta,
            weight: o.weight,
            ttl_secs: o.ttl_secs,
        })
    }
}

#[cfg(test)]
mod tests;
