use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic_health::ServingStatus;

use super::*;
use crate::checks::test_servers::{grpc_health_server, http_server, silent_server};
use crate::checks::{CheckHealth, ExpectStatus};

type Results = mpsc::Receiver<(String, ProbeResult, Duration)>;

const INTERVAL: Duration = Duration::from_millis(100);
/// How long a condition may take to show up on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

fn runner(max_concurrent: usize) -> (ProbeRunner, Results) {
    let (tx, rx) = mpsc::channel(64);
    let config = RunnerConfig {
        max_concurrent_probes: NonZeroUsize::new(max_concurrent).unwrap(),
    };
    (ProbeRunner::new(config, tx).expect("runner"), rx)
}

fn every(target: ProbeTarget, interval: Duration, timeout: Duration) -> Scheduled {
    Scheduled {
        target,
        interval,
        timeout,
    }
}

fn tcp(addr: impl ToString) -> ProbeTarget {
    ProbeTarget::Tcp {
        address: addr.to_string(),
    }
}

/// Receives until a result for `key` satisfies `ok`, or fails after [`PATIENCE`].
async fn wait_for(
    rx: &mut Results,
    key: &str,
    ok: impl Fn(&ProbeResult) -> bool,
) -> (ProbeResult, Duration) {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((k, r, latency))) if k == key => {
                if ok(&r) {
                    return (r, latency);
                }
                last = Some(r);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("results channel closed while waiting for {key}"),
            Err(_) => panic!("no matching result for {key} in {PATIENCE:?}; last: {last:?}"),
        }
    }
}

/// Every result received until `until`.
async fn collect_until(rx: &mut Results, until: Instant) -> Vec<(String, ProbeResult, Duration)> {
    let mut seen = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout_at(until, rx.recv()).await {
        seen.push(item);
    }
    seen
}

