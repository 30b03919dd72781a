//! `concord config ...`: the configuration center, items addressed as `NS/GROUP/ID`.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context as _, anyhow};
use concord_api::config::{
    ConfigEvent, ConfigEventKind, ConfigFormat, ConfigItem, ConfigList, ConfigVersionSummary,
    GraySelector, PublishResponse,
};
use concord_client::{Client, PublishOptions};

use crate::cli::{ConfigCommand, GrayCommand};
use crate::output::{Output, Table, one_line};

/// Longest comment shown in the history table.
const COMMENT_WIDTH: usize = 60;
/// Hex digits of a content hash shown in the history table.
const SHORT_SHA: usize = 12;

/// An item's address, `NS/GROUP/ID`, checked against the server's rules so
/// typos fail before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAddr {
    /// The namespace.
    pub namespace: String,
    /// The group.
    pub group: String,
    /// The id.
    pub id: String,
}

impl FromStr for ConfigAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '/');
        let (Some(namespace), Some(group), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("expected NS/GROUP/ID, got {s:?}"));
        };
        concord_api::validate::config_key(namespace, group, id).map_err(|e| e.message)?;
        Ok(ConfigAddr {
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for ConfigAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.id)
    }
}

/// Runs one config subcommand.
pub async fn run(client: &Client, command: ConfigCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Put {
            addr,
            file,
            format,
            comment,
            cas,
        } => {
            let content = read_content(&file)?;
            let options = PublishOptions { cas, comment };
            let (ns, group, id) = (&addr.namespace, &addr.group, &addr.id);
            let r = match format.or_else(|| format_from_path(&file)) {
                Some(format) => {
                    client
                        .config_put(ns, group, id, format, &content, &options)
                        .await?
                }
                // The server keeps the item's current format (text for a new item).
                None => {
                    client
                        .config_put_keep_format(ns, group, id, &content, &options)
                        .await?
                }
            };
            out.either(&r, || published_line(&r))?;
        }
        ConfigCommand::Get {
            addr,
            instance,
            raw,
        } => {
            let item = get(client, &addr, instance.as_deref()).await?;
            if raw {
                out.raw(item.content.as_bytes())?;
            } else {
                out.either(&item, || render_item(&item))?;
            }
        }
        ConfigCommand::Ls { namespace, group } => {
            let list = client.config_list(&namespace, group.as_deref()).await?;
            out.either(&list, || render_list(&list))?;
        }
        ConfigCommand::History { addr } => {
            let versions = client
                .config_history(&addr.namespace, &addr.group, &addr.id)
                .await?;
            out.either(&versions, || render_history(&versions))?;
        }
        ConfigCommand::Rollback { addr, version } => {
            let r = client
                .config_rollback(&addr.namespace, &addr.group, &addr.id, version)
                .await?;
            out.either(&r, || published_line(&r))?;
        }
        ConfigCommand::Delete { addr } => {
            let r = client
                .config_delete(&addr.namespace, &addr.group, &addr.id)
                .await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        ConfigCommand::Gray { command } => gray(client, command, out).await?,
        ConfigCommand::Watch {
            addr,
            instance,
            from,
        } => {
            let events = client
                .watch_config(
                    &addr.namespace,
                    &addr.group,
                    &addr.id,
                    instance.as_deref(),
                    from,
                )
                .await?;
            crate::follow::follow(events, out, event_text).await?;
        }
    }
    Ok(())
}

