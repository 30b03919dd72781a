//! Concurrent clients doing put, linearizable get and compare-and-swap on a few
//! keys, against random nodes, recording every operation for the checker.
//!
//! Recording rules, chosen so the history never claims more than was observed:
//! - Times come from one `Instant` shared by all clients: invocation just before
//!   the request is sent, completion once the whole answer is in.
//! - A write answered 200 is acknowledged. Any other answer, a timeout or a
//!   broken connection is an *unknown outcome* (no completion): the write may
//!   still be applied, later. Only a failure to connect at all (nothing was sent)
//!   drops the write from the history.
//! - A read answered 200 or 404 `not_found` is recorded; any other answer is
//!   dropped, since a failed read has no effect.
//! - CAS is `POST /v1/txn` comparing the value the client last read (or "absent")
//!   and putting a fresh value on success.
//!
//! Every value is unique (`c{client}-{n}`), so a read names exactly one write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use concord_check::{Call, Completion, Op, Ret};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every key the workload touches starts with this (the watches follow it).
pub const PREFIX: &str = "lin/";

/// How the clients behave.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: u64,
    /// Keys per epoch (see [`Workload::next_epoch`]).
    pub keys: u64,
    /// Per request, connection included. Short, so a client stuck on a
    /// partitioned or paused node moves on (its write becomes an unknown outcome).
    pub request_timeout: Duration,
    /// Pause between a client's operations, drawn uniformly from this range (ms):
    /// pacing that keeps histories small enough to check, not ordering.
    pub think_ms: (u64, u64),
    /// Hard cap per client, whatever the duration.
    pub max_ops_per_client: usize,
    /// Read with `consistency=stale` instead of linearizably: a deliberately
    /// wrong client, to show the suite catches the stale reads that follow.
    pub stale_reads: bool,
    pub seed: u64,
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Record {
    /// The operation as the checker sees it (times in ns since the workload started).
    pub op: Op,
    /// The node the request went to.
    pub node: u64,
    /// `X-Concord-Index` of an answered request: the store revision it saw.
    pub index: Option<u64>,
    /// For an acknowledged put or successful CAS: the revision it created.
    pub write_revision: Option<u64>,
    /// For an unknown outcome: why (status and error code, or transport
    /// failure), and the server's error message if there was one.
    pub unknown_reason: Option<(String, String)>,
}

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub client: u64,
    pub records: Vec<Record>,
    /// Writes that could not even connect (not recorded: nothing was sent).
    pub not_sent: u64,
    /// Reads without a usable answer (not recorded).
    pub dropped_reads: u64,
    /// Why writes ended as unknown outcomes: by reason, the count and the first
    /// error message seen.
    pub unknown_reasons: BTreeMap<String, (u64, String)>,
}

/// Running clients.
pub struct Workload {
    stop: watch::Sender<bool>,
    epoch: Arc<AtomicU64>,
    clients: Vec<JoinHandle<ClientLog>>,
    pub started: Instant,
}

impl Workload {
    /// Starts `config.clients` clients against `nodes` (id, base URL).
    pub fn start(nodes: Vec<(u64, String)>, config: Config) -> Workload {
        let (stop, stop_rx) = watch::channel(false);
        let epoch = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let nodes = Arc::new(nodes);
        let clients = (0..config.clients)
            .map(|c| {
                let client = Client {
                    id: c,
                    nodes: nodes.clone(),
                    config: config.clone(),
                    epoch: epoch.clone(),
                    started,
                    http: reqwest::Client::builder()
                        .no_proxy()
                        .timeout(config.request_timeout)
                        .connect_timeout(config.request_timeout)
                        .build()
                        .expect("http client"),
                    rng: StdRng::seed_from_u64(config.seed.wrapping_mul(1000).wrapping_add(c)),
                    last_read: HashMap::new(),
                    log: ClientLog {
                        client: c,
                        ..ClientLog::default()
                    },
                };
                tokio::spawn(client.run(stop_rx.clone()))
            })
            .collect();
        Workload {
            stop,
            epoch,
            clients,
            started,
        }
    }

