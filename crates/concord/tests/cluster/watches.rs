//! Watch streams kept open through the faults, and the final event history they
//! are judged against.
//!
//! Each watcher follows the workload's prefix from revision 0 on its home node.
//! When the stream breaks (node killed), stalls (node paused: no progress event
//! for [`STALL`]) or is refused, it reconnects with `Last-Event-ID`, home node
//! first, then the others in turn. The events it receives, concatenated across
//! reconnections, must be exactly the store's history: no gap, no duplicate, in
//! revision order. Only an explicit `compacted` answer from every node may start
//! a new segment (the server then says history is gone; nothing is hidden).
//!
//! Streams ask for `consistency=stale`: a watch only replays the local history,
//! so it needs no read barrier, and followers can serve it during partitions.

use std::time::{Duration, Instant};

use concord_client::sse::{SseEvent, SseParser};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A stream silent this long is given up on. Progress events arrive every
/// second on a healthy node, so silence means a paused or overloaded node.
const STALL: Duration = Duration::from_secs(5);
/// How long to wait for a watch request's response headers.
const CONNECT: Duration = Duration::from_secs(2);
/// Pause between reconnection attempts.
const BACKOFF: Duration = Duration::from_millis(100);

/// One KV change as a watch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub key: String,
    /// `None` for a delete.
    pub value: Option<String>,
}

/// Events received over one uninterrupted range of revisions.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    /// Events after this revision were asked for.
    pub after: u64,
    pub changes: Vec<Change>,
    /// The highest event id (revision) received, progress events included.
    pub reached: u64,
}

/// Everything one watcher saw.
#[derive(Debug, Clone)]
pub struct StreamLog {
    pub home: u64,
    pub segments: Vec<Segment>,
    /// Successful (re)connections, by node.
    pub connections: Vec<u64>,
    /// Why streams ended, for the summary.
    pub breaks: Vec<String>,
}

/// A watcher running in the background.
pub struct Watcher {
    reached: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<StreamLog>,
}

impl Watcher {
    /// Starts following `prefix` from revision 0 on `home`, falling back to the
    /// other `nodes` (id, base URL).
    pub fn start(home: u64, nodes: Vec<(u64, String)>, prefix: &str) -> Watcher {
        let (stop, stop_rx) = watch::channel(false);
        let (reached_tx, reached) = watch::channel(0);
        let task = tokio::spawn(follow(home, nodes, prefix.to_owned(), stop_rx, reached_tx));
        Watcher {
            reached,
            stop,
            task,
        }
    }