/// Runs one `config gray` subcommand.
async fn gray(client: &Client, command: GrayCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        GrayCommand::Put {
            addr,
            file,
            instances,
            tags,
            meta,
        } => {
            let content = read_content(&file)?;
            let selector = GraySelector {
                instances,
                tags,
                meta: meta.into_iter().collect(),
            };
            let r = client
                .config_gray_put(&addr.namespace, &addr.group, &addr.id, &content, &selector)
                .await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        GrayCommand::Promote { addr } => {
            let r = client
                .config_gray_promote(&addr.namespace, &addr.group, &addr.id)
                .await?;
            out.either(&r, || published_line(&r))?;
        }
        GrayCommand::Cancel { addr } => {
            let r = client
                .config_gray_cancel(&addr.namespace, &addr.group, &addr.id)
                .await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
    }
    Ok(())
}

/// The item (as `instance` sees it, when given), or a not-found error naming it.
async fn get(
    client: &Client,
    addr: &ConfigAddr,
    instance: Option<&str>,
) -> anyhow::Result<ConfigItem> {
    let (ns, group, id) = (&addr.namespace, &addr.group, &addr.id);
    let item = match instance {
        Some(instance) => client.config_get_for(ns, group, id, instance).await?,
        None => client.config_get(ns, group, id).await?,
    };
    item.ok_or_else(|| anyhow!("config {addr} not found"))
}

/// The content of `--file` (`-`: stdin), which the server requires to be UTF-8.
pub(crate) fn read_content(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut content = String::new();
        std::io::stdin()
            .read_to_string(&mut content)
            .context("cannot read the content from stdin (it must be UTF-8)")?;
        return Ok(content);
    }
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} (it must be UTF-8)", file.display()))
}

/// The format a file's extension names (`app.yml` -> yaml); `None` for stdin
/// and unknown extensions.
fn format_from_path(file: &Path) -> Option<ConfigFormat> {
    file.extension()?.to_str()?.parse().ok()
}

/// `OK version=3 revision=42 sha256=…`.
fn published_line(r: &PublishResponse) -> String {
    format!(
        "OK version={} revision={} sha256={}",
        r.version, r.revision, r.sha256
    )
}

/// `version=V sha256=H format=F` (plus `gray` when it is the gray candidate), then the content.
fn render_item(item: &ConfigItem) -> String {
    let gray = if item.gray { " gray" } else { "" };
    format!(
        "version={} sha256={} format={}{gray}\n{}",
        item.version, item.sha256, item.format, item.content
    )
}

fn render_list(list: &ConfigList) -> String {
    let mut table = Table::new(&["ID", "GROUP", "FORMAT", "VERSION", "UPDATED", "GRAY"]);
    for item in &list.items {
        table.row(vec![
            item.id.clone(),
            item.group.clone(),
            item.format.to_string(),
            item.version.to_string(),
            item.updated_at.clone(),
            if item.gray { "yes" } else { "-" }.to_owned(),
        ]);
    }
    table.render()
}

fn render_history(versions: &[ConfigVersionSummary]) -> String {
    let mut table = Table::new(&["VERSION", "UPDATED", "SHA256", "COMMENT"]);
    for v in versions {
        let comment = if v.comment.is_empty() {
            "-".to_owned()
        } else {
            one_line(v.comment.as_bytes(), COMMENT_WIDTH)
        };
        table.row(vec![
            v.version.to_string(),
            v.updated_at.clone(),
            v.sha256.chars().take(SHORT_SHA).collect(),
            comment,
        ]);
    }
    table.render()
}

