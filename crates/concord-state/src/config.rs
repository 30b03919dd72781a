//! The configuration center: versioned items with history and gray releases.
//!
//! Content is validated and hashed by the server before it is proposed; applying
//! only orders versions, keeps history and decides CAS, so replicas agree.

use std::collections::{BTreeMap, VecDeque};

use concord_api::config::{ConfigEventKind, ConfigFormat, GraySelector};
use serde::{Deserialize, Serialize};

use crate::command::{Outcome, StateError};
use crate::history::EventKind;
use crate::machine::{Change, StateMachine};

/// Where an item lives: namespace, group, id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigKey {
    /// The namespace (a tenant or environment).
    pub namespace: String,
    /// The group within it.
    pub group: String,
    /// The item id within the group.
    pub id: String,
}

impl ConfigKey {
    /// Builds a key from its three parts.
    pub fn new(namespace: &str, group: &str, id: &str) -> Self {
        ConfigKey {
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.id)
    }
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// 1, 2, ... per item, never reused (not even after a delete).
    pub version: u64,
    /// How the content parses.
    pub format: ConfigFormat,
    /// The content.
    pub content: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The publisher's comment.
    pub comment: String,
    /// When it was proposed, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The revision that published it.
    pub revision: u64,
}

/// A staged gray candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrayEntry {
    /// The candidate content (in the item's current format).
    pub content: String,
    /// Its hex SHA-256.
    pub sha256: String,
    /// Who gets it.
    pub selector: GraySelector,
    /// The revision that staged it.
    pub revision: u64,
    /// When it was staged, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// An item, or what remains of a deleted one (its revision and version counter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfigEntry {
    /// Newest first; `history[0]` is the current version while the item exists.
    pub history: VecDeque<ConfigVersion>,
    /// Whether the item exists (a deleted item keeps its counter and revision).
    pub live: bool,
    /// The version the next publish gets.
    pub next_version: u64,
    /// The staged gray candidate.
    pub gray: Option<GrayEntry>,
    /// Revision of the last change (publish, delete, gray), for blocking queries.
    pub mod_revision: u64,
}

impl ConfigEntry {
    /// The current version, while the item exists.
    pub fn current(&self) -> Option<&ConfigVersion> {
        if self.live {
            self.history.front()
        } else {
            None
        }
    }
}

/// What a publish carries besides the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishMeta {
    /// The publisher's comment.
    pub comment: String,
    /// When it was proposed (the proposing server's clock).
    pub at_ms: u64,
    /// Versions to keep in history, including the new one (at least 1).
    pub keep: u32,
}

impl StateMachine {
    /// `Command::ConfigPublish`: a new version, unless it equals the current one.
    /// `cas`: the version that must be current (0: the item must not exist).
    pub(crate) fn config_publish(
        &mut self,
        key: ConfigKey,
        format: ConfigFormat,
        content: String,
        sha256: String,
        cas: Option<u64>,
        meta: PublishMeta,
    ) -> Outcome {
        let current = self.configs.get(&key).and_then(|e| e.current());
        if let Some(expected) = cas {
            let have = current.map_or(0, |c| c.version);
            if have != expected {
                return Outcome::Refused(StateError::ConfigCasFailed { current: have });
            }
        }
        if let Some(c) = current
            && c.sha256 == sha256
            && c.format == format
        {
            // Republishing the current content is not a new version.
            return Outcome::ConfigPublished {
                revision: self.revision,
                version: c.version,
                sha256,
            };
        }
        let mut change = self.begin();
        let version = self.push_version(&mut change, &key, format, content, sha256.clone(), meta);
        Outcome::ConfigPublished {
            revision: self.commit(change),
            version,
            sha256,
        }
    }

    /// Appends a version, trims history, emits `publish`.
    fn push_version(
        &mut self,
        change: &mut Change,
        key: &ConfigKey,
        format: ConfigFormat,
        content: String,
        sha256: String,
        meta: PublishMeta,
    ) -> u64 {
        let entry = self.configs.entry(key.clone()).or_default();
        if !entry.live {
            entry.history.clear();
        }
        let version = entry.next_version.max(1);
        entry.next_version = version.saturating_add(1);
        entry.live = true;
        entry.mod_revision = change.rev;
        entry.history.push_front(ConfigVersion {
            version,
            format,
            content: content.clone(),
            sha256: sha256.clone(),
            comment: meta.comment,
            at_ms: meta.at_ms,
            revision: change.rev,
        });
        entry.history.truncate(meta.keep.max(1) as usize);
        change.emit(EventKind::Config {
            kind: ConfigEventKind::Publish,
            key: key.clone(),
            version,
            format,
            content,
            sha256,
            at_ms: meta.at_ms,
            selector: None,
        });
        version
    }

