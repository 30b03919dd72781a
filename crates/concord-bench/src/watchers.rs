//! W Server-Sent-Events watchers of one URL, each on its own HTTP/1.1 connection, and
//! the tally of what they received. Shared by `fanout` and `config-fanout`.
//!
//! A watcher counts as connected once the `200` and its headers arrive: the server has
//! then fixed the stream's start revision, so every later change reaches it. Each event
//! of the scenario's kind that the scenario can number (registration `r`, config
//! version `v`) is reported as a [`Delivery`], stamped with the arrival of its chunk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use concord_client::sse::SseParser;
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http_client;
use crate::stats::Samples;

/// How watchers are opened and how long to wait for late events; shared by
/// the scenarios that fan events out to many watchers.
#[derive(Debug, Clone, Args)]
pub struct WatchTiming {
    /// Watch requests being set up at once.
    #[arg(long, default_value_t = 64)]
    pub connect_parallel: usize,

    /// Seconds to wait for every watcher to connect.
    #[arg(long, default_value_t = 60.0)]
    pub connect_timeout: f64,

    /// Seconds to wait for missing events after the last change.
    #[arg(long, default_value_t = 10.0)]
    pub deliver_timeout: f64,
}

/// What to watch and which events count.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The full watch URL.
    pub url: String,
    /// Watchers, each on its own connection.
    pub count: u64,
    /// The SSE `event:` name that counts (`register`, `publish`).
    pub event: &'static str,
    /// The number an event's data carries, or `None` when it is not one of ours.
    pub number: fn(&str) -> Option<u64>,
    /// Watch requests being set up at once.
    pub connect_parallel: usize,
    /// How long every watcher may take to connect.
    pub connect_timeout: Duration,
}

/// One counted event seen by one watcher.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub watcher: u64,
    /// The scenario's number for the event (registration, version).
    pub number: u64,
    pub at: Instant,
}

/// Open watch streams; dropping them (or [`Watchers::close`]) ends them.
pub struct Watchers {
    tasks: JoinSet<()>,
    events: mpsc::UnboundedReceiver<Delivery>,
}

impl Watchers {
    /// Opens `spec.count` streams and waits until every one is connected; fails if one
    /// is refused or they take longer than `spec.connect_timeout`.
    pub async fn open(spec: &Spec) -> Result<Self> {
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        // One pool: HTTP/1.1 cannot share a connection between open streams, so each
        // watcher gets its own.
        let client = http_client(0)?;
        let gate = Arc::new(Semaphore::new(spec.connect_parallel));
        let mut tasks = JoinSet::new();
        let opening = Instant::now();
        for w in 0..spec.count {
            let watcher = Watcher {
                client: client.clone(),
                url: spec.url.clone(),
                id: w,
                event: spec.event,
                number: spec.number,
                connected: conn_tx.clone(),
                events: event_tx.clone(),
            };
            tasks.spawn(watcher.run(gate.clone()));
        }
        drop(conn_tx);

        let deadline = opening + spec.connect_timeout;
        let mut connected = 0;
        while connected < spec.count {
            match tokio::time::timeout_at(deadline, conn_rx.recv()).await {
                Ok(Some(Ok(()))) => connected += 1,
                Ok(Some(Err(e))) => bail!("a watcher could not connect: {e}"),
                Ok(None) | Err(_) => bail!(
                    "{connected} of {} watchers connected after {}s",
                    spec.count,
                    spec.connect_timeout.as_secs_f64()
                ),
            }
        }
        Ok(Watchers { tasks, events })
    }

    /// Tallies deliveries until `expected` distinct (watcher, number) pairs are in or
    /// `deadline` passes. `sent_at(n)` is when the change numbered `n` was sent; events
    /// with a number it does not know are not ours and are skipped.
    pub async fn collect(
        &mut self,
        expected: u64,
        deadline: Instant,
        sent_at: impl Fn(u64) -> Option<Instant>,
    ) -> Tally {
        let mut tally = Tally::default();
        while tally.received() < expected {
            let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                break;
            };
            if let Some(sent) = sent_at(d.number) {
                tally.record(d, sent);
            }
        }
        tally
    }

    /// Ends every stream.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// What the watchers received: each (watcher, number) pair once, with its latency.
