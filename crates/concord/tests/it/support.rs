//! Starting and stopping real `concord` processes, and small HTTP helpers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concord_client::sse::{SseEvent, SseParser};
use futures::StreamExt;
use serde_json::Value;

pub mod cluster;

/// Generous: CI machines are small and busy.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running `concord` process on loopback ports chosen by the OS.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// The DNS address, when started with `--dns-addr`.
    pub dns: Option<SocketAddr>,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// `concord dev` on a fresh data dir.
    pub async fn dev() -> Server {
        Server::start_with(&[]).await
    }

    /// `concord dev` on a data dir the caller owns (for restores).
    pub async fn dev_on(data_dir: &Path) -> Server {
        let (child, base, dns) = spawn(data_dir, &[], None);
        let s = Server {
            child: Some(child),
            base,
            dns,
            data_dir: data_dir.to_owned(),
            extra: Vec::new(),
            _tmp: None,
        };
        s.wait_ready().await;
        s
    }

    /// `concord server --bootstrap` on a fresh data dir with extra flags.
    pub async fn start_with(extra: &[&str]) -> Server {
        Server::start_faulty(extra, None).await
    }

    /// Like `start_with`, with `CONCORD_FAULT_POINTS` set to `faults` (this start only).
    pub async fn start_faulty(extra: &[&str], faults: Option<&str>) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, base, dns) = spawn(&data_dir, &extra, faults);
        let s = Server {
            child: Some(child),
            base,
            dns,
            data_dir,
            extra,
            _tmp: Some(tmp),
        };
        s.wait_ready().await;
        s
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `kill -9`, then start again on the same data dir (new ports).
    pub async fn crash_and_restart(&mut self) {
        self.kill9();
        let (child, base, dns) = spawn(&self.data_dir, &self.extra, None);
        self.child = Some(child);
        self.base = base;
        self.dns = dns;
        self.wait_ready().await;
    }

    /// Waits (at most `within`) for the process to die on its own, e.g. at a fault
    /// point; returns whether it did.
    pub async fn wait_death(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && c.try_wait().expect("wait").is_some()
            {
                self.child = None;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        terminate_child(self.child.take().expect("running"), "concord")
    }

    /// Polls `/v1/ready` until it answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(self.url("/v1/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "server not ready in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SIGTERM to `child`, then waits (at most 30 s) for it to exit; `what` names it
/// in the panic when it does not.
pub fn terminate_child(mut c: Child, what: &str) -> std::process::ExitStatus {
    let pid = c.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = c.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("{what} did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_concord")
}

fn spawn(
    data_dir: &Path,
    extra: &[String],
    faults: Option<&str>,
) -> (Child, String, Option<SocketAddr>) {
    let mut cmd = Command::new(bin());
    if let Some(f) = faults {
        cmd.env("CONCORD_FAULT_POINTS", f);
    }
    if extra.is_empty() {
        cmd.args([
            "dev",
            "--addr",
            "127.0.0.1:0",
            "--peer-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir);
    } else {
        cmd.args([
            "server",
            "--node-id",
            "1",
            "--bootstrap",
            "--client-addr",
            "127.0.0.1:0",
            "--peer-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn concord");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.strip_prefix("concord listening: client=") {
                let client = rest.split_whitespace().next().unwrap_or("").to_owned();
                let dns = rest
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("dns="))
                    .and_then(|d| d.parse().ok());
                let _ = tx.send((client, dns));
            }
        }
    });
    let (base, dns) = rx
        .recv_timeout(START_DEADLINE)
        .expect("concord printed its listening line");
    (child, base, dns)
}

/// A JSON request; returns the status, the X-Concord-Index header and the JSON body.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Option<u64>, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    finish(resp).await
}

/// Sends raw bytes as the body.
pub async fn call_raw(
    method: reqwest::Method,
    url: &str,
    body: Vec<u8>,
) -> (u16, Option<u64>, Value) {
    let resp = reqwest::Client::new()
        .request(method, url)
        .body(body)
        .send()
        .await
        .expect("request");
    finish(resp).await
}

async fn finish(resp: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = resp.status().as_u16();
    let index = resp
        .headers()
        .get("x-concord-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, index, json)
}

/// GET, expecting JSON.
pub async fn get(url: &str) -> (u16, Option<u64>, Value) {
    call(reqwest::Method::GET, url, None).await
}

/// PUT a raw value under a key; asserts success and returns the revision.
pub async fn put_kv(s: &Server, key: &str, value: &str) -> u64 {
    let (st, _, b) = call_raw(
        reqwest::Method::PUT,
        &s.url(&format!("/v1/kv/{key}")),
        value.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(st, 200, "put {key}: {b}");
    b["revision"].as_u64().expect("revision")
}

/// Asserts the error shape: status, code, and a non-empty message.
pub fn assert_error(got: &(u16, Option<u64>, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.2);
    assert_eq!(got.2["error"]["code"], code, "body: {}", got.2);
    assert!(
        got.2["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message missing: {}",
        got.2
    );
}

/// Polls `check` until it returns Some, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An open SSE stream.
pub struct Sse {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    queue: std::collections::VecDeque<SseEvent>,
}

impl Sse {
    /// Opens `url`; asserts 200. `last_event_id` sets the resume header.
    pub async fn open(url: &str, last_event_id: Option<u64>) -> Sse {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("watch request");
        assert_eq!(resp.status(), 200, "watch status");
        Sse {
            stream: resp.bytes_stream().boxed(),
            parser: SseParser::new(),
            queue: Default::default(),
        }
    }

    /// The next event, or panics after `within`.
    pub async fn next(&mut self, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for an SSE event")
                .expect("stream ended")
                .expect("stream error");
            self.queue.extend(self.parser.push(&chunk));
        }
    }

    /// The next event that is not a progress event.
    pub async fn next_change(&mut self, within: Duration) -> SseEvent {
        loop {
            let e = self.next(within).await;
            if e.event != "progress" {
                return e;
            }
        }
    }
}
