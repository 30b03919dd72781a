//! Configuration center wire types: items addressed by namespace, group and id.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Versions of an item kept in its history unless the server is told otherwise.
pub const DEFAULT_HISTORY: usize = 50;

/// How an item's content is parsed (and refused when it does not parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    Json,
    Yaml,
    Toml,
    Properties,
    Text,
}

impl ConfigFormat {
    /// The lowercase name used in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigFormat::Json => "json",
            ConfigFormat::Yaml => "yaml",
            ConfigFormat::Toml => "toml",
            ConfigFormat::Properties => "properties",
            ConfigFormat::Text => "text",
        }
    }

    /// The `Content-Type` of `?raw=true` answers.
    pub fn content_type(self) -> &'static str {
        match self {
            ConfigFormat::Json => "application/json",
            ConfigFormat::Yaml => "application/yaml",
            ConfigFormat::Toml => "application/toml",
            ConfigFormat::Properties => "text/x-java-properties; charset=utf-8",
            ConfigFormat::Text => "text/plain; charset=utf-8",
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConfigFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(ConfigFormat::Json),
            "yaml" | "yml" => Ok(ConfigFormat::Yaml),
            "toml" => Ok(ConfigFormat::Toml),
            "properties" => Ok(ConfigFormat::Properties),
            "text" | "txt" => Ok(ConfigFormat::Text),
            other => Err(format!(
                "unknown format {other:?}; use json, yaml, toml, properties or text"
            )),
        }
    }
}

/// Answer to a publish (put, rollback, gray promote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub version: u64,
    pub revision: u64,
    pub sha256: String,
}

/// `GET /v1/config/{namespace}/{group}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub namespace: String,
    pub group: String,
    pub id: String,
    pub format: ConfigFormat,
    pub content: String,
    pub version: u64,
    pub sha256: String,
    /// Revision of the item's last change (publish or gray change).
    pub revision: u64,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Whether `content` is the gray candidate served to the asking instance.
    #[serde(default)]
    pub gray: bool,
}

/// One row of `GET /v1/config/{namespace}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSummary {
    pub id: String,
    pub group: String,
    pub format: ConfigFormat,
    pub version: u64,
    pub updated_at: String,
    /// Whether a gray release is staged.
    #[serde(default)]
    pub gray: bool,
}

/// `GET /v1/config/{namespace}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigList {
    pub revision: u64,
    pub namespace: String,
    pub items: Vec<ConfigSummary>,
}

/// One entry of `GET .../history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersionSummary {
    pub version: u64,
    pub sha256: String,
    pub comment: String,
    pub updated_at: String,
    pub revision: u64,
}

/// `GET .../history/{version}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersionDetail {
    pub version: u64,
    pub format: ConfigFormat,
    pub content: String,
    pub sha256: String,
    pub comment: String,
    pub updated_at: String,
    pub revision: u64,
}

/// Body of `POST .../rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub version: u64,
}

/// Which registered instances a gray release is served to: any condition matching
/// is enough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraySelector {
    /// `service/id` of instances.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Instances carrying any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Instances with any of these meta pairs.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

impl GraySelector {
    /// Whether the instance `service/id` with `tags` and `meta` is selected.
    pub fn matches(
        &self,
        service: &str,
        id: &str,
        tags: &[String],
        meta: &BTreeMap<String, String>,
    ) -> bool {
        self.instances
            .iter()
            .any(|i| i.split_once('/') == Some((service, id)))
            || self.tags.iter().any(|t| tags.contains(t))
            || self.meta.iter().any(|(k, v)| meta.get(k) == Some(v))
    }

    /// A selector that selects nothing is refused.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.tags.is_empty() && self.meta.is_empty()
    }
}

/// Body of `PUT .../gray`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrayRequest {
    pub content: String,
    pub selector: GraySelector,
}

/// `GET .../gray`: the staged candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrayInfo {
    pub content: String,
    pub sha256: String,
    pub selector: GraySelector,
    pub revision: u64,
    pub updated_at: String,
}

/// What happened to an item, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigEventKind {
    /// A new version (put, rollback or gray promote).
    Publish,
    /// The item was deleted.
    Delete,
    /// A gray candidate was staged (only sent to watchers of matching instances).
    Gray,
    /// The gray candidate was withdrawn; `content` is the published one again.
    GrayCancel,
}

/// The `data` of a config watch event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEvent {
    pub revision: u64,
    #[serde(rename = "type")]
    pub kind: ConfigEventKind,
    pub namespace: String,
    pub group: String,
    pub id: String,
    /// The published version (for `gray`: the version the candidate would follow).
    pub version: u64,
    pub format: ConfigFormat,
    /// The content the watcher should now use (empty for `delete`).
    pub content: String,
    pub sha256: String,
    /// Milliseconds since the Unix epoch when the change was proposed.
    pub published_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        for f in [
            ConfigFormat::Json,
            ConfigFormat::Yaml,
            ConfigFormat::Toml,
            ConfigFormat::Properties,
            ConfigFormat::Text,
        ] {
            assert_eq!(f.as_str().parse::<ConfigFormat>(), Ok(f));
        }
        assert_eq!("YML".parse::<ConfigFormat>(), Ok(ConfigFormat::Yaml));
        assert!("xml".parse::<ConfigFormat>().is_err());
    }

    #[test]
    fn any_selector_condition_is_enough() {
        let sel = GraySelector {
            instances: vec!["orders/o1".into()],
            tags: vec!["canary".into()],
            meta: [("zone".to_string(), "a".to_string())].into(),
        };
        let none = BTreeMap::new();
        assert!(sel.matches("orders", "o1", &[], &none));
        assert!(!sel.matches("orders", "o2", &[], &none));
        assert!(!sel.matches("users", "o1", &[], &none));
        assert!(sel.matches("x", "y", &["canary".into()], &none));
        assert!(sel.matches("x", "y", &[], &[("zone".into(), "a".into())].into()));
        assert!(!sel.matches("x", "y", &[], &[("zone".into(), "b".into())].into()));
        assert!(GraySelector::default().is_empty());
    }
}
