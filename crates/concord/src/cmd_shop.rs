//! `concord shop SERVICE` (hidden): one instance of a shop demo service, as a
//! process of its own so `concord demo` can show an instance being killed.

use std::io::{Read, Write};

use anyhow::Context;
use concord_shop::{Options, ShopServer};

use crate::cli::ShopArgs;
use crate::signal::shutdown_signal;

/// Starts the instance, prints its machine-readable line, serves until a
/// signal (or the parent's death, with `--exit-with-parent`), then deregisters
/// and drains.
pub async fn run(args: ShopArgs) -> anyhow::Result<()> {
    let service = args.service;
    let instance_id = args
        .instance_id
        .unwrap_or_else(|| format!("{service}-{}", std::process::id()));
    let options = Options {
        servers: args.servers,
        listen: args.listen,
        data_dir: args.data_dir,
        instance_id: instance_id.clone(),
    };
    let server = ShopServer::start(service, options)
        .await
        .with_context(|| format!("cannot start {service}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "shop {service} listening: http://{} id={instance_id} pid={}",
        server.addr(),
        std::process::id()
    )?;
    stdout.flush()?;
    drop(stdout);

    let reason = tokio::select! {
        signal = shutdown_signal() => signal,
        () = parent_gone(args.exit_with_parent) => "end of stdin (the parent is gone)",
    };
    tracing::info!(%service, id = %instance_id, "{reason}: deregistering and draining");
    // Later signals are ignored: Ctrl-C in a terminal reaches the whole process
    // group and the demo forwards SIGTERM too, and neither should cut the
    // deregistration short. The demo kills a child that hangs.
    Ok(server.shutdown().await?)
}

/// Resolves when stdin reaches end of file (or fails), if `enabled`; never otherwise.
///
/// A plain thread, not `tokio::io::stdin`: tokio reads stdin on a blocking-pool
/// thread that would hold the runtime's shutdown until the read returns.
async fn parent_gone(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}
