//! [`ConfigWatcher`]: a config item as a typed, always-current value.
//!
//! The item is read once, then followed by a watch from that read's revision,
//! so each change arrives once and in order; a broken watch resumes from the
//! last revision seen and a `410 compacted` falls back to a fresh read. With an
//! instance name the server sends that instance the gray candidate while a
//! gray release targets it (and the published content otherwise).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use concord_api::config::{ConfigEventKind, ConfigFormat};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::client::Client;
use crate::error::ClientError;
use crate::watch::WatchEvent;

/// Pause before reconnecting a broken watch; doubles up to [`RECONNECT_MAX`].
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A typed value with the version it came from.
#[derive(Debug)]
struct Current<T> {
    value: Arc<T>,
    version: u64,
}

/// The typed current value of one config item, kept current by a watch.
///
/// Dropping it stops the watch.
#[derive(Debug)]
pub struct ConfigWatcher<T> {
    values: watch::Receiver<Arc<T>>,
    version: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for ConfigWatcher<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watch task needs to follow an item.
struct Follow<T> {
    client: Client,
    namespace: String,
    group: String,
    id: String,
    instance: Option<String>,
    values: watch::Sender<Arc<T>>,
    version: watch::Sender<u64>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> ConfigWatcher<T> {
    /// Reads `namespace/group/id`, decodes it by its format (json, yaml, toml,
    /// properties as a flat string map, text only into `String`) and follows it.
    ///
    /// `instance` (`"service/id"`) makes it gray-aware, as
    /// [`Client::config_get_for`] is. Fails when the item does not exist
    /// (`not_found`) or its current content does not decode into `T`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), concord_client::ClientError> {
    /// #[derive(serde::Deserialize)]
    /// struct Limits { pool: u32 }
    ///
    /// let client = concord_client::Client::new("http://127.0.0.1:7600");
    /// let limits = concord_client::ConfigWatcher::<Limits>::start(
    ///     client, "prod", "orders", "limits.yaml", Some("orders/orders-1"),
    /// ).await?;
    /// println!("pool = {} (version {})", limits.current().pool, limits.version());
    /// let mut updates = limits.subscribe();
    /// while updates.changed().await.is_ok() {
    ///     println!("pool is now {}", updates.borrow_and_update().pool);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(
        client: Client,
        namespace: &str,
        group: &str,
        id: &str,
        instance: Option<&str>,
    ) -> Result<ConfigWatcher<T>, ClientError> {
        let (first, revision) = read::<T>(&client, namespace, group, id, instance)
            .await?
            .ok_or_else(|| {
                ClientError::from_body(
                    404,
                    concord_api::ErrorBody::new(
                        concord_api::ErrorCode::NotFound,
                        format!("config item {namespace}/{group}/{id} does not exist"),
                    ),
                )
            })?;
        let (values, values_rx) = watch::channel(first.value);
        let (version, version_rx) = watch::channel(first.version);
        let follow = Follow {
            client,
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            id: id.to_owned(),
            instance: instance.map(str::to_owned),
            values,
            version,
            _type: PhantomData,
        };
        let task = tokio::spawn(follow.run(revision));
        Ok(ConfigWatcher {
            values: values_rx,
            version: version_rx,
            task,
        })
    }

    /// The value now.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.values.borrow())
    }

    /// A `tokio::sync::watch` receiver of the value: `changed().await` wakes
    /// once per change, in order (a receiver that falls behind sees the latest
    /// value, never an older one). A version that fails to decode is skipped
    /// with a warning log and the old value stays.
    pub fn subscribe(&self) -> watch::Receiver<Arc<T>> {
        let mut rx = self.values.clone();
        rx.mark_unchanged();
        rx
    }

