//! Scenario `config-fanout`: how long a configuration publish takes to reach W listeners.
//!
//! Version 1 of one item (`bench/app/config.yaml` by default) is published first, so
//! the item exists and its format is fixed. Then W watchers each open
//! `GET /v1/watch?config=NS/GROUP/ID` on their own HTTP/1.1 connection
//! ([`crate::watchers`]) and count as connected once the `200` and its headers arrive.
//! Then R new versions are published, one every `interval`, each with a few hundred
//! bytes of YAML that differ from the previous version (identical content would not be
//! a new version). For each (publish, watcher) pair the latency is from just before the
//! PUT is sent to the arrival of the chunk holding the `publish` event of the version
//! that PUT created, matched on the event's `version`. All W × R events must arrive,
//! once each, in version order per watcher.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::report::ResultLine;
use crate::stats::{Samples, ms};
use crate::watchers::{Spec, WatchTiming, Watchers};
use crate::{Target, call, cores, http_client, procfs};

/// Options of the `config-fanout` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,

    /// Watchers (listeners), each on its own connection.
    #[arg(long, default_value_t = 1_000)]
    watchers: u64,

    /// New versions to publish and deliver (after the initial version).
    #[arg(long, default_value_t = 20)]
    publishes: u64,

    /// Milliseconds between two publishes.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,

    /// The config item, NAMESPACE/GROUP/ID.
    #[arg(long, default_value = "bench/app/config.yaml")]
    config: String,

    #[command(flatten)]
    watch: WatchTiming,
}

/// Runs the scenario and returns its result line.
pub async fn run(args: Args) -> Result<ResultLine> {
    let base = args.target.base().to_owned();
    let put_url = format!("{base}/v1/config/{}?format=yaml", args.config);
    let writer = http_client(1)?;

    let first = publish(&writer, &put_url, content(0))
        .await
        .context("publishing the initial version")?;
    eprintln!(
        "config-fanout: {} is at version {first}; opening {} watchers",
        args.config, args.watchers
    );

    let opening = Instant::now();
    let mut watchers = Watchers::open(&Spec {
        url: format!("{base}/v1/watch?config={}", args.config),
        count: args.watchers,
        event: "publish",
        number: version_of,
        connect_parallel: args.watch.connect_parallel,
        connect_timeout: Duration::from_secs_f64(args.watch.connect_timeout),
    })
    .await?;
    let connect_secs = opening.elapsed().as_secs_f64();
    eprintln!(
        "config-fanout: {} watchers connected in {connect_secs:.1}s; publishing {} versions",
        args.watchers, args.publishes
    );

    let server = args.target.server_cpu()?;
    let client = args.target.client_cpu()?;
    // The version each PUT created, and when it was sent. Events are matched after
    // the last publish: most arrive before their PUT's answer names the version.
    let mut sent_at = HashMap::new();
    let mut put_latency = Samples::default();
    let mut publish_errors = 0;
    let start = Instant::now();
    for r in 1..=args.publishes {
        tokio::time::sleep_until(start + Duration::from_millis(args.interval_ms * (r - 1))).await;
        let sent = Instant::now();
        match publish(&writer, &put_url, content(r)).await {
            Ok(version) => {
                put_latency.push(sent.elapsed());
                sent_at.insert(version, sent);
            }
            Err(e) => {
                publish_errors += 1;
                eprintln!("config-fanout: publish {r} failed: {e:#}");
            }
        }
    }

    let expected = args.watchers * args.publishes;
    let deadline = Instant::now() + Duration::from_secs_f64(args.watch.deliver_timeout);
    let tally = watchers
        .collect(expected, deadline, |v| sent_at.get(&v).copied())
        .await;
    let server_cores = cores(server.as_ref())?;
    let client_cores = cores(Some(&client))?;
    let rss = match args.target.pid {
        Some(pid) => procfs::rss_kib(pid)?.to_string(),
        None => "nan".to_owned(),
    };
    watchers.close().await;

    let received = tally.received();
    let s = tally.latencies.summary();
    let put = put_latency.summary();
    Ok(ResultLine::default()
        .field("watchers", args.watchers)
        .field("publishes", args.publishes)
        .field("publish_errors", publish_errors)
        .field("first_version", first)
        .field("content_bytes", content(1).len())
        .field("connect_secs", format!("{connect_secs:.2}"))
        .field("expected", expected)
        .field("received", received)
        .field("duplicates", tally.duplicates)
        .field("out_of_order", tally.out_of_order)
        .field("p50_ms", ms(s.p50))
        .field("p99_ms", ms(s.p99))
        .field("max_ms", ms(s.max))
        .field("put_p50_ms", ms(put.p50))
        .field("put_max_ms", ms(put.max))
        .field("server_cores", server_cores)
        .field("server_rss_kib", rss)
        .field("client_cores", client_cores))
}

