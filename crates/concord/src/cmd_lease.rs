//! `concord lease ...`.

use concord_api::lease::{LeaseGrant, LeaseInfo};
use concord_client::Client;

use crate::cli::LeaseCommand;
use crate::output::Output;

/// Runs one lease subcommand.
pub async fn run(client: &Client, command: LeaseCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        LeaseCommand::Grant { ttl } => {
            let lease = client.lease_grant(ttl).await?;
            out.either(&lease, || grant_line(&lease))?;
        }
        LeaseCommand::Keepalive { id } => {
            let lease = client.lease_keepalive(&id).await?;
            out.either(&lease, || grant_line(&lease))?;
        }
        LeaseCommand::Revoke { id } => {
            let r = client.lease_revoke(&id).await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        LeaseCommand::Info { id } => {
            let info = client.lease_info(&id).await?;
            out.either(&info, || render_info(&info))?;
        }
    }
    Ok(())
}

/// `lease 000000000000002a ttl=10s`: the id first, so `awk '{print $2}'` finds it.
fn grant_line(lease: &LeaseGrant) -> String {
    format!("lease {} ttl={}s", lease.id, lease.ttl_secs)
}

fn render_info(info: &LeaseInfo) -> String {
    let mut text = format!(
        "lease:     {}\nttl:       {}s\nremaining: {:.1}s\nkeys:      {}\n",
        info.id,
        info.ttl_secs,
        info.remaining_ms as f64 / 1000.0,
        info.keys.len()
    );
    for key in &info.keys {
        text.push_str("  ");
        text.push_str(key);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let g = LeaseGrant {
            id: "000000000000002a".into(),
            ttl_secs: 10,
            revision: None,
        };
        assert_eq!(grant_line(&g), "lease 000000000000002a ttl=10s");
        let info = LeaseInfo {
            id: "000000000000002a".into(),
            ttl_secs: 10,
            remaining_ms: 8300,
            keys: vec!["app/a".into()],
        };
        assert_eq!(
            render_info(&info),
            "lease:     000000000000002a\nttl:       10s\nremaining: 8.3s\nkeys:      1\n  app/a\n"
        );
    }
}