    /// `Command::ConfigDelete`: the item (and its gray candidate) goes.
    pub(crate) fn config_delete(&mut self, key: ConfigKey, at_ms: u64) -> Outcome {
        let Some(current) = self.configs.get(&key).and_then(|e| e.current()).cloned() else {
            return Outcome::Refused(StateError::ConfigNotFound(key.to_string()));
        };
        let mut change = self.begin();
        if let Some(entry) = self.configs.get_mut(&key) {
            entry.live = false;
            entry.history.clear();
            entry.gray = None;
            entry.mod_revision = change.rev;
        }
        change.emit(EventKind::Config {
            kind: ConfigEventKind::Delete,
            key,
            version: current.version,
            format: current.format,
            content: String::new(),
            sha256: String::new(),
            at_ms,
            selector: None,
        });
        Outcome::ConfigDeleted {
            revision: self.commit(change),
        }
    }

    /// `Command::ConfigRollback`: publishes a kept version's content as a new version.
    pub(crate) fn config_rollback(
        &mut self,
        key: ConfigKey,
        version: u64,
        meta: PublishMeta,
    ) -> Outcome {
        let Some(entry) = self.configs.get(&key).filter(|e| e.live) else {
            return Outcome::Refused(StateError::ConfigNotFound(key.to_string()));
        };
        let Some(old) = entry.history.iter().find(|v| v.version == version).cloned() else {
            return Outcome::Refused(StateError::ConfigVersionNotFound {
                key: key.to_string(),
                version,
            });
        };
        self.config_publish(key, old.format, old.content, old.sha256, None, meta)
    }

    /// `Command::ConfigGray`: stages (or replaces) a candidate for selected instances.
    pub(crate) fn config_gray(
        &mut self,
        key: ConfigKey,
        content: String,
        sha256: String,
        selector: GraySelector,
        at_ms: u64,
    ) -> Outcome {
        let Some(current) = self.configs.get(&key).and_then(|e| e.current()).cloned() else {
            return Outcome::Refused(StateError::ConfigNotFound(key.to_string()));
        };
        let mut change = self.begin();
        if let Some(entry) = self.configs.get_mut(&key) {
            entry.gray = Some(GrayEntry {
                content: content.clone(),
                sha256: sha256.clone(),
                selector: selector.clone(),
                revision: change.rev,
                at_ms,
            });
            entry.mod_revision = change.rev;
        }
        change.emit(EventKind::Config {
            kind: ConfigEventKind::Gray,
            key,
            version: current.version,
            format: current.format,
            content,
            sha256,
            at_ms,
            selector: Some(selector),
        });
        Outcome::ConfigGray {
            revision: self.commit(change),
        }
    }

    /// `Command::ConfigGrayPromote`: publishes the candidate as the next version.
    pub(crate) fn config_gray_promote(&mut self, key: ConfigKey, meta: PublishMeta) -> Outcome {
        let Some((gray, format)) = self
            .configs
            .get(&key)
            .and_then(|e| Some((e.gray.clone()?, e.current()?.format)))
        else {
            return Outcome::Refused(StateError::NoGray(key.to_string()));
        };
        let mut change = self.begin();
        if let Some(entry) = self.configs.get_mut(&key) {
            entry.gray = None;
        }
        let version = self.push_version(
            &mut change,
            &key,
            format,
            gray.content,
            gray.sha256.clone(),
            meta,
        );
        Outcome::ConfigPublished {
            revision: self.commit(change),
            version,
            sha256: gray.sha256,
        }
    }

    /// `Command::ConfigGrayCancel`: withdraws the candidate; its watchers get the
    /// published content back.
    pub(crate) fn config_gray_cancel(&mut self, key: ConfigKey, at_ms: u64) -> Outcome {
        let Some((gray, current)) = self
            .configs
            .get(&key)
            .and_then(|e| Some((e.gray.clone()?, e.current()?.clone())))
        else {
            return Outcome::Refused(StateError::NoGray(key.to_string()));
        };
        let mut change = self.begin();
        if let Some(entry) = self.configs.get_mut(&key) {
            entry.gray = None;
            entry.mod_revision = change.rev;
        }
        change.emit(EventKind::Config {
            kind: ConfigEventKind::GrayCancel,
            key,
            version: current.version,
            format: current.format,
            content: current.content,
            sha256: current.sha256,
            at_ms,
            selector: Some(gray.selector),
        });
        Outcome::ConfigGray {
            revision: self.commit(change),
        }
    }

    /// One item (deleted ones too, for their revision).
    pub fn config(&self, key: &ConfigKey) -> Option<&ConfigEntry> {
        self.configs.get(key)
    }

    /// The live items of a namespace (of one group when given), sorted by group and id.
    pub fn configs_in<'a>(
        &'a self,
        namespace: &'a str,
        group: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ConfigKey, &'a ConfigEntry)> + 'a {
        self.configs
            .range(ConfigKey::new(namespace, "", "")..)
            .take_while(move |(k, _)| k.namespace == namespace)
            .filter(move |(k, e)| e.live && group.is_none_or(|g| k.group == g))
    }

    /// Number of live items.
    pub fn config_count(&self) -> usize {
        self.configs.values().filter(|e| e.live).count()
    }
}

/// Items by key, as the state machine stores them.
pub(crate) type Configs = BTreeMap<ConfigKey, ConfigEntry>;

#[cfg(test)]
mod tests;
