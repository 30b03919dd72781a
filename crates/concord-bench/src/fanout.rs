//! Scenario `fanout`: how long a registration takes to reach W watchers of its service.
//!
//! W watchers each open `GET /v1/watch?service=S` on their own HTTP/1.1 connection
//! ([`crate::watchers`]) and count as connected once the `200` and its headers arrive
//! (the server has then fixed the stream's start revision, so every later change
//! reaches it). Then R persistent instances `S/i-<r>` are registered, one every
//! `interval`. For each (registration, watcher) pair the latency is from just before
//! the PUT is sent to the arrival of the chunk holding that registration's `register`
//! event. All W × R events must arrive.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::report::ResultLine;
use crate::stats::ms;
use crate::watchers::{Spec, WatchTiming, Watchers};
use crate::{Target, call, cores, http_client, ids};

/// Options of the `fanout` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,

    /// Watchers, each on its own connection.
    #[arg(long, default_value_t = 1_000)]
    watchers: u64,

    /// Registrations to deliver.
    #[arg(long, default_value_t = 20)]
    registrations: u64,

    /// Milliseconds between two registrations.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,

    /// The watched service.
    #[arg(long, default_value = "fan")]
    service: String,

    #[command(flatten)]
    watch: WatchTiming,
}

/// Runs the scenario and returns its result line.
pub async fn run(args: Args) -> Result<ResultLine> {
    let base = args.target.base().to_owned();
    let url = format!("{base}/v1/watch?service={}", args.service);
    let opening = Instant::now();
    let mut watchers = Watchers::open(&Spec {
        url,
        count: args.watchers,
        event: "register",
        number: registration_of,
        connect_parallel: args.watch.connect_parallel,
        connect_timeout: Duration::from_secs_f64(args.watch.connect_timeout),
    })
    .await?;
    eprintln!(
        "fanout: {} watchers connected in {:.1}s; registering {} instances of {}",
        args.watchers,
        opening.elapsed().as_secs_f64(),
        args.registrations,
        args.service
    );

    let server = args.target.server_cpu()?;
    let writer = http_client(1)?;
    let mut sent_at = Vec::new();
    let mut reg_errors = 0;
    let start = Instant::now();
    for r in 0..args.registrations {
        tokio::time::sleep_until(start + Duration::from_millis(args.interval_ms * r)).await;
        sent_at.push(Instant::now());
        let url = format!("{base}/v1/services/{}/instances/i-{r}", args.service);
        let body = ids::register_body(r, None);
        match call(
            writer
                .put(url)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
        {
            Ok((StatusCode::OK, _)) => {}
            other => {
                reg_errors += 1;
                eprintln!("fanout: registration {r} failed: {other:?}");
            }
        }
    }

    let expected = args.watchers * args.registrations;
    let deadline = Instant::now() + Duration::from_secs_f64(args.watch.deliver_timeout);
    let tally = watchers
        .collect(expected, deadline, |r| sent_at.get(r as usize).copied())
        .await;
    let server_cores = cores(server.as_ref())?;
    watchers.close().await;

    let received = tally.received();
    let s = tally.latencies.summary();
    Ok(ResultLine::default()
        .field("watchers", args.watchers)
        .field("registrations", args.registrations)
        .field("reg_errors", reg_errors)
        .field("expected", expected)
        .field("received", received)
        .field("duplicates", tally.duplicates)
        .field("p50_ms", ms(s.p50))
        .field("p99_ms", ms(s.p99))
        .field("max_ms", ms(s.max))
        .field("server_cores", server_cores))
}

/// The `r` of instance `i-<r>` in a `register` event's data, if that is what it names.
fn registration_of(data: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    v["instance"]["id"]
        .as_str()?
        .strip_prefix("i-")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_from_event_data() {
        let data = r#"{"revision":43,"type":"register","service":"fan","instance":{"id":"i-17","address":"10.0.0.17","port":8080}}"#;
        assert_eq!(registration_of(data), Some(17));
        assert_eq!(registration_of(r#"{"instance":{"id":"other-1"}}"#), None);
        assert_eq!(registration_of("not json"), None);
    }
}
