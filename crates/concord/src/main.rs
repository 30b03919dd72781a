//! The `concord` binary: a dev node, a cluster node, and the admin CLI over the HTTP API.
//!
//! Layout: `cli` is the clap grammar; `cmd_*` run one command family each
//! (`cmd_node` runs servers, `cmd_demo` the shop demo and `cmd_shop` one of its
//! services, the others talk to one through `concord-client`);
//! `output` renders tables/JSON; `signal` waits for Ctrl-C/SIGTERM.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod cli;
mod cmd_config;
mod cmd_demo;
mod cmd_gateway;
mod cmd_kv;
mod cmd_lease;
mod cmd_members;
mod cmd_node;
mod cmd_route;
mod cmd_services;
mod cmd_shop;
mod cmd_snapshot;
mod cmd_status;
mod cmd_txn;
mod follow;
mod member_list;
mod output;
mod signal;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use concord_client::{Client, ClientError, Consistency};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, ClientArgs, Command};
use crate::output::Output;

/// Log filter when RUST_LOG is unset: our crates at info, dependencies at warn.
/// mimalloc instead of glibc's malloc: the request paths allocate and free
/// many small objects per request, and glibc's arena trimming and
/// consolidation showed up in gateway profiles (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_LOG_FILTER: &str = "warn,concord=info,concord_server=info,concord_raft=info,concord_state=info,concord_client=info,concord_api=info,concord_gateway=info,concord_shop=info";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match runtime(&cli.command) {
        Ok(runtime) => runtime,
        Err(err) => return report(&anyhow::Error::new(err).context("cannot start the runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// The multi-threaded runtime; `gateway --threads N` sets its worker count,
/// and `--threads 1` gets the current-thread scheduler, which serves the
/// same one-core load with less CPU per request (no work-stealing queues,
/// no cross-thread wake-ups; see docs/benchmarks.md).
fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match command {
        Command::Gateway(args) if args.threads == Some(1) => {
            tokio::runtime::Builder::new_current_thread()
        }
        Command::Gateway(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.threads {
                builder.worker_threads(threads.into());
            }
            builder
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// Dispatches to the command.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = Output::stdout(cli.json);
    let consistency = if cli.stale {
        Consistency::Stale
    } else {
        Consistency::Default
    };
    let top_addr = cli.addr;
    let connect =
        |args: &ClientArgs| Client::new(args.server_url(&top_addr)).with_consistency(consistency);
    match cli.command {
        Command::Dev(args) => cmd_node::dev(args).await,
        Command::Demo(args) => cmd_demo::run(args).await,
        Command::Shop(args) => cmd_shop::run(args).await,
        Command::Server(args) => cmd_node::server(args).await,
        Command::Gateway(args) => cmd_gateway::run(args).await,
        Command::Status(args) => cmd_status::run(&connect(&args.client), &mut out).await,
        Command::Kv(args) => cmd_kv::run(&connect(&args.client), args.command, &mut out).await,
        Command::Services(args) => {
            let client = connect(&args.client).with_namespace(args.namespace);
            cmd_services::run(&client, args.command, &mut out).await
        }
        Command::Config(args) => {
            cmd_config::run(&connect(&args.client), args.command, &mut out).await
        }
        Command::Route(args) => {
            cmd_route::run(&connect(&args.client), args.command, &mut out).await
        }
        Command::Lease(args) => {
            cmd_lease::run(&connect(&args.client), args.command, &mut out).await
        }
        Command::Snapshot(args) => {
            cmd_snapshot::run(&connect(&args.client), args.command, &mut out).await
        }
        Command::Members(args) => {
            cmd_members::run(&connect(&args.client), args.command, &mut out).await
        }
        Command::Txn(args) => cmd_txn::run(&connect(&args.client), args.command, &mut out).await,
    }
}

/// Logs to stderr (stdout is for results); RUST_LOG overrides the default filter.
fn init_tracing() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: ignoring invalid RUST_LOG {spec:?}: {e}");
            EnvFilter::new(DEFAULT_LOG_FILTER)
        }),
        _ => EnvFilter::new(DEFAULT_LOG_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Prints `error: <message>` to stderr and picks the exit code.
///
/// A closed stdout pipe is not an error worth reporting (`concord kv ls | head`).
fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", error_message(err));
    ExitCode::FAILURE
}

/// The server's own wording for API errors; the full cause chain otherwise.
fn error_message(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Api { message, .. }) => message.clone(),
        _ => format!("{err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_print_the_server_message() {
        let err = anyhow::Error::new(ClientError::from_response(
            404,
            br#"{"error":{"code":"not_found","message":"lease 00000000000000ab not found"}}"#,
        ));
        assert_eq!(error_message(&err), "lease 00000000000000ab not found");
        let err = anyhow::anyhow!("key \"k\" not found");
        assert_eq!(error_message(&err), "key \"k\" not found");
    }

    #[test]
    fn default_filter_parses() {
        EnvFilter::try_new(DEFAULT_LOG_FILTER).unwrap();
    }
}