/// PUTs `body` as the item's next version; the version the server answers with.
async fn publish(client: &reqwest::Client, url: &str, body: String) -> Result<u64> {
    match call(client.put(url).body(body)).await? {
        (StatusCode::OK, text) => version_in_answer(&text)
            .with_context(|| format!("no version in the publish answer {text:?}")),
        (status, text) => bail!("HTTP {status}: {text}"),
    }
}

/// `version` of a publish answer, `{"version":N,"revision":R,"sha256":"…"}`.
fn version_in_answer(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["version"].as_u64()
}

/// The version a `publish` event's data carries, if it is a publish.
fn version_of(data: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    if v["type"] != "publish" {
        return None;
    }
    v["version"].as_u64()
}

/// The YAML of publish `seq` (0 is the initial version): a few hundred bytes, a plain
/// mapping of scalars and lists, different for every `seq` so each is a new version.
fn content(seq: u64) -> String {
    let mut y = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(y, "# concord config-fanout benchmark, publish {seq}");
    let _ = writeln!(y, "app:\n  name: bench-app\n  publish: {seq}");
    let _ = writeln!(
        y,
        "server:\n  port: 8080\n  threads: {}\n  request_timeout_ms: {}",
        4 + seq % 8,
        1_000 + 10 * seq
    );
    let _ = writeln!(
        y,
        "database:\n  url: \"postgres://db.internal:5432/orders\"\n  pool_min: 2\n  pool_max: {}",
        16 + seq % 16
    );
    let _ = writeln!(
        y,
        "features:\n  checkout_v2: {}\n  fraud_check: true\n  rollout_percent: {}",
        seq.is_multiple_of(2),
        (seq * 5) % 101
    );
    let _ = writeln!(
        y,
        "allowed_origins:\n  - \"https://shop.example.com\"\n  - \"https://admin.example.com\""
    );
    y
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn version_from_publish_event_data() {
        let data = r#"{"revision":7,"type":"publish","namespace":"bench","group":"app","id":"config.yaml","version":3,"format":"yaml","content":"a: 1\n","sha256":"x","published_at_ms":1796000000000}"#;
        assert_eq!(version_of(data), Some(3));
        let delete = r#"{"revision":8,"type":"delete","version":3}"#;
        assert_eq!(version_of(delete), None);
        assert_eq!(version_of(r#"{"type":"publish"}"#), None);
        assert_eq!(version_of("not json"), None);
    }

    #[test]
    fn version_from_publish_answer() {
        assert_eq!(
            version_in_answer(r#"{"version":1,"revision":1,"sha256":"ab"}"#),
            Some(1)
        );
        assert_eq!(version_in_answer(r#"{"error":{"code":"x"}}"#), None);
        assert_eq!(version_in_answer(""), None);
    }

    #[test]
    fn contents_differ_and_stay_a_few_hundred_bytes() {
        let all: Vec<String> = (0..=200).map(content).collect();
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        for c in &all {
            assert!((200..1_000).contains(&c.len()), "{} bytes", c.len());
        }
    }

    #[test]
    fn content_is_plain_block_yaml() {
        // The server checks it as YAML; here, the shape that makes that safe: no tabs,
        // two-space indents, and every line a comment, a `key:` or `key: value`, or a
        // `- item` under a key.
        for c in (0..=40).map(content) {
            assert!(c.ends_with('\n'));
            for line in c.lines() {
                assert!(!line.contains('\t'), "{line:?}");
                let body = line.trim_start_matches(' ');
                let indent = line.len() - body.len();
                assert!(indent == 0 || indent == 2, "{line:?}");
                assert!(
                    body.starts_with("# ") || body.starts_with("- \"") || body.contains(':'),
                    "{line:?}"
                );
            }
        }
    }
}
