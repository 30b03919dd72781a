//! Scenario `heartbeats`: N ephemeral instances, each renewed every `interval`.
//!
//! The load is open loop: instance `n` of `N` owns the slot `n / N * interval` of every
//! period, so the requests are spread evenly at `N / interval` per second whatever the
//! server's latency. In the first period each instance is registered in its slot
//! (`ttl_secs`), in every later one it is heart-beaten. The connections are bounded:
//! C workers, one HTTP/1.1 connection each, worker `w` owning instances `w`, `w + C`, …;
//! a worker that falls behind sends its overdue requests at once, and how late they went
//! out is reported, so a generator that could not keep the rate shows.
//!
//! The window is measured one full period after the last registration, so registration
//! and the catch-up after it are not in it. A 404 on a heartbeat means the instance had
//! expired: the run fails if there is any, or if fewer than N instances remain at the end.

use crate::phase::{MEASURE, STOP};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::report::ResultLine;
use crate::stats::{Samples, ms};
use crate::{Target, call, cores, http_client, ids, procfs};

/// Options of the `heartbeats` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,

    /// Ephemeral instances, spread over 100 services.
    #[arg(long, default_value_t = 50_000)]
    instances: u64,

    /// `ttl_secs` of each instance.
    #[arg(long, default_value_t = 15)]
    ttl: u32,

    /// Seconds between two heartbeats of one instance.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,

    /// Measured seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,

    /// Connections (one worker, and one request in flight, on each).
    #[arg(long, default_value_t = 64)]
    conns: u64,

    /// Give up when registering takes longer than this many seconds.
    #[arg(long, default_value_t = 120.0)]
    register_timeout: f64,
}

/// When each instance's requests are due: instance `n` of `instances` in its own slot of
/// every period, so the whole set is spread evenly over each period.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    instances: u64,
    interval: Duration,
}

impl Schedule {
    /// Offset from the start of the run of instance `n`'s request in `period` (0 = register).
    fn due(&self, period: u64, n: u64) -> Duration {
        // Integer nanoseconds, so the slots of consecutive periods are exactly one interval apart.
        let slot = u128::from(period) * u128::from(self.instances) + u128::from(n);
        let nanos = self.interval.as_nanos() * slot / u128::from(self.instances);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Requests per second the schedule asks for.
    fn rate(&self) -> f64 {
        self.instances as f64 / self.interval.as_secs_f64()
    }
}

/// Phases of the run: before the window (registering, settling), in it, over.
const RUN: u8 = 0;

/// What every worker updates as it goes.
struct Shared {
    phase: AtomicU8,
    /// Registrations answered, successfully or not.
    registered: AtomicU64,
}

/// What one worker saw; counts marked "window" are of requests completed in the window.
#[derive(Default)]
struct Tally {
    reg_errors: u64,
    /// Heartbeats completed in the window (any answer).
    sent: u64,
    /// 200s in the window.
    ok: u64,
    /// 404s over the whole run: instances that had expired.
    not_found: u64,
    /// Any other non-200 or transport error over the whole run.
    other_errors: u64,
    latency: Samples,
    /// How long after its slot each window heartbeat went out.
    lateness: Samples,
}

impl Tally {
    fn merge(&mut self, t: Tally) {
        self.reg_errors += t.reg_errors;
        self.sent += t.sent;
        self.ok += t.ok;
        self.not_found += t.not_found;
        self.other_errors += t.other_errors;
        self.latency.merge(t.latency);
        self.lateness.merge(t.lateness);
    }
}

/// Runs the scenario and returns its result line.
pub async fn run(args: Args) -> Result<ResultLine> {
    let schedule = Schedule {
        instances: args.instances,
        interval: Duration::from_secs_f64(args.interval),
    };
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(RUN),
        registered: AtomicU64::new(0),
    });
    let t0 = Instant::now() + Duration::from_millis(200);
    let mut workers = Vec::new();
    for w in 0..args.conns {
        let job = Worker {
            client: http_client(1)?,
            base: args.target.base().to_owned(),
            w,
            workers: args.conns,
            ttl: args.ttl,
            schedule,
            t0,
            shared: shared.clone(),
        };
        workers.push(tokio::spawn(job.run()));
    }
    eprintln!(
        "heartbeats: registering {} instances (ttl {}s) paced at {:.0}/s over {} connections",
        args.instances,
        args.ttl,
        schedule.rate(),
        args.conns
    );
    let deadline = t0 + Duration::from_secs_f64(args.register_timeout);
    while shared.registered.load(Ordering::SeqCst) < args.instances {
        if Instant::now() > deadline {
            shared.phase.store(STOP, Ordering::SeqCst);
            bail!(
                "only {} of {} registrations answered after {}s",
                shared.registered.load(Ordering::SeqCst),
                args.instances,
                args.register_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reg_secs = (Instant::now() - t0).as_secs_f64();
    eprintln!("heartbeats: registered in {reg_secs:.1}s; measuring after one more period");
    // One full period after the last registration, every instance is on its schedule.
    let settle = (t0 + schedule.interval * 2).max(Instant::now() + schedule.interval);
    tokio::time::sleep_until(settle).await;

    shared.phase.store(MEASURE, Ordering::SeqCst);
    let start = Instant::now();
    let server = args.target.server_cpu()?;
    let client = args.target.client_cpu()?;
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let server_cores = cores(server.as_ref())?;
    let client_cores = cores(Some(&client))?;
    let rss = match args.target.pid {
        Some(pid) => procfs::rss_kib(pid)?.to_string(),
        None => "nan".to_owned(),
    };
    shared.phase.store(STOP, Ordering::SeqCst);
    let wall = (Instant::now() - start).as_secs_f64();

    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await?);
    }
    let remaining = registered_instances(args.target.base()).await?;
    let (lat, late) = (total.latency.summary(), total.lateness.summary());
    Ok(ResultLine::default()
        .field("instances", args.instances)
        .field("conns", args.conns)
        .field("target_rate", format!("{:.0}", schedule.rate()))
        .field("reg_secs", format!("{reg_secs:.2}"))
        .field("reg_errors", total.reg_errors)
        .field("secs", format!("{wall:.2}"))
        .field("sent", total.sent)
        .field("ok", total.ok)
        .field("rate", format!("{:.1}", total.sent as f64 / wall))
        .field("errors", total.not_found + total.other_errors)
        .field("not_found", total.not_found)
        .field("p50_ms", ms(lat.p50))
        .field("p99_ms", ms(lat.p99))
        .field("late_p99_ms", ms(late.p99))
        .field("late_max_ms", ms(late.max))
        .field("server_cores", server_cores)
        .field("server_rss_kib", rss)
        .field("client_cores", client_cores)
        .field("remaining", remaining))
}

