//! `concord gateway`: run the proxy until asked to stop, then drain.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use concord_gateway::GatewayConfig;

use crate::cli::GatewayArgs;
use crate::signal::shutdown_signal;

/// Starts the gateway, announces it, drains on the first signal and exits at
/// once on the second.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let config = GatewayConfig {
        server: args.server,
        listen: args.listen,
        admin: args.admin,
        access_log: args.access_log,
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        client_idle_timeout: Duration::from_secs(args.client_idle_timeout_secs),
        ..GatewayConfig::default()
    };
    let server = config.server.clone();
    let gateway = concord_gateway::start(config)
        .await
        .context("cannot start the gateway")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(banner(gateway.listen_addr(), gateway.admin_addr(), &server).as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    let signal = shutdown_signal().await;
    tracing::info!("received {signal}, draining (send it again to exit at once)");
    tokio::select! {
        () = gateway.shutdown() => {}
        signal = shutdown_signal() => bail!("received {signal} again, exiting without draining"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts a gateway following the node at `server` (for `concord dev
/// --gateway-addr`) and prints its listening line.
pub async fn start_beside(
    server: &str,
    listen: SocketAddr,
) -> anyhow::Result<concord_gateway::Gateway> {
    let config = GatewayConfig {
        server: server.to_owned(),
        listen,
        ..GatewayConfig::default()
    };
    let gateway = concord_gateway::start(config)
        .await
        .context("cannot start the gateway")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "concord gateway listening: http://{}",
        gateway.listen_addr()
    )?;
    stdout.flush()?;
    Ok(gateway)
}

/// The startup text: first the machine-readable line tests parse, then hints.
pub fn banner(listen: SocketAddr, admin: Option<SocketAddr>, server: &str) -> String {
    let admin_field = admin.map(|a| format!(" admin={a}")).unwrap_or_default();
    let admin_lines = admin
        .map(|a| {
            format!(
                "  routes:    http://{a}/admin/routes\n  upstreams: http://{a}/admin/upstreams\n  metrics:   http://{a}/metrics\n"
            )
        })
        .unwrap_or_default();
    format!(
        "concord gateway listening: http://{listen}{admin_field}\n\
         \x20 routes and instances from {server} (concord route ls)\n\
         {admin_lines}\
         Press Ctrl-C to stop.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_starts_with_the_parseable_line() {
        let text = banner(
            "127.0.0.1:7680".parse().unwrap(),
            Some("127.0.0.1:7681".parse().unwrap()),
            "http://127.0.0.1:7600",
        );
        assert!(text.starts_with(
            "concord gateway listening: http://127.0.0.1:7680 admin=127.0.0.1:7681\n"
        ));
        assert!(text.contains("http://127.0.0.1:7681/admin/routes"));
        let text = banner("127.0.0.1:7680".parse().unwrap(), None, "http://x");
        assert!(text.starts_with("concord gateway listening: http://127.0.0.1:7680\n"));
        assert!(!text.contains("admin"));
    }
}
