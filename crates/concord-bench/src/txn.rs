//! Scenario `txn`: two-step sagas per second through the transaction coordinator.
//!
//! An in-process trivial participant ([`participant`]) answers `200 {}` to every call.
//! For each concurrency C, C clients, each with its own connection, submit
//! `POST /v1/transactions` back to back (closed loop): a saga of two steps, each with an
//! action and a compensation on the participant, `"wait": true`, so the answer is the
//! final view. Client k's i-th submission goes to server `(k + i) mod S` of the
//! `--server` URLs. After the warm-up, answers that arrive inside the measured window
//! count: a 200 whose `status` is `succeeded` is a transaction; anything else (another
//! status, a 202 because the wait ran out, another HTTP status, a transport error) is an
//! error. Latency is submit to final answer.
//!
//! The CPU of the concord processes given with `--pid` (all nodes of a cluster) is
//! summed over the window: transactions/s ÷ those cores is transactions per core-second.
//! The participant and the clients run in this process and are not counted there.
//! Participant calls are counted over the whole run of one concurrency (warm-up and
//! drain included, once every client has its answer), against the sagas that succeeded
//! in that time: a succeeded two-step saga makes exactly two action calls unless one
//! was retried. The Raft log entries applied during the window (from the first server's
//! `GET /v1/status`) give the entries per transaction.

mod participant;

use crate::phase::{MEASURE, STOP, WARMUP};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use self::participant::{Calls, Participant};
use crate::procfs::CpuWindow;
use crate::report::ResultLine;
use crate::stats::{ms, percentile};
use crate::{call, http_client};

/// Options of the `txn` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Client URL of a concord node; repeat it to spread submissions round-robin.
    #[arg(long = "server", required = true)]
    servers: Vec<String>,

    /// Process id of a concord server whose CPU counts; repeat it for every node.
    #[arg(long = "pid")]
    pids: Vec<u32>,

    /// The kernel's clock ticks per second (`getconf CLK_TCK`), for /proc CPU times.
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,

    /// Concurrent clients, one run per value, in order (e.g. 1,16,64).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<u64>,

    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Seconds of warm-up before each measured window (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// `timeout_secs` of every transaction; a client gives up 10 s after it.
    #[arg(long, default_value_t = 30)]
    txn_timeout: u64,

    /// Most transactions one client submits in one run, a bound besides the duration.
    #[arg(long, default_value_t = 1_000_000)]
    max_per_client: u64,
}

/// What the clients share in one run.
struct Plan {
    servers: Vec<String>,
    /// The participant's action and compensation URLs of steps `a` and `b`.
    urls: [String; 4],
    txn_timeout: u64,
    max_per_client: u64,
    phase: AtomicU8,
}

/// What one client saw: inside the measured window, and over the whole run.
#[derive(Default)]
struct Tally {
    ok: u64,
    transport: u64,
    http: u64,
    not_succeeded: u64,
    latencies: Vec<Duration>,
    /// Sagas answered `succeeded` at any time in the run, for the participant-call check.
    ok_all: u64,
}

impl Tally {
    fn errors(&self) -> u64 {
        self.transport + self.http + self.not_succeeded
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.transport += other.transport;
        self.http += other.http;
        self.not_succeeded += other.not_succeeded;
        self.ok_all += other.ok_all;
        self.latencies.extend(other.latencies);
    }
}

/// Runs one measured run per concurrency and returns their result lines.
pub async fn run(args: Args) -> Result<Vec<ResultLine>> {
    ensure!(
        args.concurrency.iter().all(|&c| c > 0),
        "--concurrency values must be > 0"
    );
    ensure!(
        args.duration > 0.0 && args.warmup >= 0.0,
        "--duration must be > 0 and --warmup >= 0"
    );
    let participant = Participant::start().await?;
    eprintln!(
        "txn: participant at {}, servers {:?}, concord pids {:?}",
        participant.url(""),
        args.servers,
        args.pids
    );
    let mut lines = Vec::new();
    for &c in &args.concurrency {
        let line = run_one(&args, &participant, c).await?;
        eprintln!("{line}");
        lines.push(line);
    }
    Ok(lines)
}

/// The CPU of every concord process and of this one over the measured window, and the
/// Raft log index there.
struct Window {
    servers: Vec<CpuWindow>,
    client: CpuWindow,
    applied: Option<u64>,
    at: Instant,
}

impl Window {
    async fn start(args: &Args, status: &reqwest::Client) -> Result<Self> {
        let servers = args
            .pids
            .iter()
            .map(|&pid| CpuWindow::start(pid, args.clk_tck))
            .collect::<Result<_>>()?;
        Ok(Window {
            servers,
            client: CpuWindow::start(std::process::id(), args.clk_tck)?,
            applied: applied_index(status, &args.servers[0]).await,
            at: Instant::now(),
        })
    }
}