/// The sum of `instances` over `GET /v1/services`.
async fn registered_instances(base: &str) -> Result<u64> {
    let (status, body) = call(http_client(1)?.get(format!("{base}/v1/services"))).await?;
    if status != StatusCode::OK {
        bail!("GET /v1/services answered {status}: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let services = v["services"]
        .as_array()
        .context("GET /v1/services: no services array")?;
    Ok(services
        .iter()
        .filter_map(|s| s["instances"].as_u64())
        .sum())
}

/// One connection's share of the instances.
struct Worker {
    client: reqwest::Client,
    base: String,
    w: u64,
    workers: u64,
    ttl: u32,
    schedule: Schedule,
    t0: Instant,
    shared: Arc<Shared>,
}

impl Worker {
    async fn run(self) -> Tally {
        let mine: Vec<u64> = (0..)
            .map(|seq| ids::interleave(self.w, self.workers, seq))
            .take_while(|&n| n < self.schedule.instances)
            .collect();
        // Instances whose registration failed are not heart-beaten (that would only
        // repeat the registration error as 404s).
        let mut live = vec![true; mine.len()];
        let mut tally = Tally::default();
        for period in 0.. {
            for (i, &n) in mine.iter().enumerate() {
                let due = self.t0 + self.schedule.due(period, n);
                tokio::time::sleep_until(due).await;
                if self.shared.phase.load(Ordering::SeqCst) == STOP {
                    return tally;
                }
                if period == 0 {
                    live[i] = self.register(n, &mut tally).await;
                } else if live[i] {
                    self.heartbeat(n, due, &mut tally).await;
                }
            }
        }
        unreachable!("the periods are endless; the loop ends on STOP")
    }

    async fn register(&self, n: u64, tally: &mut Tally) -> bool {
        let outcome = call(
            self.client
                .put(ids::instance_url(&self.base, n))
                .header("content-type", "application/json")
                .body(ids::register_body(n, Some(self.ttl))),
        )
        .await;
        self.shared.registered.fetch_add(1, Ordering::SeqCst);
        match outcome {
            Ok((StatusCode::OK, _)) => true,
            other => {
                tally.reg_errors += 1;
                if tally.reg_errors == 1 {
                    eprintln!("heartbeats: registering instance {n} failed: {other:?}");
                }
                false
            }
        }
    }

    async fn heartbeat(&self, n: u64, due: Instant, tally: &mut Tally) {
        let sent = Instant::now();
        let outcome = call(self.client.put(ids::heartbeat_url(&self.base, n))).await;
        let took = sent.elapsed();
        let measuring = self.shared.phase.load(Ordering::SeqCst) == MEASURE;
        match &outcome {
            Ok((StatusCode::OK, _)) => {
                if measuring {
                    tally.ok += 1;
                }
            }
            Ok((StatusCode::NOT_FOUND, _)) => tally.not_found += 1,
            _ => tally.other_errors += 1,
        }
        if !matches!(outcome, Ok((StatusCode::OK, _))) && tally.not_found + tally.other_errors == 1
        {
            eprintln!("heartbeats: first heartbeat error, instance {n}: {outcome:?}");
        }
        if measuring {
            tally.sent += 1;
            tally.latency.push(took);
            tally.lateness.push(sent - due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_evenly_over_each_period() {
        let s = Schedule {
            instances: 4,
            interval: Duration::from_secs(2),
        };
        let first: Vec<_> = (0..4).map(|n| s.due(0, n)).collect();
        assert_eq!(
            first,
            [0, 500, 1000, 1500].map(Duration::from_millis).to_vec()
        );
        assert_eq!(s.due(3, 1), Duration::from_millis(6_500));
        assert_eq!(s.rate(), 2.0);
    }

    #[test]
    fn a_workers_slots_are_in_order_and_one_interval_apart() {
        let s = Schedule {
            instances: 50_000,
            interval: Duration::from_secs(5),
        };
        let mine: Vec<u64> = (0..)
            .map(|seq| ids::interleave(3, 64, seq))
            .take_while(|&n| n < 50_000)
            .collect();
        // The worker walks its instances in slot order, period after period.
        for pair in mine.windows(2) {
            assert!(s.due(0, pair[0]) < s.due(0, pair[1]));
        }
        assert!(s.due(0, *mine.last().unwrap()) < s.due(1, mine[0]));
        for &n in &mine {
            assert_eq!(s.due(2, n) - s.due(1, n), Duration::from_secs(5));
        }
    }
}
