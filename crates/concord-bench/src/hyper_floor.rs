//! `hyper-floor`: the least a reverse proxy built on hyper can do, as a yardstick
//! for the gateway benchmark (`bench/gateway/run.sh`).
//!
//! A hyper HTTP/1.1 server on a current-thread runtime (as `concord gateway
//! --threads 1`) whose every client connection gets one upstream hyper HTTP/1.1
//! connection of its own, driven by its own task, and forwards each request on it
//! unchanged: no routing, no pool, no header rules, no timeouts, no metrics. What it
//! costs per request is what hyper and tokio cost; what the gateway costs above it is
//! the gateway's own work. Not a product: a failed upstream ends the client's
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// The origin every request goes to, e.g. 127.0.0.1:8080.
    #[arg(long)]
    upstream: SocketAddr,
}

/// Serves until killed; prints `hyper-floor listening: http://ADDR/` once bound.
pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("hyper-floor listening: http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            if let Err(e) = proxy_connection(stream, upstream).await {
                eprintln!("hyper-floor: connection ended: {e:#}");
            }
        });
    }
}

/// One client connection and its own upstream connection.
async fn proxy_connection(client: TcpStream, upstream: SocketAddr) -> Result<()> {
    client.set_nodelay(true)?;
    let origin = TcpStream::connect(upstream).await?;
    origin.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(origin)).await?;
    tokio::spawn(conn);
    let sender: Arc<Mutex<SendRequest<Incoming>>> = Arc::new(Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = Arc::clone(&sender);
        async move {
            // One request at a time per client connection: the lock is never contended.
            let mut sender = sender.lock().await;
            sender.ready().await?;
            sender.send_request(req).await
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}