    /// The config version the current value came from (for a gray candidate,
    /// the version it would be published as).
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Follow<T> {
    async fn run(self, mut revision: u64) {
        let mut failures: u32 = 0;
        loop {
            let opened = self
                .client
                .watch_config(
                    &self.namespace,
                    &self.group,
                    &self.id,
                    self.instance.as_deref(),
                    Some(revision),
                )
                .await;
            match opened {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(WatchEvent::Change(event)) => {
                                revision = revision.max(event.revision);
                                failures = 0;
                                if event.kind == ConfigEventKind::Delete {
                                    tracing::warn!(item = %self.name(), "config item deleted; keeping the last value");
                                    continue;
                                }
                                self.offer(event.format, &event.content, event.version);
                            }
                            Ok(WatchEvent::Progress(p)) if p.head.is_some_and(|h| h < revision) => {
                                // The node is behind what this watcher has seen
                                // (see `Discovery`): re-read, follow from there.
                                // The item's revision in that history.
                                revision = self.reread().await.unwrap_or(revision);
                                break;
                            }
                            Ok(WatchEvent::Progress(p)) => {
                                revision = revision.max(p.revision);
                                failures = 0;
                            }
                            Err(e) if e.is_compacted() => {
                                revision = self.resync(floor(&e, revision)).await;
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(item = %self.name(), error = %e, "config watch broke");
                                break;
                            }
                        }
                    }
                }
                Err(e) if e.is_compacted() => revision = self.resync(floor(&e, revision)).await,
                Err(e) => {
                    tracing::debug!(item = %self.name(), error = %e, "config watch failed to open");
                }
            }
            failures += 1;
            let delay =
                concord_balance::retry::backoff_between(failures, RECONNECT_BASE, RECONNECT_MAX);
            tokio::time::sleep(delay).await;
        }
    }

    fn name(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.group, self.id)
    }

    /// Decodes and publishes a version; a bad one is logged and skipped.
    fn offer(&self, format: ConfigFormat, content: &str, version: u64) {
        match decode::<T>(format, content) {
            Ok(value) => {
                self.version.send_replace(version);
                self.values.send_replace(Arc::new(value));
            }
            Err(e) => {
                tracing::warn!(item = %self.name(), version, error = %e, "config version does not decode; keeping the old value");
            }
        }
    }

    /// Re-reads the item, offering it when its version changed; its revision,
    /// or `None` when it is gone or the read failed.
    async fn reread(&self) -> Option<u64> {
        let instance = self.instance.as_deref();
        match read_raw(
            &self.client,
            &self.namespace,
            &self.group,
            &self.id,
            instance,
        )
        .await
        {
            Ok(Some(item)) => {
                if item.version != *self.version.borrow() {
                    self.offer(item.format, &item.content, item.version);
                }
                Some(item.revision)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(item = %self.name(), error = %e, "config re-read failed");
                None
            }
        }
    }

    /// Rebuilds from a fresh read after `compacted`; returns the revision to
    /// watch from: the read's, but at least `revision` (the oldest the server
    /// retains — an item last changed before that has no retained event to miss).
    async fn resync(&self, revision: u64) -> u64 {
        self.reread().await.map_or(revision, |r| r.max(revision))
    }
}

/// Where to resume after `compacted`: an item's revision is that of its last
/// change, which can be older than anything the server retains; the oldest
/// retained revision is then the place to watch from.
fn floor(error: &ClientError, revision: u64) -> u64 {
    match error {
        ClientError::Api {
            oldest_revision: Some(oldest),
            ..
        } => *oldest,
        _ => revision,
    }
}

async fn read_raw(
    client: &Client,
    namespace: &str,
    group: &str,
    id: &str,
    instance: Option<&str>,
) -> Result<Option<concord_api::config::ConfigItem>, ClientError> {
    match instance {
        Some(instance) => client.config_get_for(namespace, group, id, instance).await,
        None => client.config_get(namespace, group, id).await,
    }
}

/// The item decoded, with the revision to watch from.
async fn read<T: DeserializeOwned>(
    client: &Client,
    namespace: &str,
    group: &str,
    id: &str,
    instance: Option<&str>,
) -> Result<Option<(Current<T>, u64)>, ClientError> {
    let Some(item) = read_raw(client, namespace, group, id, instance).await? else {
        return Ok(None);
    };
    let value = decode::<T>(item.format, &item.content).map_err(ClientError::Decode)?;
    let current = Current {
        value: Arc::new(value),
        version: item.version,
    };
    Ok(Some((current, item.revision)))
}

