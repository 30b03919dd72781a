//! `concord snapshot save|restore`: backups and disaster recovery.

use anyhow::Context;
use concord_client::Client;
use concord_server::backup;

use crate::cli::SnapshotCommand;
use crate::output::Output;

/// Runs one snapshot subcommand. `client` is only contacted by `save`.
pub async fn run(
    client: &Client,
    command: SnapshotCommand,
    out: &mut Output,
) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { file } => {
            let bytes = client.snapshot().await?;
            // Never write a file we could not restore from.
            let revision = backup::decode(&bytes)
                .context("the server sent a backup that does not verify")?
                .revision;
            backup::write_file(&file, &bytes)?;
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "revision": revision,
                "bytes": bytes.len(),
            });
            out.either(&summary, || {
                format!(
                    "saved revision {revision} ({} bytes) to {}",
                    bytes.len(),
                    file.display()
                )
            })?;
        }
        SnapshotCommand::Restore { file, data_dir } => {
            let revision = backup::seed_data_dir(&file, &data_dir)?;
            let summary = serde_json::json!({
                "data_dir": data_dir.display().to_string(),
                "revision": revision,
            });
            out.either(&summary, || {
                format!(
                    "seeded {} with the backup at revision {revision}; start it with \
                     `concord dev --data-dir {0}` or `concord server --bootstrap --data-dir {0} ...`",
                    data_dir.display()
                )
            })?;
        }
    }
    Ok(())
}
