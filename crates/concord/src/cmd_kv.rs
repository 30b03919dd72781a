//! `concord kv ...`.

use anyhow::anyhow;
use base64::Engine as _;
use concord_api::kv::KvItem;
use concord_api::watch::{KvEvent, KvEventKind};
use concord_client::{Client, DeleteOptions, PutOptions};

use crate::cli::KvCommand;
use crate::output::{Output, Table, one_line, or_dash};

/// Longest value shown in `kv ls` tables and watch lines.
const VALUE_WIDTH: usize = 60;

/// Runs one KV subcommand.
pub async fn run(client: &Client, command: KvCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        KvCommand::Put {
            key,
            value,
            cas,
            lease,
        } => {
            let options = PutOptions { cas, lease };
            let r = client
                .kv_put_with(&key, value.into_encoded_bytes(), &options)
                .await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        KvCommand::Get { key, raw: true } => {
            let value = client
                .kv_get_raw(&key)
                .await?
                .ok_or_else(|| not_found(&key))?;
            out.raw(&value.value)?;
        }
        KvCommand::Get { key, raw: false } => {
            let item = client.kv_get(&key).await?.ok_or_else(|| not_found(&key))?;
            if out.is_json() {
                out.json(&item)?;
            } else {
                let mut bytes = item.value_bytes();
                bytes.push(b'\n');
                out.raw(&bytes)?;
            }
        }
        KvCommand::Ls {
            prefix,
            keys_only: true,
            limit,
        } => {
            let keys = client.kv_keys(&prefix, limit).await?;
            out.either(&keys, || {
                keys.keys.iter().map(|k| format!("{k}\n")).collect()
            })?;
        }
        KvCommand::Ls {
            prefix,
            keys_only: false,
            limit,
        } => {
            let list = client.kv_list(&prefix, limit).await?;
            out.either(&list, || render_items(&list.items))?;
        }
        KvCommand::Del { key, prefix, cas } => {
            let options = DeleteOptions { prefix, cas };
            let r = client.kv_delete_with(&key, &options).await?;
            out.either(&r, || {
                format!("OK deleted={} revision={}", r.deleted, r.revision)
            })?;
        }
        KvCommand::Watch { prefix, from } => watch(client, &prefix, from, out).await?,
    }
    Ok(())
}

fn not_found(key: &str) -> anyhow::Error {
    anyhow!("key {key:?} not found")
}

fn render_items(items: &[KvItem]) -> String {
    let mut table = Table::new(&["KEY", "VALUE", "MOD_REV", "VERSION", "LEASE"]);
    for item in items {
        table.row(vec![
            item.key.clone(),
            one_line(&item.value_bytes(), VALUE_WIDTH),
            item.mod_revision.to_string(),
            item.version.to_string(),
            or_dash(item.lease.as_deref()),
        ]);
    }
    table.render()
}

/// Streams changes until Ctrl-C/SIGTERM (exit 0) or the stream breaks (error).
async fn watch(
    client: &Client,
    prefix: &str,
    from: Option<u64>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let events = client.watch_prefix(prefix, from).await?;
    crate::follow::follow(events, out, event_line).await
}

/// The value bytes of a put event, whichever field carried them.
fn event_value(event: &KvEvent) -> Vec<u8> {
    match (&event.value, &event.value_base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    }
}

/// `12 PUT app/a = value` / `13 DELETE app/a`.
fn event_line(event: &KvEvent) -> String {
    match event.kind {
        KvEventKind::Put => format!(
            "{} PUT {} = {}",
            event.revision,
            event.key,
            one_line(&event_value(event), VALUE_WIDTH)
        ),
        KvEventKind::Delete => format!("{} DELETE {}", event.revision, event.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines() {
        let put = KvEvent {
            revision: 12,
            kind: KvEventKind::Put,
            key: "app/a".into(),
            value: Some("two\nlines".into()),
            value_base64: None,
        };
        assert_eq!(event_line(&put), "12 PUT app/a = two\\nlines");
        let bin = KvEvent {
            value: None,
            value_base64: Some("/w==".into()),
            ..put.clone()
        };
        assert_eq!(event_line(&bin), "12 PUT app/a = \u{fffd}");
        let del = KvEvent {
            revision: 13,
            kind: KvEventKind::Delete,
            key: "app/a".into(),
            value: None,
            value_base64: None,
        };
        assert_eq!(event_line(&del), "13 DELETE app/a");
    }

    #[test]
    fn item_table() {
        let items = vec![KvItem {
            key: "app/a".into(),
            value: Some("1".into()),
            value_base64: None,
            create_revision: 3,
            mod_revision: 4,
            version: 2,
            lease: None,
        }];
        assert_eq!(
            render_items(&items),
            "KEY    VALUE  MOD_REV  VERSION  LEASE\napp/a  1      4        2        -\n"
        );
    }
}