/// Decodes config content by its format into `T`.
///
/// json, yaml and toml map onto serde's data model (yaml through
/// `yaml-rust2`, so anchors and merge keys are resolved first); properties
/// become a flat map of strings; text decodes only into a string type.
pub fn decode<T: DeserializeOwned>(format: ConfigFormat, content: &str) -> Result<T, String> {
    let value = match format {
        ConfigFormat::Json => serde_json::from_str(content).map_err(|e| e.to_string())?,
        ConfigFormat::Yaml => yaml_to_json(content)?,
        ConfigFormat::Toml => {
            let table: toml::Table = content
                .parse()
                .map_err(|e: toml::de::Error| e.to_string())?;
            serde_json::to_value(table).map_err(|e| e.to_string())?
        }
        ConfigFormat::Properties => {
            serde_json::to_value(parse_properties(content)).map_err(|e| e.to_string())?
        }
        ConfigFormat::Text => serde_json::Value::String(content.to_owned()),
    };
    serde_json::from_value(value).map_err(|e| format!("{} content: {e}", format.as_str()))
}

fn yaml_to_json(content: &str) -> Result<serde_json::Value, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    fn convert(y: Yaml) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match y {
            Yaml::Null | Yaml::BadValue => Value::Null,
            Yaml::Boolean(b) => Value::Bool(b),
            Yaml::Integer(i) => Value::from(i),
            Yaml::Real(r) => r
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(r), Value::Number),
            Yaml::String(s) => Value::String(s),
            Yaml::Array(items) => {
                Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
            }
            Yaml::Hash(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let key = match k {
                        Yaml::String(s) => s,
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        Yaml::Real(r) => r,
                        other => return Err(format!("unsupported yaml key {other:?}")),
                    };
                    out.insert(key, convert(v)?);
                }
                Value::Object(out)
            }
            Yaml::Alias(_) => return Err("unresolved yaml alias".into()),
        })
    }
    let mut docs = YamlLoader::load_from_str(content).map_err(|e| e.to_string())?;
    match docs.len() {
        0 => Ok(serde_json::Value::Null),
        1 => convert(docs.remove(0)),
        n => Err(format!("expected one yaml document, found {n}")),
    }
}

/// Java-style properties: `key=value` or `key: value` lines, `#`/`!` comments,
/// later keys win. (Line continuations and escapes are not interpreted.)
fn parse_properties(content: &str) -> BTreeMap<String, String> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| {
            let split = l.find(['=', ':']).unwrap_or(l.len());
            let (k, v) = l.split_at(split);
            let v = v.get(1..).unwrap_or("");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Limits {
        pool: u32,
        name: String,
    }

    #[test]
    fn every_structured_format_decodes() {
        let want = Limits {
            pool: 8,
            name: "a".into(),
        };
        let json = decode::<Limits>(ConfigFormat::Json, r#"{"pool":8,"name":"a"}"#);
        assert_eq!(json.unwrap(), want);
        let yaml = decode::<Limits>(ConfigFormat::Yaml, "pool: 8\nname: a\n");
        assert_eq!(yaml.unwrap(), want);
        let toml = decode::<Limits>(ConfigFormat::Toml, "pool = 8\nname = \"a\"\n");
        assert_eq!(toml.unwrap(), want);
    }

    #[test]
    fn properties_are_a_flat_string_map() {
        let props: BTreeMap<String, String> = decode(
            ConfigFormat::Properties,
            "# c\na.b = 1\nname: x y\n\nempty=\n",
        )
        .unwrap();
        assert_eq!(props["a.b"], "1");
        assert_eq!(props["name"], "x y");
        assert_eq!(props["empty"], "");
    }

    #[test]
    fn text_only_into_strings() {
        assert_eq!(decode::<String>(ConfigFormat::Text, "hi").unwrap(), "hi");
        assert!(decode::<Limits>(ConfigFormat::Text, "pool: 8").is_err());
        assert!(decode::<Limits>(ConfigFormat::Json, "{").is_err());
    }
}
