//! The SDK's service-side helpers against a real server: `Registration`,
//! `Discovery`, `ConfigWatcher`, multi-server failover and `ServiceClient`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use concord_client::api::config::{ConfigFormat, GraySelector};
use concord_client::api::registry::InstanceSpec;
use concord_client::balance::breaker::BreakerConfig;
use concord_client::{
    CallError, CallPolicy, Client, ConfigWatcher, Discovery, PublishOptions, Registration, RetryOn,
    ServiceClient,
};
use serde::Deserialize;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `concord dev` on a fixed client port, so a restart keeps the address.
struct FixedServer {
    child: Child,
}

impl FixedServer {
    async fn start(port: u16, data_dir: &Path) -> FixedServer {
        let child = Command::new(bin())
            .args(["dev", "--addr", &format!("127.0.0.1:{port}")])
            .args([
                "--peer-addr",
                "127.0.0.1:0",
                "--progress-interval-ms",
                "200",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn concord");
        let client = Client::new(format!("127.0.0.1:{port}"));
        eventually(START_DEADLINE, "fixed-port server ready", || async {
            client.ready().await.ok()
        })
        .await;
        FixedServer { child }
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn instance_ids(client: &Client, service: &str) -> BTreeSet<String> {
    match client.get_service(service, &[]).await {
        Ok(d) => d.instances.into_iter().map(|i| i.id).collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn spec(port: u16, ttl: Option<u32>) -> InstanceSpec {
    InstanceSpec {
        address: "127.0.0.1".into(),
        port,
        ttl_secs: ttl,
        ..InstanceSpec::default()
    }
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn registration_survives_a_server_that_forgot_it() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = FixedServer::start(port, &tmp.path().join("a")).await;
    let client = Client::new(format!("127.0.0.1:{port}"));
    let reg = Registration::start(client.clone(), "billing", "b1", spec(9000, Some(2)))
        .await
        .expect("register");
    assert_eq!((reg.service(), reg.id()), ("billing", "b1"));
    let detail = client.get_service("billing", &[]).await.unwrap();
    assert_eq!(detail.instances[0].ttl_secs, Some(2), "ephemeral");

    // kill -9, then a fresh data dir at the same address: the instance is gone.
    let _ = server.child.kill();
    let _ = server.child.wait();
    server = FixedServer::start(port, &tmp.path().join("b")).await;
    eventually(DEADLINE, "re-registered after the restart", || async {
        instance_ids(&client, "billing")
            .await
            .contains("b1")
            .then_some(())
    })
    .await;

    // Deregistered behind the SDK's back: registered again too.
    client.deregister("billing", "b1").await.unwrap();
    eventually(DEADLINE, "re-registered after a deregister", || async {
        instance_ids(&client, "billing")
            .await
            .contains("b1")
            .then_some(())
    })
    .await;

    reg.shutdown().await.expect("shutdown");
    assert!(instance_ids(&client, "billing").await.is_empty());
    drop(server);
}

#[tokio::test]
async fn discovery_rereads_a_server_whose_history_went_back() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let server = FixedServer::start(port, &tmp.path().join("a")).await;
    let client = Client::new(format!("127.0.0.1:{port}"));
    client
        .register("orders", "old", &spec(1, None))
        .await
        .unwrap();
    advance_history(&client).await;
    let discovery = Discovery::start(client.clone(), "orders").await.unwrap();
    let current =
        |d: &Discovery| -> BTreeSet<String> { d.instances().into_iter().map(|i| i.id).collect() };
    assert_eq!(current(&discovery), ids(&["old"]));

    // The server comes back from an older backup (here: an empty one) at the
    // same address. Its revisions are far behind the cache's, so a watch
    // resumed from the cache's revision alone would wait for revisions this
    // history reaches only much later; its progress events say it is behind.
    let server = restore_empty(server, port, &tmp.path().join("b")).await;
    client
        .register("orders", "new", &spec(3, None))
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while current(&discovery) != ids(&["new"]) {
        assert!(
            Instant::now() < deadline,
            "the cache still shows {:?}",
            current(&discovery)
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, discovery.changed()).await;
    }
    drop(server);
}

#[tokio::test]
async fn discovery_follows_instances_and_picks_only_usable_ones() {
    let s = Server::dev().await;
    let client = Client::new(&s.base);
    for (id, port) in [("a", 1), ("b", 2)] {
        client
            .register("orders", id, &spec(port, None))
            .await
            .unwrap();
    }
    let discovery = Discovery::start(client.clone(), "orders").await.unwrap();
    let current =
        |d: &Discovery| -> BTreeSet<String> { d.instances().into_iter().map(|i| i.id).collect() };
    assert_eq!(current(&discovery), ids(&["a", "b"]));

    let converge = |want: BTreeSet<String>| {
        let discovery = discovery.clone();
        async move {
            let deadline = Instant::now() + DEADLINE;
            while current(&discovery) != want {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    tokio::time::timeout(left, discovery.changed())
                        .await
                        .is_ok(),
                    "cache never became {want:?}, is {:?}",
                    current(&discovery)
                );
            }
        }
    };

    client
        .register("orders", "c", &spec(3, None))
        .await
        .unwrap();
    converge(ids(&["a", "b", "c"])).await;
    client
        .maintenance("orders", "b", Some("upgrade"))
        .await
        .unwrap();
    converge(ids(&["a", "c"])).await;
    for _ in 0..50 {
        let picked = discovery.pick(None).expect("an instance").id;
        assert!(picked == "a" || picked == "c", "picked {picked}");
    }
    client.deregister("orders", "a").await.unwrap();
    converge(ids(&["c"])).await;
    client.maintenance("orders", "b", None).await.unwrap();
    converge(ids(&["b", "c"])).await;
    // A hash key sticks to one instance.
    let first = discovery.pick(Some(b"user-7")).unwrap().id;
    assert!(first == "b" || first == "c");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Settings {
    n: u32,
}

/// The shop's settings item both config watcher tests publish.
const SETTINGS: (&str, &str, &str) = ("default", "shop", "settings.json");

/// Publishes `content` as JSON to [`SETTINGS`]; the new version.
async fn publish_settings(client: &Client, content: &str) -> u64 {
    let (ns, group, id) = SETTINGS;
    client
        .config_put(
            ns,
            group,
            id,
            ConfigFormat::Json,
            content,
            &PublishOptions::default(),
        )
        .await
        .unwrap()
        .version
}

/// Restarts the fixed-port server on a fresh data dir: a server back from an
/// older backup (here, an empty one) at the same address.
async fn restore_empty(server: FixedServer, port: u16, data_dir: &Path) -> FixedServer {
    drop(server);
    FixedServer::start(port, data_dir).await
}

/// Revisions the restored server will not have: 30 registry changes.
async fn advance_history(client: &Client) {
    for _ in 0..15 {
        client
            .register("scratch", "s", &spec(2, None))
            .await
            .unwrap();
        client.deregister("scratch", "s").await.unwrap();
    }
}

#[tokio::test]
async fn config_watcher_rereads_a_server_whose_history_went_back() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let server = FixedServer::start(port, &tmp.path().join("a")).await;
    let client = Client::new(format!("127.0.0.1:{port}"));
    publish_settings(&client, r#"{"n":1}"#).await;
    publish_settings(&client, r#"{"n":2}"#).await;
    advance_history(&client).await;
    let (ns, group, id) = SETTINGS;
    let watcher = ConfigWatcher::<Settings>::start(client.clone(), ns, group, id, None)
        .await
        .unwrap();
    assert_eq!(watcher.current().n, 2);

    // The item is then published once there: version 1 of another history.
    let server = restore_empty(server, port, &tmp.path().join("b")).await;
    publish_settings(&client, r#"{"n":10}"#).await;
    eventually(DEADLINE, "the restored server's value", || async {
        (watcher.current().n == 10).then_some(())
    })
    .await;
    assert_eq!(watcher.version(), 1);
    drop(server);
}

#[tokio::test]
async fn config_watcher_delivers_changes_in_order_and_follows_gray() {
    let s = Server::dev().await;
    let client = Client::new(&s.base);
    let (ns, group, id) = SETTINGS;
    let put = |n: String| {
        let client = client.clone();
        async move { publish_settings(&client, &n).await }
    };
    put(r#"{"n":1}"#.into()).await;
    let watcher = ConfigWatcher::<Settings>::start(client.clone(), ns, group, id, None)
        .await
        .unwrap();
    assert_eq!(*watcher.current(), Settings { n: 1 });
    let mut rx = watcher.subscribe();
    let mut last = 0;
    for n in 2..=5 {
        last = put(format!(r#"{{"n":{n}}}"#)).await;
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.last() != Some(&5) {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, rx.changed())
            .await
            .expect("updates in time")
            .expect("watcher alive");
        seen.push(rx.borrow_and_update().n);
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {seen:?}"
    );
    assert_eq!(watcher.version(), last);

    // A version that does not decode is skipped; the next good one arrives.
    put(r#"{"other":true}"#.into()).await;
    let good = put(r#"{"n":7}"#.into()).await;
    tokio::time::timeout(DEADLINE, rx.changed())
        .await
        .expect("update in time")
        .unwrap();
    assert_eq!(rx.borrow_and_update().n, 7, "the bad version was skipped");
    assert_eq!(watcher.version(), good);

    // Gray: only the targeted instance's watcher sees the candidate.
    client
        .register("orders", "o1", &spec(1, None))
        .await
        .unwrap();
    let gray_watcher =
        ConfigWatcher::<Settings>::start(client.clone(), ns, group, id, Some("orders/o1"))
            .await
            .unwrap();
    assert_eq!(gray_watcher.current().n, 7);
    let selector = GraySelector {
        instances: vec!["orders/o1".into()],
        ..GraySelector::default()
    };
    client
        .config_gray_put(ns, group, id, r#"{"n":99}"#, &selector)
        .await
        .unwrap();
    eventually(DEADLINE, "the gray candidate", || async {
        (gray_watcher.current().n == 99).then_some(())
    })
    .await;
    assert_eq!(
        watcher.current().n,
        7,
        "untargeted watchers keep the published value"
    );
    client.config_gray_cancel(ns, group, id).await.unwrap();
    eventually(DEADLINE, "back to the published value", || async {
        (gray_watcher.current().n == 7).then_some(())
    })
    .await;
}

/// A loopback HTTP server answering every request with `status` and a JSON
/// body naming `who`; returns its port and a hit counter.
async fn fake_service(who: &'static str, status: StatusCode) -> (u16, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (status, axum::Json(serde_json::json!({ "who": who })))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

#[tokio::test]
async fn failover_skips_a_dead_node_and_waits_out_no_leader() {
    let s = Server::dev().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let client = Client::with_servers([dead.as_str(), s.base.as_str()]);
    client
        .kv_put("sdk/failover", "yes")
        .await
        .expect("put via the live node");
    let item = client.kv_get("sdk/failover").await.unwrap().expect("found");
    assert_eq!(item.value_bytes(), b"yes".to_vec());

    // A node answering 503 no_leader three times, then fine.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) < 3 {
                let body = r#"{"error":{"code":"no_leader","message":"electing"}}"#;
                (StatusCode::SERVICE_UNAVAILABLE, body)
            } else {
                (StatusCode::OK, "{}")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let electing = Client::with_servers([addr.to_string()]);
    electing.health().await.expect("retried until a leader");
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Bounded: a node that never recovers fails within the budget.
    let never =
        Client::with_servers([dead.as_str()]).with_failover_budget(Duration::from_millis(300));
    let started = Instant::now();
    assert!(never.health().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn service_client_retries_elsewhere_and_breaks_the_circuit() {
    let s = Server::dev().await;
    let client = Client::new(&s.base);
    let (good, good_hits) = fake_service("good", StatusCode::OK).await;
    let (bad, bad_hits) = fake_service("bad", StatusCode::SERVICE_UNAVAILABLE).await;
    client
        .register("stock", "good", &spec(good, None))
        .await
        .unwrap();
    client
        .register("stock", "bad", &spec(bad, None))
        .await
        .unwrap();
    client
        .register("stock", "dead", &spec(free_port(), None))
        .await
        .unwrap();

    #[derive(Debug, Deserialize)]
    struct Who {
        who: String,
    }
    let services = ServiceClient::new(client.clone()).with_policy(CallPolicy {
        attempts: 2,
        retry_on: vec![RetryOn::ConnectFailure, RetryOn::Status(503)],
        per_try_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(10),
        ..CallPolicy::default()
    });
    // Few calls: retries come out of the budget (10 + 20 % of requests).
    for _ in 0..8 {
        let who: Who = services
            .get_json("stock", "/item/1")
            .await
            .expect("retried");
        assert_eq!(who.who, "good");
    }
    assert_eq!(good_hits.load(Ordering::SeqCst), 8);

    // POST is not retried unless the policy says non_idempotent.
    client.deregister("stock", "good").await.unwrap();
    client.deregister("stock", "dead").await.unwrap();
    let broken = ServiceClient::new(client.clone()).with_policy(CallPolicy {
        retry_on: vec![RetryOn::Status(503)],
        circuit_breaker: Some(BreakerConfig {
            min_requests: 4,
            failure_rate: 0.5,
            open_for: Duration::from_secs(60),
            ..BreakerConfig::from_spec(&Default::default())
        }),
        ..CallPolicy::default()
    });
    let before = bad_hits.load(Ordering::SeqCst);
    eventually(DEADLINE, "only the bad instance left", || async {
        (instance_ids(&client, "stock").await == ids(&["bad"])).then_some(())
    })
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        match broken.post_json::<_, Who>("stock", "/orders", &1).await {
            Err(CallError::Status { status: 503, .. }) => outcomes.push("503"),
            Err(CallError::NoInstance(_)) => outcomes.push("none"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        outcomes,
        vec!["503"; 4],
        "one attempt each, no retry of POST"
    );
    assert_eq!(bad_hits.load(Ordering::SeqCst) - before, 4);
    let err = broken
        .get_json::<Who>("stock", "/item/1")
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::CircuitOpen(_)), "{err:?}");
    assert_eq!(
        bad_hits.load(Ordering::SeqCst) - before,
        4,
        "refused locally"
    );
}
