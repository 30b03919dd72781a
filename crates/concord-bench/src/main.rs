//! `concord-bench`: the load generator behind `bench/registry/run.sh`,
//! `bench/config/run.sh` and `bench/txn/run.sh`.
//!
//! One subcommand per scenario, each against one running concord node (`txn`: one or
//! more nodes of a cluster):
//!
//! - `register`: closed-loop registrations of new persistent instances over C connections;
//! - `heartbeats`: N ephemeral instances, each heart-beaten on a fixed schedule (open loop);
//! - `fanout`: W Server-Sent-Events watchers of one service, and how long each
//!   registration takes to reach all of them;
//! - `config-fanout`: W watchers of one config item, and how long each published
//!   version takes to reach all of them (`bench/config/run.sh`);
//! - `txn`: two-step sagas per second and per core-second of the concord processes, at
//!   C concurrent clients, against an in-process trivial participant (`bench/txn/run.sh`);
//! - `hyper-floor`: not a load generator but a minimal hyper reverse proxy, the
//!   yardstick `bench/gateway/run.sh` sets the gateway against.
//!
//! Each prints progress on stderr and one `BENCH_RESULT key=value …` line on stdout
//! (`txn`: one per concurrency), which the script parses. Given `--pid`, the server's
//! CPU (from `/proc/PID/stat`) is measured over the same window as the load.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod config_fanout;
mod fanout;
mod heartbeats;
mod hyper_floor;
mod ids;
mod phase;
mod procfs;
mod register;
mod report;
mod stats;
mod txn;
mod watchers;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::procfs::CpuWindow;

#[derive(Debug, Parser)]
#[command(about = "Load generator for the concord registry and config benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Registrations per second of new persistent instances.
    Register(register::Args),
    /// Sustained heartbeats of ephemeral instances at a fixed rate.
    Heartbeats(heartbeats::Args),
    /// Delivery latency of registrations to many watchers.
    Fanout(fanout::Args),
    /// Delivery latency of config publishes to many listeners.
    ConfigFanout(config_fanout::Args),
    /// Two-step sagas per second through the transaction coordinator.
    Txn(txn::Args),
    /// A minimal hyper reverse proxy (serves until killed).
    HyperFloor(hyper_floor::Args),
}

/// The server under test; shared by every scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Client URL of the concord node, e.g. http://127.0.0.1:7600.
    #[arg(long)]
    pub url: String,

    /// Process id of the server, to measure its CPU and memory over the measured window.
    #[arg(long)]
    pub pid: Option<u32>,

    /// The kernel's clock ticks per second (`getconf CLK_TCK`), for /proc CPU times.
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
}

impl Target {
    /// The URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// A CPU window on the server, or `None` without `--pid`.
    pub fn server_cpu(&self) -> Result<Option<CpuWindow>> {
        self.pid
            .map(|pid| CpuWindow::start(pid, self.clk_tck))
            .transpose()
    }

    /// A CPU window on this load generator.
    pub fn client_cpu(&self) -> Result<CpuWindow> {
        CpuWindow::start(std::process::id(), self.clk_tck)
    }
}

/// Cores used in a window, as the report shows them (`nan` when not measured).
pub fn cores(window: Option<&CpuWindow>) -> Result<String> {
    Ok(match window {
        Some(w) => format!("{:.3}", w.cores()?),
        None => "nan".to_owned(),
    })
}

/// An HTTP/1.1 client; with `max_idle = 1` and one request at a time it holds one connection.
pub fn http_client(max_idle: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle)
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// Sends a request and reads the whole answer (so the connection can be reused):
/// the status and the body, or the transport error.
pub async fn call(req: reqwest::RequestBuilder) -> reqwest::Result<(reqwest::StatusCode, String)> {
    let resp = req.send().await?;
    let status = resp.status();
    Ok((status, resp.text().await?))
}

/// The allocator concord uses, so the hyper floor differs from the gateway only in
/// the gateway's own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let scenario = match Cli::parse().scenario {
        // On its own current-thread runtime, like `concord gateway --threads 1`.
        Scenario::HyperFloor(args) => return hyper_floor::run(args),
        other => other,
    };
    let lines = tokio::runtime::Runtime::new()?.block_on(async {
        anyhow::Ok(match scenario {
            Scenario::Register(args) => vec![register::run(args).await?],
            Scenario::Heartbeats(args) => vec![heartbeats::run(args).await?],
            Scenario::Fanout(args) => vec![fanout::run(args).await?],
            Scenario::ConfigFanout(args) => vec![config_fanout::run(args).await?],
            Scenario::Txn(args) => txn::run(args).await?,
            Scenario::HyperFloor(_) => anyhow::bail!("hyper-floor runs on its own runtime"),
        })
    })?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