fn is(status: CheckHealth, text: &'static str) -> impl Fn(&ProbeResult) -> bool {
    move |r| r.status == status && r.output.contains(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_follows_the_server() {
    let status = Arc::new(AtomicU16::new(200));
    let server = http_server(status.clone()).await;
    let (runner, mut rx) = runner(64);
    let target = ProbeTarget::Http {
        url: format!("http://{}/health", server.addr),
        method: "GET".into(),
        expect: ExpectStatus::default(),
        headers: Vec::new(),
    };
    runner.set(HashMap::from([(
        "web".to_string(),
        every(target, INTERVAL, PATIENCE),
    )]));

    wait_for(&mut rx, "web", is(CheckHealth::Passing, "200 OK")).await;
    status.store(500, Ordering::SeqCst);
    wait_for(&mut rx, "web", is(CheckHealth::Critical, "500")).await;
    server.stop().await;
    wait_for(&mut rx, "web", |r| {
        r.status == CheckHealth::Critical && r.output.to_lowercase().contains("connect")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_follows_the_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (runner, mut rx) = runner(64);
    runner.set(HashMap::from([(
        "db".to_string(),
        every(tcp(addr), INTERVAL, PATIENCE),
    )]));

    wait_for(&mut rx, "db", is(CheckHealth::Passing, "Success")).await;
    drop(listener);
    wait_for(&mut rx, "db", |r| r.status == CheckHealth::Critical).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_check_follows_the_health_reporter() {
    let (server, reporter) = grpc_health_server().await;
    reporter
        .set_service_status("demo", ServingStatus::Serving)
        .await;
    let (runner, mut rx) = runner(64);
    let target = ProbeTarget::Grpc {
        address: server.addr.to_string(),
        service: "demo".into(),
    };
    runner.set(HashMap::from([(
        "rpc".to_string(),
        every(target, INTERVAL, PATIENCE),
    )]));

    wait_for(&mut rx, "rpc", is(CheckHealth::Passing, "SERVING")).await;
    reporter
        .set_service_status("demo", ServingStatus::NotServing)
        .await;
    wait_for(&mut rx, "rpc", is(CheckHealth::Critical, "NOT_SERVING")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_probe_blocks_neither_other_checks_nor_set() {
    let silent = silent_server().await;
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (runner, mut rx) = runner(64);
    let slow_timeout = Duration::from_secs(3);
    let slow = ProbeTarget::Http {
        url: format!("http://{}/", silent.addr),
        method: "GET".into(),
        expect: ExpectStatus::default(),
        headers: Vec::new(),
    };
    let started = Instant::now();
    runner.set(HashMap::from([
        ("slow".to_string(), every(slow, INTERVAL, slow_timeout)),
        (
            "fast".to_string(),
            every(tcp(open.local_addr().unwrap()), INTERVAL, PATIENCE),
        ),
    ]));
    // The fast check reports several times while the slow one is still waiting.
    let mut fast = 0;
    let deadline = started + PATIENCE;
    while fast < 3 {
        let (key, result, _) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("fast results keep coming")
            .expect("channel open");
        assert_eq!(key, "fast", "the slow probe answered first: {result:?}");
        fast += 1;
    }
    // `set` returns at once even with the slow probe in flight.
    let before_set = Instant::now();
    runner.set(HashMap::from([(
        "fast".to_string(),
        every(tcp(open.local_addr().unwrap()), INTERVAL, PATIENCE),
    )]));
    assert!(
        before_set.elapsed() < Duration::from_millis(500),
        "set waited"
    );
    assert_eq!(runner.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_is_honoured_and_reported_as_latency() {
    let silent = silent_server().await;
    let (runner, mut rx) = runner(64);
    let timeout = Duration::from_millis(300);
    let target = ProbeTarget::Grpc {
        address: silent.addr.to_string(),
        service: String::new(),
    };
    runner.set(HashMap::from([(
        "hung".to_string(),
        every(target, INTERVAL, timeout),
    )]));
    let (_, latency) = wait_for(&mut rx, "hung", |r| r.status == CheckHealth::Critical).await;
    assert!(
        latency >= timeout && latency < timeout + Duration::from_secs(1),
        "{latency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_probes_are_bounded() {
    let silent = silent_server().await;
    let (runner, mut rx) = runner(1);
    let timeout = Duration::from_millis(300);
    // HTTP requests to the silent server hang until the timeout.
    let hung_http = ProbeTarget::Http {
        url: format!("http://{}/", silent.addr),
        method: "GET".into(),
        expect: ExpectStatus::default(),
        headers: Vec::new(),
    };
    let started = Instant::now();
    runner.set(
        (0..4)
            .map(|i| {
                (
                    format!("hung-{i}"),
                    every(hung_http.clone(), INTERVAL, timeout),
                )
            })
            .collect(),
    );
    let window = Duration::from_millis(1500);
    let seen = collect_until(&mut rx, started + window).await;
    // One permit: probes run one after another, each taking at least the timeout.
    let most = (window.as_millis() / timeout.as_millis()) as usize;
    assert!(!seen.is_empty(), "no probe finished");
    assert!(
        seen.len() <= most,
        "{} results in {window:?} with one permit",
        seen.len()
    );
    assert!(
        seen.iter()
            .all(|(_, r, _)| r.status == CheckHealth::Critical)
    );
}

#[tokio::test]
async fn set_keeps_unchanged_restarts_changed_and_stops_removed() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = open.local_addr().unwrap();
    let (runner, mut rx) = runner(64);
    let spec = every(tcp(addr), INTERVAL, PATIENCE);
    runner.set(HashMap::from([
        ("keep".to_string(), spec.clone()),
        ("change".to_string(), spec.clone()),
        ("remove".to_string(), spec.clone()),
    ]));
    let keep = runner.task_id("keep").unwrap();
    let change = runner.task_id("change").unwrap();
    wait_for(&mut rx, "remove", |_| true).await;

    let slower = every(tcp(addr), INTERVAL * 2, PATIENCE);
    runner.set(HashMap::from([
        ("keep".to_string(), spec.clone()),
        ("change".to_string(), slower),
    ]));
    assert_eq!(
        runner.task_id("keep"),
        Some(keep),
        "unchanged check restarted"
    );
    assert_ne!(
        runner.task_id("change"),
        Some(change),
        "changed check kept its task"
    );
    assert_eq!(runner.task_id("remove"), None);
    assert_eq!(runner.len(), 2);

    // Single-threaded runtime: the removed task was aborted before it could run
    // again, so only results queued before `set` can mention it.
    while rx.try_recv().is_ok() {}
    let seen = collect_until(&mut rx, Instant::now() + INTERVAL * 6).await;
    assert!(seen.iter().any(|(k, _, _)| k == "keep"), "{seen:?}");
    assert!(seen.iter().any(|(k, _, _)| k == "change"), "{seen:?}");
    assert!(seen.iter().all(|(k, _, _)| k != "remove"), "{seen:?}");

    runner.set(HashMap::new());
    assert!(runner.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_runner_stops_every_probe() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (runner, mut rx) = runner(64);
    runner.set(
        (0..3)
            .map(|i| {
                (
                    format!("c{i}"),
                    every(tcp(open.local_addr().unwrap()), INTERVAL, PATIENCE),
                )
            })
            .collect(),
    );
    wait_for(&mut rx, "c0", |_| true).await;
    drop(runner);
    // The channel closes once every task (each holding a sender) is gone.
    let deadline = Instant::now() + PATIENCE;
    while let Some(_item) = tokio::time::timeout_at(deadline, rx.recv())
        .await
        .expect("probes still running after the runner was dropped")
    {}
}

#[test]
fn the_runner_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<ProbeRunner>();
}

#[test]
fn jitter_stays_within_the_interval() {
    for interval in [
        Duration::from_nanos(1),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    ] {
        for key in ["a", "b", "c", "d"] {
            assert!(jitter(key, interval) < interval);
        }
    }
    assert_eq!(jitter("a", Duration::ZERO), Duration::ZERO);
}