    /// Moves the clients to a fresh set of keys. Each key's history stays short
    /// however long the run, which keeps the (per-key) check fast.
    pub fn next_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the clients (each finishes its current request) and returns their logs.
    pub async fn stop(self) -> Vec<ClientLog> {
        let _ = self.stop.send(true);
        let mut logs = Vec::new();
        for c in self.clients {
            logs.push(c.await.expect("client task"));
        }
        logs
    }
}

/// The key names of one epoch.
pub fn keys_of_epoch(epoch: u64, keys: u64) -> Vec<String> {
    (0..keys)
        .map(|k| format!("{PREFIX}e{epoch}/k{k}"))
        .collect()
}

struct Client {
    id: u64,
    nodes: Arc<Vec<(u64, String)>>,
    config: Config,
    epoch: Arc<AtomicU64>,
    started: Instant,
    http: reqwest::Client,
    rng: StdRng,
    /// The value this client last read per key: what its next CAS expects.
    last_read: HashMap<String, Option<String>>,
    log: ClientLog,
}

/// How a request ended, before it is turned into a record.
enum Answer {
    /// Status, `X-Concord-Index`, JSON body.
    Got(u16, Option<u64>, Value),
    /// Could not connect: nothing was sent.
    NotSent,
    /// Sent, no answer (timeout, reset, malformed body).
    Lost(String),
}