    /// Waits until the stream has reached `revision`; false on timeout.
    pub async fn wait_for(&mut self, revision: u64, within: Duration) -> bool {
        tokio::time::timeout(within, self.reached.wait_for(|&r| r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the watcher and returns what it saw.
    pub async fn stop(self) -> StreamLog {
        let _ = self.stop.send(true);
        self.task.await.expect("watcher task")
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT)
        .build()
        .expect("http client")
}

/// Parses a `put`/`delete` event.
fn change(e: &SseEvent) -> Result<Change, String> {
    let v: Value = serde_json::from_str(&e.data)
        .map_err(|err| format!("bad event data {:?}: {err}", e.data))?;
    let revision = v["revision"]
        .as_u64()
        .ok_or_else(|| format!("event without revision: {v}"))?;
    let key = v["key"]
        .as_str()
        .ok_or_else(|| format!("event without key: {v}"))?
        .to_owned();
    let value = match e.event.as_str() {
        "put" => Some(
            v["value"]
                .as_str()
                .ok_or_else(|| format!("put event without a text value: {v}"))?
                .to_owned(),
        ),
        _ => None,
    };
    Ok(Change {
        revision,
        key,
        value,
    })
}

/// How one connection ended.
enum End {
    Stop,
    Broken(String),
    Compacted(u64),
}

async fn follow(
    home: u64,
    nodes: Vec<(u64, String)>,
    prefix: String,
    mut stop: watch::Receiver<bool>,
    reached: watch::Sender<u64>,
) -> StreamLog {
    let http = http();
    let others: Vec<&(u64, String)> = nodes.iter().filter(|(id, _)| *id != home).collect();
    let home_base = nodes
        .iter()
        .find(|(id, _)| *id == home)
        .map(|(_, b)| b.clone())
        .expect("home node");
    let mut log = StreamLog {
        home,
        segments: vec![Segment::default()],
        connections: Vec::new(),
        breaks: Vec::new(),
    };
    let mut attempt = 0usize;
    let mut compacted_answers = 0usize;
    while !*stop.borrow() {
        let (node, base) = if attempt == 0 {
            (home, home_base.as_str())
        } else {
            let (id, b) = others[(attempt - 1) % others.len()];
            (*id, b.as_str())
        };
        let seg = log.segments.last_mut().expect("a segment");
        let resume = seg.reached.max(seg.after);
        match stream_once(&http, base, &prefix, resume, seg, &mut stop, &reached).await {
            Ok(End::Stop) => {
                log.connections.push(node);
                break;
            }
            Ok(End::Broken(why)) => {
                log.connections.push(node);
                log.breaks.push(format!("node {node}: {why}"));
                attempt = 0;
                compacted_answers = 0;
            }
            Ok(End::Compacted(oldest)) => {
                compacted_answers += 1;
                attempt += 1;
                if compacted_answers > nodes.len() {
                    // Every node says history up to `oldest` is gone: a declared
                    // break, so a new segment starts there.
                    log.breaks
                        .push(format!("compacted everywhere; resuming at {oldest}"));
                    log.segments.push(Segment {
                        after: oldest,
                        reached: oldest,
                        changes: Vec::new(),
                    });
                    compacted_answers = 0;
                }
            }
            Err(_) => attempt += 1,
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKOFF) => {}
            _ = stop.changed() => {}
        }
    }
    log
}

/// Opens one watch connection and appends what it delivers to `seg`. `Err` when
/// the connection could not be opened at all.
async fn stream_once(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    resume: u64,
    seg: &mut Segment,
    stop: &mut watch::Receiver<bool>,
    reached: &watch::Sender<u64>,
) -> Result<End, String> {
    let url = format!("{base}/v1/watch?prefix={prefix}&consistency=stale&from_revision=0");
    let mut req = http.get(url);
    if resume > 0 {
        req = req.header("Last-Event-ID", resume.to_string());
    }
    let resp = match tokio::time::timeout(CONNECT, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no response headers in time".into()),
    };
    match resp.status().as_u16() {
        200 => {}
        410 => {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let oldest = body["error"]["oldest_revision"].as_u64().unwrap_or(resume);
            return Ok(End::Compacted(oldest));
        }
        s => return Err(format!("status {s}")),
    }
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::new();
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(STALL, body.next()) => c,
            _ = stop.changed() => return Ok(End::Stop),
        };
        let chunk = match chunk {
            Err(_) => return Ok(End::Broken("stalled".into())),
            Ok(None) => return Ok(End::Broken("stream ended".into())),
            Ok(Some(Err(e))) => return Ok(End::Broken(format!("stream error: {e}"))),
            Ok(Some(Ok(c))) => c,
        };
        for e in parser.push(&chunk) {
            match e.event.as_str() {
                "put" | "delete" => seg.changes.push(change(&e)?),
                "progress" => {}
                "error" => return Ok(End::Broken(format!("error event: {}", e.data))),
                other => return Err(format!("unexpected event type {other:?}")),
            }
            if let Some(id) = e.id.as_deref().and_then(|i| i.parse::<u64>().ok())
                && id > seg.reached
            {
                seg.reached = id;
                reached.send_replace(id);
            }
        }
    }
}

/// A node's full retained history of `prefix`, up to `until`.
#[derive(Debug, Clone)]
pub struct NodeHistory {
    pub node: u64,
    /// Events after this revision are included (0 unless the node's history was compacted).
    pub after: u64,
    pub changes: Vec<Change>,
}

/// Reads node `node`'s history of `prefix` from the oldest revision it keeps
/// through `until` (which it must have applied).
pub async fn fetch_history(
    node: u64,
    base: &str,
    prefix: &str,
    until: u64,
    within: Duration,
) -> Result<NodeHistory, String> {
    let http = http();
    let deadline = Instant::now() + within;
    let mut after = 0;
    loop {
        let url =
            format!("{base}/v1/watch?prefix={prefix}&consistency=stale&from_revision={after}");
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("node {node}: {e}"))?;
        match resp.status().as_u16() {
            200 => {}
            410 => {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                after = body["error"]["oldest_revision"]
                    .as_u64()
                    .ok_or_else(|| format!("node {node}: 410 without oldest_revision: {body}"))?;
                continue;
            }
            s => return Err(format!("node {node}: watch answered {s}")),
        }
        let mut seg = Segment {
            after,
            ..Segment::default()
        };
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::new();
        while seg.reached < until {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, body.next())
                .await
                .map_err(|_| format!("node {node}: history did not reach {until} in time"))?
                .ok_or_else(|| format!("node {node}: stream ended before {until}"))?
                .map_err(|e| format!("node {node}: {e}"))?;
            for e in parser.push(&chunk) {
                match e.event.as_str() {
                    "put" | "delete" => {
                        let c = change(&e)?;
                        if c.revision <= until {
                            seg.changes.push(c);
                        }
                    }
                    "progress" => {}
                    other => return Err(format!("node {node}: {other} event: {}", e.data)),
                }
                if let Some(id) = e.id.as_deref().and_then(|i| i.parse::<u64>().ok()) {
                    seg.reached = seg.reached.max(id);
                }
            }
        }
        return Ok(NodeHistory {
            node,
            after,
            changes: seg.changes,
        });
    }
}