/// One concurrency: warm-up, measured window, drain; its result line.
async fn run_one(args: &Args, participant: &Participant, c: u64) -> Result<ResultLine> {
    let plan = Arc::new(Plan {
        servers: args
            .servers
            .iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect(),
        urls: ["/a/action", "/a/compensate", "/b/action", "/b/compensate"]
            .map(|p| participant.url(p)),
        txn_timeout: args.txn_timeout,
        max_per_client: args.max_per_client,
        phase: AtomicU8::new(WARMUP),
    });
    let status = http_client(1)?;
    let calls_before = participant.calls();
    let mut clients = Vec::new();
    for k in 0..c {
        let client = http_client(1)?;
        clients.push(tokio::spawn(client_loop(client, plan.clone(), k)));
    }
    eprintln!(
        "txn: {c} clients, {}s warm-up, {}s measured",
        args.warmup, args.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    plan.phase.store(MEASURE, Ordering::SeqCst);
    let window = Window::start(args, &status).await?;
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let node_cores = window
        .servers
        .iter()
        .map(CpuWindow::cores)
        .collect::<Result<Vec<_>>>()?;
    let client_cores = window.client.cores()?;
    let applied = applied_index(&status, &plan.servers[0]).await;
    plan.phase.store(STOP, Ordering::SeqCst);
    let wall = window.at.elapsed().as_secs_f64();

    let mut total = Tally::default();
    for client in clients {
        total.merge(client.await?);
    }
    let calls = participant.calls().since(calls_before);
    let entries = applied
        .zip(window.applied)
        .map(|(b, a)| b.saturating_sub(a));
    Ok(result_line(
        c,
        wall,
        total,
        &node_cores,
        client_cores,
        calls,
        entries,
    ))
}

fn result_line(
    c: u64,
    wall: f64,
    mut total: Tally,
    node_cores: &[f64],
    client_cores: f64,
    calls: Calls,
    entries: Option<u64>,
) -> ResultLine {
    total.latencies.sort_unstable();
    let lat = |q| ms(percentile(&total.latencies, q));
    let tps = total.ok as f64 / wall;
    let server_cores: f64 = node_cores.iter().sum();
    let nodes: Vec<String> = node_cores.iter().map(|c| format!("{c:.3}")).collect();
    let ratio = |num: f64, den: f64| {
        if den > 0.0 {
            format!("{:.2}", num / den)
        } else {
            "nan".to_owned()
        }
    };
    ResultLine::default()
        .field("concurrency", c)
        .field("secs", format!("{wall:.2}"))
        .field("ok", total.ok)
        .field("errors", total.errors())
        .field("transport_errors", total.transport)
        .field("http_errors", total.http)
        .field("not_succeeded", total.not_succeeded)
        .field("tps", format!("{tps:.1}"))
        .field("p50_ms", lat(50.0))
        .field("p90_ms", lat(90.0))
        .field("p99_ms", lat(99.0))
        .field("max_ms", ms(total.latencies.last().copied()))
        .field("server_cores", format!("{server_cores:.3}"))
        .field(
            "node_cores",
            if nodes.is_empty() {
                "nan".to_owned()
            } else {
                nodes.join("/")
            },
        )
        .field("tx_per_core_sec", ratio(tps, server_cores))
        .field("client_cores", format!("{client_cores:.3}"))
        .field("sagas_all", total.ok_all)
        .field("calls", calls.total())
        .field("actions", calls.actions)
        .field("compensates", calls.compensates)
        .field("other_calls", calls.other)
        .field(
            "calls_per_saga",
            ratio(calls.total() as f64, total.ok_all as f64),
        )
        .field(
            "log_entries",
            entries.map_or("nan".to_owned(), |e| e.to_string()),
        )
        .field(
            "entries_per_txn",
            entries.map_or("nan".to_owned(), |e| ratio(e as f64, total.ok as f64)),
        )
}

/// The body of client `k`'s `seq`-th saga.
fn saga_body(plan: &Plan, k: u64, seq: u64) -> String {
    let [a_do, a_undo, b_do, b_undo] = &plan.urls;
    let step = |name: &str, action: &str, compensate: &str| {
        json!({
            "name": name,
            "action": {"url": action, "body": {"client": k, "seq": seq, "step": name}},
            "compensate": {"url": compensate, "body": {"client": k, "seq": seq, "step": name}},
        })
    };
    json!({
        "mode": "saga",
        "wait": true,
        "timeout_secs": plan.txn_timeout,
        "steps": [step("a", a_do, a_undo), step("b", b_do, b_undo)],
    })
    .to_string()
}

/// Submits sagas back to back until the phase is STOP (or `max_per_client` were sent).
async fn client_loop(client: reqwest::Client, plan: Arc<Plan>, k: u64) -> Tally {
    let mut tally = Tally::default();
    let wait_limit = Duration::from_secs(plan.txn_timeout + 10);
    let n = plan.servers.len() as u64;
    for seq in 0..plan.max_per_client {
        if plan.phase.load(Ordering::SeqCst) == STOP {
            break;
        }
        let server = &plan.servers[((k + seq) % n) as usize];
        let sent = Instant::now();
        let outcome = call(
            client
                .post(format!("{server}/v1/transactions"))
                .timeout(wait_limit)
                .header("content-type", "application/json")
                .body(saga_body(&plan, k, seq)),
        )
        .await;
        let took = sent.elapsed();
        let succeeded = matches!(&outcome, Ok((StatusCode::OK, body)) if final_status(body).as_deref() == Some("succeeded"));
        tally.ok_all += u64::from(succeeded);
        // Only answers that arrive inside the measured window count.
        let measured = plan.phase.load(Ordering::SeqCst) == MEASURE;
        if succeeded {
            if measured {
                tally.ok += 1;
                tally.latencies.push(took);
            }
            continue;
        }
        if measured {
            match &outcome {
                Err(_) => tally.transport += 1,
                Ok((StatusCode::OK | StatusCode::ACCEPTED, _)) => tally.not_succeeded += 1,
                Ok(_) => tally.http += 1,
            }
        }
        if tally.errors() <= 1 {
            eprintln!("txn: client {k}: error on saga {seq} via {server}: {outcome:?}");
        }
        // A server that refuses everything should not be hammered in a tight loop.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tally
}

/// The `status` field of a transaction view (or of a 202's `{id, status}`).
fn final_status(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(v.get("status")?.as_str()?.to_owned())
}

/// `applied_index` from `GET {server}/v1/status`, or `None` when it cannot be read.
async fn applied_index(client: &reqwest::Client, server: &str) -> Option<u64> {
    let (status, body) = call(
        client
            .get(format!("{server}/v1/status"))
            .timeout(Duration::from_secs(5)),
    )
    .await
    .ok()?;
    if status != StatusCode::OK {
        return None;
    }
    serde_json::from_str::<Value>(&body)
        .ok()?
        .get("applied_index")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            servers: vec!["http://s".to_owned()],
            urls: ["u1", "u2", "u3", "u4"].map(str::to_owned),
            txn_timeout: 30,
            max_per_client: 1,
            phase: AtomicU8::new(WARMUP),
        }
    }

    #[test]
    fn saga_has_two_steps_with_action_and_compensation() {
        let v: Value = serde_json::from_str(&saga_body(&plan(), 3, 7)).unwrap();
        assert_eq!(v["mode"], "saga");
        assert_eq!(v["wait"], true);
        assert_eq!(v["timeout_secs"], 30);
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0]["name"], "a");
        assert_eq!(steps[0]["action"]["url"], "u1");
        assert_eq!(steps[0]["compensate"]["url"], "u2");
        assert_eq!(steps[1]["action"]["url"], "u3");
        assert_eq!(steps[1]["compensate"]["url"], "u4");
        assert_eq!(steps[1]["action"]["body"]["seq"], 7);
    }

    #[test]
    fn status_of_final_view_and_of_accepted() {
        assert_eq!(
            final_status(r#"{"id":"t","status":"succeeded","steps":[]}"#).as_deref(),
            Some("succeeded")
        );
        assert_eq!(
            final_status(r#"{"id":"t","status":"running"}"#).as_deref(),
            Some("running")
        );
        assert_eq!(final_status("not json"), None);
    }

    #[test]
    fn per_core_and_per_saga_ratios() {
        let tally = Tally {
            ok: 100,
            ok_all: 150,
            latencies: vec![Duration::from_millis(2); 100],
            ..Tally::default()
        };
        let calls = Calls {
            actions: 300,
            compensates: 0,
            other: 0,
        };
        let line =
            result_line(4, 10.0, tally, &[0.5, 0.25, 0.25], 0.1, calls, Some(300)).to_string();
        for want in [
            "tps=10.0",
            "server_cores=1.000",
            "node_cores=0.500/0.250/0.250",
            "tx_per_core_sec=10.00",
            "calls_per_saga=2.00",
            "entries_per_txn=3.00",
            "p90_ms=2.00",
            "errors=0",
        ] {
            assert!(line.contains(want), "{want} not in {line}");
        }
    }
}