///
/// Per watcher, numbers must arrive in increasing order (a watch delivers changes in
/// revision order); a repeat of a pair is a duplicate, a number below one that watcher
/// already had is out of order.
#[derive(Debug, Default)]
pub struct Tally {
    seen: HashSet<(u64, u64)>,
    /// The highest number each watcher has received.
    last: HashMap<u64, u64>,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub latencies: Samples,
}

impl Tally {
    /// Records one delivery of a change sent at `sent`.
    pub fn record(&mut self, d: Delivery, sent: Instant) {
        if !self.seen.insert((d.watcher, d.number)) {
            self.duplicates += 1;
            return;
        }
        let last = self.last.entry(d.watcher).or_insert(d.number);
        if d.number < *last {
            self.out_of_order += 1;
        } else {
            *last = d.number;
        }
        self.latencies.push(d.at.saturating_duration_since(sent));
    }

    /// Distinct (watcher, number) pairs received.
    pub fn received(&self) -> u64 {
        self.seen.len() as u64
    }
}

/// One watch stream.
struct Watcher {
    client: reqwest::Client,
    url: String,
    id: u64,
    event: &'static str,
    number: fn(&str) -> Option<u64>,
    connected: mpsc::UnboundedSender<Result<(), String>>,
    events: mpsc::UnboundedSender<Delivery>,
}

impl Watcher {
    /// Opens the stream (holding a `gate` permit until the headers are in), then reports
    /// every counted event until the stream ends or the task is aborted.
    async fn run(self, gate: Arc<Semaphore>) {
        let permit = gate.acquire_owned().await;
        let resp = match self.client.get(&self.url).send().await {
            Ok(r) if r.status() == StatusCode::OK => r,
            Ok(r) => {
                let _ = self.connected.send(Err(format!("HTTP {}", r.status())));
                return;
            }
            Err(e) => {
                let _ = self.connected.send(Err(e.to_string()));
                return;
            }
        };
        drop(permit);
        let _ = self.connected.send(Ok(()));
        let mut parser = SseParser::new();
        let mut body = resp.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            let at = Instant::now();
            for event in parser.push(&chunk) {
                if event.event != self.event {
                    continue;
                }
                if let Some(number) = (self.number)(&event.data) {
                    let _ = self.events.send(Delivery {
                        watcher: self.id,
                        number,
                        at,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, watcher: u64, number: u64, ms: u64) -> Delivery {
        Delivery {
            watcher,
            number,
            at: start + Duration::from_millis(ms),
        }
    }

    #[test]
    fn tally_counts_pairs_once_with_latency_from_the_send() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.record(at(t0, 0, 1, 5), t0);
        t.record(at(t0, 1, 1, 7), t0);
        t.record(at(t0, 0, 2, 508), t0 + Duration::from_millis(500));
        assert_eq!(t.received(), 3);
        assert_eq!((t.duplicates, t.out_of_order), (0, 0));
        let s = t.latencies.summary();
        assert_eq!(s.p50, Some(Duration::from_millis(7)));
        assert_eq!(s.max, Some(Duration::from_millis(8)));
    }

    #[test]
    fn tally_flags_duplicates_and_disorder_per_watcher() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.record(at(t0, 0, 3, 1), t0);
        t.record(at(t0, 0, 3, 2), t0); // the same pair again
        t.record(at(t0, 0, 2, 3), t0); // below what watcher 0 already had
        t.record(at(t0, 1, 2, 3), t0); // watcher 1 is on its own
        t.record(at(t0, 1, 4, 3), t0);
        assert_eq!(t.received(), 4);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1);
    }

    #[test]
    fn latency_never_negative() {
        // An event stamped before its send time (clock granularity) counts as zero.
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.record(at(t0, 0, 1, 0), t0 + Duration::from_millis(1));
        assert_eq!(t.latencies.summary().max, Some(Duration::ZERO));
    }
}