impl Client {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> ClientLog {
        let mut n = 0usize;
        while !*stop.borrow() && self.log.records.len() < self.config.max_ops_per_client {
            let &(node, ref base) = self.nodes.choose(&mut self.rng).expect("nodes");
            let base = base.clone();
            let epoch = self.epoch.load(Ordering::Relaxed);
            let keys = keys_of_epoch(epoch, self.config.keys);
            let key = keys.choose(&mut self.rng).expect("keys").clone();
            let roll = self.rng.random_range(0..100);
            n += 1;
            if roll < 45 {
                self.get(node, &base, key).await;
            } else if roll < 75 {
                self.put(node, &base, key, format!("c{}-{n}", self.id))
                    .await;
            } else {
                self.cas(node, &base, key, format!("c{}-{n}", self.id))
                    .await;
            }
            let think = self
                .rng
                .random_range(self.config.think_ms.0..=self.config.think_ms.1);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(think)) => {}
                _ = stop.changed() => {}
            }
        }
        self.log
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Answer::NotSent,
            Err(e) => return Answer::Lost(kind_of(&e)),
        };
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("x-concord-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        match resp.bytes().await {
            Ok(b) => Answer::Got(
                status,
                index,
                serde_json::from_slice(&b).unwrap_or(Value::Null),
            ),
            Err(e) => Answer::Lost(kind_of(&e)),
        }
    }

    /// Records an operation; `Err((reason, message))` for an unknown outcome.
    fn record(
        &mut self,
        node: u64,
        key: String,
        call: Call,
        invoke: u64,
        done: Result<Done, (String, String)>,
    ) {
        let (completion, index, write_revision, unknown_reason) = match done {
            Ok(d) => (
                Some(Completion {
                    time: self.now(),
                    ret: d.ret,
                }),
                d.index,
                d.write_revision,
                None,
            ),
            Err(why) => (None, None, None, Some(why)),
        };
        self.log.records.push(Record {
            op: Op {
                client: self.id,
                key,
                call,
                invoke,
                completion,
            },
            node,
            index,
            write_revision,
            unknown_reason,
        });
    }

    /// Counts an unknown outcome; returns the reason and message for its record.
    fn unknown(&mut self, why: String, message: &str) -> (String, String) {
        let e = self
            .log
            .unknown_reasons
            .entry(why.clone())
            .or_insert_with(|| (0, message.to_owned()));
        e.0 += 1;
        (why, message.to_owned())
    }

    async fn get(&mut self, node: u64, base: &str, key: String) {
        let query = if self.config.stale_reads {
            "?consistency=stale"
        } else {
            ""
        };
        let invoke = self.now();
        let answer = self
            .send(self.http.get(format!("{base}/v1/kv/{key}{query}")))
            .await;
        let seen = match answer {
            Answer::Got(200, index, body) => {
                body["value"].as_str().map(|v| (Some(v.to_owned()), index))
            }
            Answer::Got(404, index, body) if body["error"]["code"] == "not_found" => {
                Some((None, index))
            }
            _ => None,
        };
        let Some((value, index)) = seen else {
            self.log.dropped_reads += 1;
            return;
        };
        self.last_read.insert(key.clone(), value.clone());
        let done = Done {
            ret: Ret::Value(value),
            index,
            write_revision: None,
        };
        self.record(node, key, Call::Get, invoke, Ok(done));
    }

    async fn put(&mut self, node: u64, base: &str, key: String, value: String) {
        let invoke = self.now();
        let req = self
            .http
            .put(format!("{base}/v1/kv/{key}"))
            .body(value.clone());
        let answer = self.send(req).await;
        let done = match answer {
            Answer::NotSent => {
                self.log.not_sent += 1;
                return;
            }
            Answer::Got(200, index, body) => Ok(Done {
                ret: Ret::Ok,
                index,
                write_revision: body["revision"].as_u64(),
            }),
            Answer::Got(status, _, body) => {
                let msg = body["error"]["message"].as_str().unwrap_or_default();
                Err(self.unknown(format!("put {status} {}", body["error"]["code"]), msg))
            }
            Answer::Lost(why) => Err(self.unknown(format!("put {why}"), "")),
        };
        self.record(node, key, Call::Put { value }, invoke, done);
    }

    async fn cas(&mut self, node: u64, base: &str, key: String, new: String) {
        let expect = self.last_read.get(&key).cloned().flatten();
        let compare = match &expect {
            Some(v) => json!({"key": key, "target": "value", "op": "==", "value": v}),
            None => json!({"key": key, "target": "version", "op": "==", "value": 0}),
        };
        let body = json!({
            "compare": [compare],
            "success": [{"put": {"key": key, "value": new}}],
            "failure": [],
        });
        let invoke = self.now();
        let answer = self
            .send(self.http.post(format!("{base}/v1/txn")).json(&body))
            .await;
        let done = match answer {
            Answer::NotSent => {
                self.log.not_sent += 1;
                return;
            }
            Answer::Got(200, index, body) => match body["succeeded"].as_bool() {
                Some(swapped) => Ok(Done {
                    ret: Ret::Swapped(swapped),
                    index,
                    write_revision: swapped.then(|| body["revision"].as_u64()).flatten(),
                }),
                None => Err(self.unknown("cas 200 without `succeeded`".into(), &body.to_string())),
            },
            Answer::Got(status, _, body) => {
                let msg = body["error"]["message"].as_str().unwrap_or_default();
                Err(self.unknown(format!("cas {status} {}", body["error"]["code"]), msg))
            }
            Answer::Lost(why) => Err(self.unknown(format!("cas {why}"), "")),
        };
        self.record(node, key, Call::Cas { expect, new }, invoke, done);
    }
}

/// An answered operation's result and revisions.
struct Done {
    ret: Ret,
    index: Option<u64>,
    write_revision: Option<u64>,
}

/// A short label for a transport error, for the summary.
fn kind_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_body() || e.is_decode() {
        "broken body".into()
    } else {
        "connection lost".into()
    }
}

/// Revisions a client saw must never go backwards: each of its operations starts
/// after the previous one finished, so a linearizable store shows it a state at
/// least as new. Returns the violations.
pub fn revisions_going_backwards(logs: &[ClientLog]) -> Vec<String> {
    let mut problems = Vec::new();
    for log in logs {
        let mut prev: Option<&Record> = None;
        for r in log.records.iter().filter(|r| r.index.is_some()) {
            if let Some(p) = prev
                && r.index < p.index
            {
                problems.push(format!(
                    "client {}: revision went from {:?} (node {}, {}) to {:?} (node {}, {})",
                    log.client, p.index, p.node, p.op, r.index, r.node, r.op
                ));
            }
            prev = Some(r);
        }
    }
    problems
}
