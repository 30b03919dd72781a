//! Scenario `register`: registrations per second of new persistent instances.
//!
//! C workers, each with its own connection, send `PUT /v1/services/svc-<n mod 100>/instances/i-<n>`
//! back to back (closed loop, like wrk) with unique `n`, so every request creates an
//! instance. After the warm-up, requests that complete inside the measured window count:
//! 200s give the rate and the latencies, anything else (or a transport error) is an error.

use crate::phase::{MEASURE, STOP, WARMUP};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::StatusCode;

use crate::report::ResultLine;
use crate::stats::{Samples, ms};
use crate::{Target, call, cores, http_client, ids};

/// Options of the `register` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,

    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 32)]
    conns: u64,

    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Seconds of warm-up before the measured window (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
}

/// What one worker saw inside the measured window.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies: Samples,
}

/// Runs the scenario and returns its result line.
pub async fn run(args: Args) -> Result<ResultLine> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut workers = Vec::new();
    for w in 0..args.conns {
        let (phase, base) = (phase.clone(), args.target.base().to_owned());
        let client = http_client(1)?;
        workers.push(tokio::spawn(worker(client, base, w, args.conns, phase)));
    }
    eprintln!(
        "register: {} connections, {}s warm-up, {}s measured",
        args.conns, args.warmup, args.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    phase.store(MEASURE, Ordering::SeqCst);
    let start = Instant::now();
    let server = args.target.server_cpu()?;
    let client = args.target.client_cpu()?;
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let server_cores = cores(server.as_ref())?;
    let client_cores = cores(Some(&client))?;
    phase.store(STOP, Ordering::SeqCst);
    let wall = start.elapsed().as_secs_f64();

    let mut total = Tally::default();
    for w in workers {
        let t = w.await?;
        total.ok += t.ok;
        total.errors += t.errors;
        total.latencies.merge(t.latencies);
    }
    let s = total.latencies.summary();
    Ok(ResultLine::default()
        .field("conns", args.conns)
        .field("secs", format!("{wall:.2}"))
        .field("ok", total.ok)
        .field("errors", total.errors)
        .field("rps", format!("{:.1}", total.ok as f64 / wall))
        .field("p50_ms", ms(s.p50))
        .field("p99_ms", ms(s.p99))
        .field("max_ms", ms(s.max))
        .field("server_cores", server_cores)
        .field("client_cores", client_cores))
}

/// Registers instances `w`, `w + workers`, … until the phase is STOP.
async fn worker(
    client: reqwest::Client,
    base: String,
    w: u64,
    workers: u64,
    phase: Arc<AtomicU8>,
) -> Tally {
    let mut tally = Tally::default();
    for seq in 0.. {
        if phase.load(Ordering::SeqCst) == STOP {
            break;
        }
        let n = ids::interleave(w, workers, seq);
        let sent = Instant::now();
        let outcome = call(
            client
                .put(ids::instance_url(&base, n))
                .header("content-type", "application/json")
                .body(ids::register_body(n, None)),
        )
        .await;
        let took = sent.elapsed();
        // Only requests that complete inside the measured window count.
        if phase.load(Ordering::SeqCst) != MEASURE {
            continue;
        }
        match outcome {
            Ok((StatusCode::OK, _)) => {
                tally.ok += 1;
                tally.latencies.push(took);
            }
            other => {
                tally.errors += 1;
                if tally.errors == 1 {
                    eprintln!("register: worker {w}: first error, on instance {n}: {other:?}");
                }
                // A server that refuses everything should not be hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}