/// `7 PUBLISH v3 sha256=…` and, except for deletes, the content on the lines after.
fn event_text(event: &ConfigEvent) -> String {
    let kind = match event.kind {
        ConfigEventKind::Publish => "PUBLISH",
        ConfigEventKind::Delete => "DELETE",
        ConfigEventKind::Gray => "GRAY",
        ConfigEventKind::GrayCancel => "GRAY_CANCEL",
    };
    let sha = if event.sha256.is_empty() {
        "-"
    } else {
        &event.sha256
    };
    let head = format!("{} {kind} v{} sha256={sha}", event.revision, event.version);
    match event.kind {
        ConfigEventKind::Delete => head,
        _ => format!("{head}\n{}", event.content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let addr: ConfigAddr = "prod/orders/app.yaml".parse().unwrap();
        assert_eq!(
            (
                addr.namespace.as_str(),
                addr.group.as_str(),
                addr.id.as_str()
            ),
            ("prod", "orders", "app.yaml")
        );
        assert_eq!(addr.to_string(), "prod/orders/app.yaml");
        for bad in ["prod/orders", "prod", "", "prod//x", "Prod/g/i", "p/g/a/b"] {
            assert!(bad.parse::<ConfigAddr>().is_err(), "{bad:?}");
        }
        let err = "prod/orders".parse::<ConfigAddr>().unwrap_err();
        assert!(err.contains("NS/GROUP/ID"), "{err}");
        let err = "prod/orders/a b".parse::<ConfigAddr>().unwrap_err();
        assert!(err.contains("config id"), "{err}");
    }

    #[test]
    fn formats_from_extensions() {
        let f = |p: &str| format_from_path(Path::new(p));
        assert_eq!(f("app.yaml"), Some(ConfigFormat::Yaml));
        assert_eq!(f("dir/app.YML"), Some(ConfigFormat::Yaml));
        assert_eq!(f("a.json"), Some(ConfigFormat::Json));
        assert_eq!(f("a.toml"), Some(ConfigFormat::Toml));
        assert_eq!(f("a.properties"), Some(ConfigFormat::Properties));
        assert_eq!(f("notes.txt"), Some(ConfigFormat::Text));
        assert_eq!(f("a.conf"), None);
        assert_eq!(f("Makefile"), None);
        assert_eq!(f("-"), None);
    }

    fn item(gray: bool) -> ConfigItem {
        ConfigItem {
            namespace: "prod".into(),
            group: "orders".into(),
            id: "app.yaml".into(),
            format: ConfigFormat::Yaml,
            content: "pool: 8\n".into(),
            version: 3,
            sha256: "abc".into(),
            revision: 42,
            updated_at: "2024-05-01T10:00:00.000Z".into(),
            gray,
        }
    }

    #[test]
    fn item_text() {
        assert_eq!(
            render_item(&item(false)),
            "version=3 sha256=abc format=yaml\npool: 8\n"
        );
        assert_eq!(
            render_item(&item(true)),
            "version=3 sha256=abc format=yaml gray\npool: 8\n"
        );
    }

    #[test]
    fn tables() {
        let list = ConfigList {
            revision: 9,
            namespace: "prod".into(),
            items: vec![concord_api::config::ConfigSummary {
                id: "app.yaml".into(),
                group: "orders".into(),
                format: ConfigFormat::Yaml,
                version: 3,
                updated_at: "2024-05-01T10:00:00.000Z".into(),
                gray: true,
            }],
        };
        assert_eq!(
            render_list(&list),
            "ID        GROUP   FORMAT  VERSION  UPDATED                   GRAY\n\
             app.yaml  orders  yaml    3        2024-05-01T10:00:00.000Z  yes\n"
        );
        let versions = vec![
            ConfigVersionSummary {
                version: 2,
                sha256: "0123456789abcdef0123".into(),
                comment: "bump\npool".into(),
                updated_at: "2024-05-01T10:00:00.000Z".into(),
                revision: 8,
            },
            ConfigVersionSummary {
                version: 1,
                sha256: "fedcba9876543210".into(),
                comment: String::new(),
                updated_at: "2024-04-30T09:00:00.000Z".into(),
                revision: 5,
            },
        ];
        assert_eq!(
            render_history(&versions),
            "VERSION  UPDATED                   SHA256        COMMENT\n\
             2        2024-05-01T10:00:00.000Z  0123456789ab  bump\\npool\n\
             1        2024-04-30T09:00:00.000Z  fedcba987654  -\n"
        );
    }

    #[test]
    fn watch_text() {
        let mut e = ConfigEvent {
            revision: 7,
            kind: ConfigEventKind::Publish,
            namespace: "prod".into(),
            group: "orders".into(),
            id: "app.yaml".into(),
            version: 3,
            format: ConfigFormat::Yaml,
            content: "pool: 8\n".into(),
            sha256: "abc".into(),
            published_at_ms: 1,
        };
        assert_eq!(event_text(&e), "7 PUBLISH v3 sha256=abc\npool: 8\n");
        e.kind = ConfigEventKind::GrayCancel;
        assert_eq!(event_text(&e), "7 GRAY_CANCEL v3 sha256=abc\npool: 8\n");
        e.kind = ConfigEventKind::Delete;
        e.content.clear();
        e.sha256.clear();
        assert_eq!(event_text(&e), "7 DELETE v3 sha256=-");
    }

    #[test]
    fn publish_lines() {
        let r = PublishResponse {
            version: 3,
            revision: 42,
            sha256: "abc".into(),
        };
        assert_eq!(published_line(&r), "OK version=3 revision=42 sha256=abc");
    }
}
