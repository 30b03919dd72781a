//! `concord dev` and `concord server`: run a node until asked to stop.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use concord_server::ServerConfig;

use crate::cli::{DevArgs, ServerArgs};
use crate::signal::shutdown_signal;

/// `concord dev`: one self-bootstrapping node (id 1) for local development.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig {
        node_id: 1,
        data_dir: args.data_dir,
        client_addr: args.addr,
        peer_addr: args.peer_addr,
        bootstrap: true,
        ..ServerConfig::default()
    };
    args.tuning.apply(&mut config).map_err(anyhow::Error::msg)?;
    run(config, "dev node", args.gateway_addr).await
}

/// `concord server`: one member of a cluster.
pub async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig {
        node_id: args.node_id,
        data_dir: args.data_dir,
        client_addr: args.client_addr,
        peer_addr: args.peer_addr,
        bootstrap: args.bootstrap,
        ..ServerConfig::default()
    };
    args.cluster
        .apply(&mut config)
        .map_err(anyhow::Error::msg)?;
    args.tuning.apply(&mut config).map_err(anyhow::Error::msg)?;
    run(config, "node", None).await
}

/// Starts the node (and a gateway beside it when `gateway` is set), announces
/// the addresses, waits for a signal, drains the gateway, shuts down cleanly.
async fn run(config: ServerConfig, what: &str, gateway: Option<SocketAddr>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    let node_id = config.node_id;
    tracing::info!(node_id, data_dir = %data_dir.display(), "starting {what}");

    let server = concord_server::start(config)
        .await
        .context("cannot start the node")?;

    let banner = banner(
        server.client_addr,
        server.peer_addr,
        server.dns_addr,
        node_id,
        &data_dir,
    );
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(banner.as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    let gateway = match gateway {
        Some(listen) => {
            let url = format!("http://{}", reachable(server.client_addr));
            Some(crate::cmd_gateway::start_beside(&url, listen).await?)
        }
        None => None,
    };

    let failure = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!("received {signal}, shutting down (send it again to exit at once)");
            None
        }
        reason = server.fatal_error() => {
            tracing::error!("{reason}; shutting down");
            Some(reason)
        }
    };
    if let Some(gateway) = gateway {
        gateway.shutdown().await;
    }
    tokio::select! {
        result = server.shutdown() => result.context("clean shutdown failed")?,
        signal = shutdown_signal() => bail!("received {signal} again, exiting without a clean shutdown"),
    }
    tracing::info!("stopped");
    match failure {
        Some(reason) => bail!("{reason}"),
        None => Ok(()),
    }
}

/// The startup text: first the machine-readable line tests parse, then URLs for people.
fn banner(
    client: SocketAddr,
    peer: SocketAddr,
    dns: Option<SocketAddr>,
    node_id: u64,
    data_dir: &std::path::Path,
) -> String {
    let base = format!("http://{}", reachable(client));
    let (dns_field, dns_line) = match dns {
        Some(d) => {
            let r = reachable(d);
            (
                format!(" dns={d}"),
                format!(
                    "  DNS:       dig @{} -p {} SERVICE.service.concord\n",
                    r.ip(),
                    r.port()
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    format!(
        "concord listening: client=http://{client} peer={peer}{dns_field}\n\
         \x20 node:      {node_id} (data in {})\n\
         \x20 API:       {base}/v1/\n\
         \x20 status:    {base}/v1/status\n\
         \x20 metrics:   {base}/metrics\n\
         \x20 try:       concord --addr {base} kv put hello world\n\
         {dns_line}\
         Press Ctrl-C to stop.\n",
        data_dir.display()
    )
}

/// An address a local client can connect to: a wildcard bind (0.0.0.0, ::) becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_names_the_dns_port() {
        let text = banner(
            "127.0.0.1:7600".parse().unwrap(),
            "127.0.0.1:7601".parse().unwrap(),
            Some("0.0.0.0:7653".parse().unwrap()),
            1,
            std::path::Path::new("d"),
        );
        assert!(text.starts_with(
            "concord listening: client=http://127.0.0.1:7600 peer=127.0.0.1:7601 dns=0.0.0.0:7653\n"
        ));
        assert!(text.contains("dig @127.0.0.1 -p 7653 SERVICE.service.concord"));
    }

    #[test]
    fn banner_starts_with_the_parseable_line() {
        let text = banner(
            "0.0.0.0:41234".parse().unwrap(),
            "127.0.0.1:41235".parse().unwrap(),
            None,
            1,
            std::path::Path::new("./concord-data"),
        );
        assert!(!text.contains("DNS"));
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("concord listening: client=http://0.0.0.0:41234 peer=127.0.0.1:41235")
        );
        let rest: Vec<_> = lines.collect();
        assert!(
            rest.iter()
                .any(|l| l.contains("http://127.0.0.1:41234/metrics"))
        );
        assert!(
            rest.iter()
                .any(|l| l.contains("http://127.0.0.1:41234/v1/status"))
        );
        assert_eq!(
            text.matches("concord listening:").count(),
            1,
            "exactly one listening line"
        );
    }

    #[test]
    fn ipv6_wildcards_become_loopback() {
        assert_eq!(
            reachable("[::]:7600".parse().unwrap()).to_string(),
            "[::1]:7600"
        );
        assert_eq!(
            reachable("10.1.2.3:7600".parse().unwrap()).to_string(),
            "10.1.2.3:7600"
        );
    }
}
