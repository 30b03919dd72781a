//! The gateway: the real `concord gateway` binary in front of real HTTP
//! backends (axum on loopback) registered in a real `concord dev`, with routes
//! PUT through the API. Every load loop is bounded in count and time.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// A running `concord gateway` on loopback ports chosen by the OS.
struct Gateway {
    child: Option<Child>,
    base: String,
    admin: String,
}

impl Gateway {
    /// Starts a gateway following `server`, with an admin listener.
    fn start(server: &Server) -> Gateway {
        Gateway::start_threads(server, 2)
    }

    /// `--threads 1` runs the current-thread scheduler, `--threads N` the
    /// multi-threaded one: the tests cover both.
    fn start_threads(server: &Server, threads: u16) -> Gateway {
        let threads = threads.to_string();
        let mut child = Command::new(bin())
            .args(["gateway", "--server", &server.base])
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args([
                "--drain-timeout-secs",
                "20",
                "--threads",
                &threads,
                "--access-log",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn concord gateway");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("concord gateway listening: ") {
                    let mut fields = rest.split_whitespace();
                    let base = fields.next().unwrap_or("").to_owned();
                    let admin = fields
                        .find_map(|f| f.strip_prefix("admin="))
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send((base, admin));
                }
            }
        });
        let (base, admin) = rx
            .recv_timeout(START_DEADLINE)
            .expect("the gateway printed its listening line");
        Gateway {
            child: Some(child),
            base,
            admin: format!("http://{admin}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    async fn admin_json(&self, path: &str) -> Value {
        let (st, _, body) = get(&format!("{}{path}", self.admin)).await;
        assert_eq!(st, 200, "{path}: {body}");
        body
    }

    /// Waits until the gateway serves route `name` at `revision` or later.
    async fn wait_route(&self, name: &str, revision: u64) {
        eventually(
            Duration::from_secs(20),
            &format!("gateway has route {name}@{revision}"),
            move || async move {
                let routes = self.admin_json("/admin/routes").await;
                routes["routes"]
                    .as_array()?
                    .iter()
                    .any(|r| r["name"] == name && r["revision"].as_u64() >= Some(revision))
                    .then_some(())
            },
        )
        .await;
    }

    /// Waits until the target (service, tags) has exactly `n` endpoints.
    async fn wait_endpoints(&self, service: &str, tags: &[&str], n: usize) {
        eventually(
            Duration::from_secs(20),
            &format!("gateway sees {n} endpoints of {service} {tags:?}"),
            move || async move {
                let ups = self.admin_json("/admin/upstreams").await;
                ups["upstreams"]
                    .as_array()?
                    .iter()
                    .any(|u| {
                        u["service"] == service
                            && u["tags"] == json!(tags)
                            && u["endpoints"].as_array().map(Vec::len) == Some(n)
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// SIGTERM; waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        terminate_child(self.child.take().expect("running"), "gateway")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What every backend knows about itself.
struct BackendState {
    name: String,
    delay: Duration,
    hits: AtomicUsize,
    /// Answer 500 to everything while set.
    failing: AtomicBool,
}

/// An HTTP backend on its own runtime and thread, so killing it closes every
/// socket it has, as a crashed process would.
struct Backend {
    name: String,
    addr: SocketAddr,
    state: Arc<BackendState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(name: &str) -> Backend {
        Backend::with_delay(name, Duration::ZERO)
    }

    /// A backend that waits `delay` before answering.
    fn with_delay(name: &str, delay: Duration) -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BackendState {
            name: name.to_owned(),
            delay,
            hits: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: sockets close.
        });
        Backend {
            name: name.to_owned(),
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Makes every answer a 500 (or not).
    fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops answering and closes every connection.
    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every backend answers with its name (also in `x-backend`), the method,
/// path and the headers it received. Paths containing `hop` also send a
/// hop-by-hop header the gateway must not pass on; paths containing
/// `echo-body` stream the request body back, and paths containing
/// `too-large` answer 413 without reading it.
async fn answer(
    State(st): State<Arc<BackendState>>,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    st.hits.fetch_add(1, Ordering::SeqCst);
    if req.headers().contains_key("upgrade") {
        return echo_upgrade(&mut req);
    }
    if req.uri().path().contains("too-large") {
        return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response();
    }
    if req.uri().path().contains("echo-body") {
        // Streamed back as it comes: no length, so chunked.
        let body = req.into_body().into_data_stream();
        return axum::response::Response::new(axum::body::Body::from_stream(body));
    }
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    if st.failing.load(Ordering::SeqCst) {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [("x-backend", st.name.clone())],
            "failing",
        )
            .into_response();
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.to_str().unwrap_or("").to_owned());
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let body = json!({"backend": st.name, "method": req.method().as_str(),
                      "path": path, "headers": headers});
    let mut resp = ([("x-backend", st.name.clone())], axum::Json(body)).into_response();
    if path.contains("hop") {
        let h = resp.headers_mut();
        h.insert("connection", "x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
    }
    resp
}

/// Switches protocols and echoes every byte back.
fn echo_upgrade(req: &mut axum::extract::Request) -> axum::response::Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    axum::response::Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(axum::body::Body::empty())
        .unwrap()
}

/// Registers `backend` as instance `id` of `service`.
async fn register(
    s: &Server,
    service: &str,
    id: &str,
    backend: &Backend,
    tags: &[&str],
    weight: u32,
) {
    register_port(s, service, id, backend.addr.port(), tags, weight).await;
}

/// Registers whatever listens on 127.0.0.1:`port` as instance `id` of `service`.
async fn register_port(s: &Server, service: &str, id: &str, port: u16, tags: &[&str], weight: u32) {
    let (st, _, b) = call(
        Method::PUT,
        &s.url(&format!("/v1/services/{service}/instances/{id}")),
        Some(json!({"address": "127.0.0.1", "port": port, "tags": tags, "weight": weight})),
    )
    .await;
    assert_eq!(st, 200, "register {id}: {b}");
}

/// PUTs a route; returns its revision.
async fn put_route(s: &Server, name: &str, route: Value) -> u64 {
    let (st, _, b) = call(
        Method::PUT,
        &s.url(&format!("/v1/gateway/routes/{name}")),
        Some(route),
    )
    .await;
    assert_eq!(st, 200, "route {name}: {b}");
    b["revision"].as_u64().expect("revision")
}

/// PUTs a route and waits until the gateway serves it.
/// A node, a gateway, and one backend registered as `service` behind
/// `route` (named after the service), once the gateway has its endpoint.
async fn one_backend(
    service: &str,
    instance: &str,
    route_json: Value,
) -> (Server, Gateway, Backend) {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let b = Backend::start(service);
    register(&s, service, instance, &b, &[], 100).await;
    route(&s, &gw, service, route_json).await;
    gw.wait_endpoints(service, &[], 1).await;
    (s, gw, b)
}

async fn route(s: &Server, gw: &Gateway, name: &str, route: Value) {
    let rev = put_route(s, name, route).await;
    gw.wait_route(name, rev).await;
}

/// A request through the gateway: status, headers and JSON body (Null if not JSON).
async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value, String) {
    let resp = req.send().await.expect("request through the gateway");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json, text)
}

fn backend_of(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `n` GETs of `path` from `workers` concurrent loops (bounded by `within`);
/// counts answers by backend (`status` for non-200s).
async fn spread(gw: &Gateway, path: &str, n: usize, workers: usize) -> HashMap<String, usize> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let per = n / workers;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let http = http.clone();
        let url = gw.url(path);
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..per {
                assert!(Instant::now() < deadline, "load loop ran out of time");
                let resp = http.get(&url).send().await.expect("request");
                let key = if resp.status() == 200 {
                    backend_of(resp.headers())
                } else {
                    format!("status {}", resp.status())
                };
                let _ = resp.bytes().await;
                *counts.entry(key).or_default() += 1;
            }
            counts
        }));
    }
    let mut total = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

#[tokio::test]
async fn routes_by_path_host_and_method_with_strip_prefix() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let orders = Backend::start("orders-1");
    let users = Backend::start("users-1");
    let shop = Backend::start("shop-1");
    register(&s, "orders", "o1", &orders, &[], 100).await;
    register(&s, "users", "u1", &users, &[], 100).await;
    register(&s, "shop", "s1", &shop, &[], 100).await;
    route(
        &s,
        &gw,
        "orders",
        json!({"match": {"path_prefix": "/api/orders"},
        "service": "orders", "strip_prefix": true}),
    )
    .await;
    route(
        &s,
        &gw,
        "users",
        json!({"match": {"path_prefix": "/api/users", "methods": ["GET"]},
        "service": "users"}),
    )
    .await;
    route(
        &s,
        &gw,
        "shop",
        json!({"match": {"host": "shop.local"}, "service": "shop",
        "rewrite_path": "/storefront"}),
    )
    .await;

    let http = reqwest::Client::new();
    let (st, h, b, _) = send(http.get(gw.url("/api/orders/17?full=1"))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(backend_of(&h), "orders-1");
    assert_eq!(b["path"], "/17?full=1", "prefix stripped, query kept");
    let (_, _, b, _) = send(http.get(gw.url("/api/orders"))).await;
    assert_eq!(b["path"], "/");

    let (st, _, b, _) = send(http.get(gw.url("/api/users/5"))).await;
    assert_eq!((st, b["backend"].as_str()), (200, Some("users-1")));
    assert_eq!(b["path"], "/api/users/5", "no strip_prefix: path unchanged");
    // The users route takes GET only, and nothing else matches a POST there.
    let (st, _, b, _) = send(http.post(gw.url("/api/users/5"))).await;
    assert_eq!(st, 404, "{b}");
    assert_eq!(b["error"]["code"], "no_route");
    // Whole segments only.
    let (st, _, _, _) = send(http.get(gw.url("/api/ordersx"))).await;
    assert_eq!(st, 404);

    // Host routing (port ignored), and it beats nothing else here.
    let (st, _, b, _) = send(
        http.get(gw.url("/anything"))
            .header("host", "SHOP.local:9999"),
    )
    .await;
    assert_eq!((st, b["backend"].as_str()), (200, Some("shop-1")));
    assert_eq!(b["path"], "/storefront");
    assert_eq!(
        b["headers"]["host"][0], "SHOP.local:9999",
        "Host passes through"
    );

    // A deleted route stops matching.
    let (st, _, _) = call(Method::DELETE, &s.url("/v1/gateway/routes/users"), None).await;
    assert_eq!(st, 200);
    eventually(Duration::from_secs(20), "users route gone", || {
        let req = http.get(gw.url("/api/users/5"));
        async move { (send(req).await.0 == 404).then_some(()) }
    })
    .await;
    let routes = gw.admin_json("/admin/routes").await;
    let names: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["orders", "shop"],
        "match order: longer prefix, then host"
    );
}

#[tokio::test]
async fn weighted_split_and_round_robin_distribute_as_configured() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let v1 = Backend::start("v1");
    let v2 = Backend::start("v2");
    register(&s, "web", "w1", &v1, &["v1"], 100).await;
    register(&s, "web", "w2", &v2, &["v2"], 100).await;
    route(
        &s,
        &gw,
        "web",
        json!({"match": {"path_prefix": "/web"}, "split": [
        {"service": "web", "tags": ["v1"], "weight": 90},
        {"service": "web", "tags": ["v2"], "weight": 10}]}),
    )
    .await;
    gw.wait_endpoints("web", &["v1"], 1).await;
    gw.wait_endpoints("web", &["v2"], 1).await;
    let counts = spread(&gw, "/web", 1000, 4).await;
    let canary = counts.get("v2").copied().unwrap_or(0);
    assert_eq!(
        counts.get("v1").copied().unwrap_or(0) + canary,
        1000,
        "{counts:?}"
    );
    // 10 % of 1,000 is 100; the binomial standard deviation is about 9.5.
    assert!(
        (60..=140).contains(&canary),
        "v2 got {canary} of 1000: {counts:?}"
    );

    let rr: Vec<Backend> = (1..=3)
        .map(|i| Backend::start(&format!("rr-{i}")))
        .collect();
    for (i, b) in rr.iter().enumerate() {
        register(&s, "rr", &format!("r{i}"), b, &[], 100).await;
    }
    route(
        &s,
        &gw,
        "rr",
        json!({"match": {"path_prefix": "/rr"}, "service": "rr",
        "lb": "round_robin"}),
    )
    .await;
    gw.wait_endpoints("rr", &[], 3).await;
    let counts = spread(&gw, "/rr", 300, 3).await;
    for b in &rr {
        let got = counts.get(&b.name).copied().unwrap_or(0);
        assert!(
            (95..=105).contains(&got),
            "{}: {got} of 300: {counts:?}",
            b.name
        );
    }
}

#[tokio::test]
async fn only_passing_instances_get_traffic() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let a = Backend::start("pass-a");
    let b = Backend::start("pass-b");
    register(&s, "pass", "a", &a, &[], 100).await;
    register(&s, "pass", "b", &b, &[], 100).await;
    route(
        &s,
        &gw,
        "pass",
        json!({"match": {}, "service": "pass", "lb": "round_robin"}),
    )
    .await;
    gw.wait_endpoints("pass", &[], 2).await;
    let counts = spread(&gw, "/", 20, 1).await;
    assert_eq!(counts.get("pass-b"), Some(&10), "{counts:?}");

    let url = s.url("/v1/services/pass/instances/b/maintenance");
    let maintenance = |enabled: bool| {
        call(
            Method::PUT,
            &url,
            Some(json!({"enabled": enabled, "reason": "deploy"})),
        )
    };
    let (st, _, body) = maintenance(true).await;
    assert_eq!(st, 200, "{body}");
    gw.wait_endpoints("pass", &[], 1).await;
    let before = b.hits();
    let counts = spread(&gw, "/", 50, 2).await;
    assert_eq!(counts.get("pass-a"), Some(&50), "{counts:?}");
    assert_eq!(b.hits(), before, "an instance in maintenance got requests");

    let (st, _, body) = maintenance(false).await;
    assert_eq!(st, 200, "{body}");
    gw.wait_endpoints("pass", &[], 2).await;
    let counts = spread(&gw, "/", 20, 1).await;
    assert_eq!(
        counts.get("pass-b"),
        Some(&10),
        "back in rotation: {counts:?}"
    );
}

#[tokio::test]
async fn gets_are_retried_around_a_killed_backend() {
    let s = Server::dev().await;
    let gw = Gateway::start_threads(&s, 1);
    let alive = Backend::start("alive");
    let mut doomed = Backend::start("doomed");
    register(&s, "flaky", "alive", &alive, &[], 100).await;
    register(&s, "flaky", "doomed", &doomed, &[], 100).await;
    route(
        &s,
        &gw,
        "flaky",
        json!({"match": {}, "service": "flaky", "lb": "round_robin",
        "retries": {"attempts": 1, "on": ["connect_failure", "reset"], "budget_percent": 100}}),
    )
    .await;
    gw.wait_endpoints("flaky", &[], 2).await;

    let http = reqwest::Client::new();
    let mut served = HashMap::<String, usize>::new();
    for i in 0..120 {
        if i == 40 {
            doomed.kill();
        }
        let (st, h, b, _) = send(http.get(gw.url("/item"))).await;
        assert_eq!(st, 200, "request {i}: {b}");
        *served.entry(backend_of(&h)).or_default() += 1;
    }
    // The killed instance is still registered and passing: every other pick
    // lands on it and is retried on the live one.
    assert_eq!(
        served.get("alive").copied().unwrap_or(0),
        120 - 20,
        "{served:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("concord_gateway_retries_total{route=\"flaky\"}"))
        .unwrap_or_else(|| panic!("no retry metric in:\n{metrics}"));
    let n: f64 = retries.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 30.0, "{retries}");
    assert!(
        metrics.contains(
            "concord_gateway_requests_total{route=\"flaky\",service=\"flaky\",status=\"200\"} 120"
        ),
        "{metrics}"
    );

    // With the default retries (connect failures only) the first attempt
    // takes the request's headers without a copy; the retry must still
    // carry every one of them.
    route(
        &s,
        &gw,
        "flaky-plain",
        json!({"match": {"path_prefix": "/plain"}, "service": "flaky", "lb": "round_robin",
        "retries": {"budget_percent": 100}}),
    )
    .await;
    for i in 0..20 {
        let probe = i.to_string();
        let (st, _, b, _) = send(http.get(gw.url("/plain")).header("x-probe", &probe)).await;
        assert_eq!(st, 200, "request {i}: {b}");
        let headers = &b["headers"];
        assert_eq!(headers["x-probe"], json!([probe]), "{b}");
        for name in [
            "host",
            "x-request-id",
            "x-forwarded-for",
            "x-forwarded-proto",
        ] {
            assert_eq!(
                headers[name].as_array().map(Vec::len),
                Some(1),
                "{name}: {b}"
            );
        }
    }

    // A POST is not retried by default: it may fail, but it is never sent twice.
    let before = alive.hits();
    let mut failed = 0;
    for _ in 0..10 {
        let (st, _, _, _) = send(http.post(gw.url("/order")).body("x")).await;
        if st != 200 {
            assert_eq!(st, 502);
            failed += 1;
        }
    }
    assert_eq!(alive.hits() - before + failed, 10);
    assert!(
        failed > 0,
        "round robin sends every other POST to the dead instance"
    );
}

#[tokio::test]
async fn slow_backends_time_out_with_504() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let slow = Backend::with_delay("slow", Duration::from_secs(3));
    register(&s, "slow", "s1", &slow, &[], 100).await;
    route(
        &s,
        &gw,
        "slow",
        json!({"match": {}, "service": "slow",
        "timeouts": {"per_try_ms": 200, "total_ms": 400}}),
    )
    .await;
    gw.wait_endpoints("slow", &[], 1).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let (st, h, b, _) = send(http.get(gw.url("/"))).await;
    assert_eq!(st, 504, "{b}");
    assert_eq!(b["error"]["code"], "gateway_timeout");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("200 ms"),
        "{b}"
    );
    assert_eq!(h["content-type"], "application/json");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // Retrying on timeout: each try has its own deadline, the total caps them.
    route(
        &s,
        &gw,
        "slow",
        json!({"match": {}, "service": "slow",
        "timeouts": {"per_try_ms": 200, "total_ms": 500},
        "retries": {"attempts": 5, "on": ["timeout"], "budget_percent": 100}}),
    )
    .await;
    let started = Instant::now();
    let (st, _, b, _) = send(http.get(gw.url("/"))).await;
    assert_eq!(st, 504, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total timeout of 500 ms"),
        "{b}"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn no_endpoint_is_503_or_the_fallback() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    route(
        &s,
        &gw,
        "ghost",
        json!({"match": {"path_prefix": "/ghost"}, "service": "ghost"}),
    )
    .await;
    route(
        &s,
        &gw,
        "ghost-fb",
        json!({"match": {"path_prefix": "/fb"}, "service": "ghost",
        "fallback": {"status": 503, "body": "back soon", "content_type": "text/plain"}}),
    )
    .await;
    let http = reqwest::Client::new();
    let (st, h, b, _) = send(http.get(gw.url("/ghost"))).await;
    assert_eq!(st, 503, "{b}");
    assert_eq!(b["error"]["code"], "no_endpoint");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("ghost"),
        "{b}"
    );
    assert!(h.contains_key("x-request-id"));
    let (st, h, _, text) = send(http.get(gw.url("/fb/x"))).await;
    assert_eq!((st, text.as_str()), (503, "back soon"));
    assert_eq!(h["content-type"], "text/plain");

    // An instance appearing takes the traffic; it leaving brings the fallback back.
    let b1 = Backend::start("ghost-1");
    register(&s, "ghost", "g1", &b1, &[], 100).await;
    gw.wait_endpoints("ghost", &[], 1).await;
    let (st, h, _, _) = send(http.get(gw.url("/fb/x"))).await;
    assert_eq!((st, backend_of(&h).as_str()), (200, "ghost-1"));
    let (st, _, _) = call(
        Method::DELETE,
        &s.url("/v1/services/ghost/instances/g1"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    gw.wait_endpoints("ghost", &[], 0).await;
    let (_, _, _, text) = send(http.get(gw.url("/fb/x"))).await;
    assert_eq!(text, "back soon");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (_s, gw, _b) = one_backend(
        "limited",
        "l1",
        json!({"match": {}, "service": "limited",
        "rate_limit": {"requests_per_second": 0.2, "burst": 3, "key": "header:x-api-key"}}),
    )
    .await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (st, h, b, _) = send(http.get(gw.url("/")).header("x-api-key", "k1")).await;
        if st == 429 {
            assert_eq!(b["error"]["code"], "rate_limited");
            let after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
            // A token comes back every 5 s.
            assert!((1..=5).contains(&after), "Retry-After {after}");
        }
        statuses.push(st);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Another key has its own bucket.
    let (st, _, _, _) = send(http.get(gw.url("/")).header("x-api-key", "k2")).await;
    assert_eq!(st, 200);
    let metrics = reqwest::get(format!("{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("concord_gateway_rate_limited_total{route=\"limited\"} 2"),
        "{metrics}"
    );
}

/// Sends a raw HTTP/1.1 request and returns the status, the response headers
/// (lower-cased) and the body.
fn raw_request(addr: &str, request: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[tokio::test]
async fn forwarding_request_id_and_hop_by_hop_headers() {
    let (_s, gw, _b) = one_backend(
        "hdr",
        "h1",
        json!({"match": {"path_prefix": "/hdr"}, "service": "hdr",
        "request_headers": {"add": {"x-from": "gw"}, "remove": ["x-debug"]},
        "response_headers": {"add": {"x-served-by": "concord"}, "remove": ["x-backend"]}}),
    )
    .await;

    let addr = gw.addr();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let request = format!(
        "GET /hdr/hop HTTP/1.1\r\nHost: hdr.local\r\nConnection: close, X-Secret\r\n\
         X-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Request-Id: req-42\r\ntraceparent: {traceparent}\r\n\
         X-Debug: 1\r\nX-Kept: k\r\n\r\n"
    );
    let (status, resp_headers, body) =
        tokio::task::spawn_blocking(move || raw_request(&addr, &request))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).expect("backend JSON");
    let h = &seen["headers"];
    for gone in ["x-secret", "keep-alive", "proxy-authorization", "x-debug"] {
        assert!(h.get(gone).is_none(), "{gone} reached the backend: {h}");
    }
    assert_ne!(h["connection"], json!(["close, X-Secret"]), "{h}");
    assert_eq!(h["x-forwarded-for"], json!(["203.0.113.7, 127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(h["x-request-id"], json!(["req-42"]));
    assert_eq!(h["traceparent"], json!([traceparent]));
    assert_eq!(h["x-from"], json!(["gw"]));
    assert_eq!(h["x-kept"], json!(["k"]));
    assert_eq!(h["host"], json!(["hdr.local"]));
    // The backend's hop-by-hop response header stays behind; rules apply.
    assert!(!resp_headers.contains_key("x-hop"), "{resp_headers:?}");
    assert_eq!(
        resp_headers.get("x-request-id").map(String::as_str),
        Some("req-42")
    );
    assert_eq!(
        resp_headers.get("x-served-by").map(String::as_str),
        Some("concord")
    );
    assert!(!resp_headers.contains_key("x-backend"));

    // Without an id the gateway makes one, sends it on and answers with it.
    let http = reqwest::Client::new();
    let (st, h, b, _) = send(http.get(gw.url("/hdr/x"))).await;
    assert_eq!(st, 200);
    let id = h["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(b["headers"]["x-request-id"], json!([id]));
    assert_eq!(b["headers"]["x-forwarded-for"], json!(["127.0.0.1"]));
}

#[tokio::test]
async fn streamed_bodies_go_through_chunked_both_ways() {
    let (_s, gw, b) = one_backend(
        "echo",
        "e1",
        json!({"match": {"path_prefix": "/echo-body"}, "service": "echo"}),
    )
    .await;

    let chunks: Vec<Vec<u8>> = (0..40u8)
        .map(|i| vec![b'a' + i % 26; 5000 + usize::from(i)])
        .collect();
    let expected = chunks.concat();
    let http = reqwest::Client::new();
    // The second goes on the connection the first one's chunked answer
    // gave back to the pool.
    for _ in 0..2 {
        let stream = futures::stream::iter(chunks.clone().into_iter().map(Ok::<_, std::io::Error>));
        let resp = http
            .post(gw.url("/echo-body"))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("an answer");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-length").is_none());
        let got = resp.bytes().await.expect("the whole body");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the body came back changed");
    }
    assert_eq!(b.hits(), 2);
}

/// What a raw client reads until `done` holds for it, within 30 s; the
/// connection closing first fails the test.
async fn read_until(
    io: &mut (impl tokio::io::AsyncRead + Unpin),
    done: impl Fn(&str) -> bool,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&String::from_utf8_lossy(&got)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "no whole answer: {other:?} after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn an_endpoint_that_refuses_an_upload_midway_is_answered_with_its_refusal() {
    let (_s, gw, b) = one_backend(
        "upload",
        "u1",
        json!({"match": {"path_prefix": "/too-large"}, "service": "upload"}),
    )
    .await;

    let answer = answer_to_large_upload(&gw, "/too-large").await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.ends_with("too large"), "{answer}");
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn an_endpoint_that_refuses_an_upload_and_keeps_the_connection_is_answered_at_once() {
    use tokio::io::AsyncWriteExt;
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    // A raw endpoint: it reads a request head, answers 413, and then
    // neither reads the body nor closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            let (mut io, _) = listener.accept().await.unwrap();
            read_until(&mut io, |got| got.contains("\r\n\r\n")).await;
            io.write_all(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 9\r\n\r\ntoo large")
                .await
                .unwrap();
            kept.push(io);
        }
    });
    register_port(&s, "hold", "h1", port, &[], 100).await;
    // Timeouts far beyond read_until's 30 s: only the answer itself can
    // end the wait in time.
    route(
        &s,
        &gw,
        "hold",
        json!({"match": {"path_prefix": "/hold"}, "service": "hold",
               "timeouts": {"per_try_ms": 120_000, "total_ms": 240_000}}),
    )
    .await;
    gw.wait_endpoints("hold", &[], 1).await;

    let answer = answer_to_large_upload(&gw, "/hold").await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.ends_with("too large"), "{answer}");
    endpoint.abort();
}

/// What the gateway answers a raw client that POSTs 64 MiB to `path`,
/// sending until the gateway stops taking it; read until the body
/// `too large` ends it (within read_until's 30 s). Raw, so that the answer
/// is seen whatever happens to the upload.
async fn answer_to_large_upload(gw: &Gateway, path: &str) -> String {
    use tokio::io::AsyncWriteExt;
    const SIZE: usize = 64 << 20;
    let stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let head = format!("POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-length: {SIZE}\r\n\r\n");
    let upload = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            tx.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let answer = read_until(&mut rx, |got| got.ends_with("too large")).await;
    upload.abort();
    answer
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    use tokio::io::AsyncWriteExt;
    let (_s, gw, b) = one_backend(
        "half",
        "h1",
        json!({"match": {"path_prefix": "/half"}, "service": "half"}),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    stream
        .write_all(b"GET /half/x HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await
        .unwrap();
    // As `nc -N` does: nothing more to send, the answer still wanted.
    stream.shutdown().await.unwrap();
    let answer = read_until(&mut stream, |got| got.contains("\"backend\":\"half\"")).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn a_route_change_under_load_fails_no_request() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let blue = Backend::start("blue");
    let green = Backend::start("green");
    register(&s, "blue", "b1", &blue, &[], 100).await;
    register(&s, "green", "g1", &green, &[], 100).await;
    route(
        &s,
        &gw,
        "live",
        json!({"match": {"path_prefix": "/live"}, "service": "blue"}),
    )
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (http, url, stop) = (http.clone(), gw.url("/live/x"), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for _ in 0..5_000 {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let resp = http.get(&url).send().await.expect("request");
                let key = if resp.status() == 200 {
                    backend_of(resp.headers())
                } else {
                    format!("status {}", resp.status())
                };
                let _ = resp.bytes().await;
                *seen.entry(key).or_default() += 1;
            }
            seen
        }));
    }
    eventually(Duration::from_secs(20), "load on blue", || {
        let hits = blue.hits();
        async move { (hits >= 100).then_some(()) }
    })
    .await;
    // To a service the gateway has never followed, then a split, then back.
    route(
        &s,
        &gw,
        "live",
        json!({"match": {"path_prefix": "/live"}, "service": "green"}),
    )
    .await;
    eventually(Duration::from_secs(20), "load on green", || {
        let hits = green.hits();
        async move { (hits >= 100).then_some(()) }
    })
    .await;
    route(
        &s,
        &gw,
        "live",
        json!({"match": {"path_prefix": "/live"}, "split": [
        {"service": "blue", "weight": 50}, {"service": "green", "weight": 50}]}),
    )
    .await;
    let blue_then = blue.hits();
    eventually(Duration::from_secs(20), "split load", || {
        let hits = blue.hits();
        async move { (hits >= blue_then + 100).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (total, failed) = tally(workers, "status").await;
    assert_eq!(failed, 0, "failed requests during route changes: {total:?}");
    assert!(total["blue"] >= 200 && total["green"] >= 100, "{total:?}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let s = Server::dev().await;
    let mut gw = Gateway::start_threads(&s, 1);
    let slow = Backend::with_delay("slow", Duration::from_millis(1500));
    register(&s, "slow", "s1", &slow, &[], 100).await;
    route(&s, &gw, "slow", json!({"match": {}, "service": "slow"})).await;
    gw.wait_endpoints("slow", &[], 1).await;
    let http = reqwest::Client::new();
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let req = http.get(gw.url("/slow"));
            tokio::spawn(async move {
                let resp = req.send().await.expect("in-flight request completes");
                (
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default(),
                )
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "requests in flight", || {
        let hits = slow.hits();
        async move { (hits == 5).then_some(()) }
    })
    .await;
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.terminate();
        (status, gw)
    });
    for r in in_flight {
        let (st, body) = r.await.unwrap();
        assert_eq!(st, 200, "{body}");
    }
    let (status, gw) = status.await.unwrap();
    assert!(status.success(), "gateway exit: {status:?}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(gw.addr()).is_err());
}

#[tokio::test]
async fn upgrades_tunnel_both_ways() {
    let s = Server::dev().await;
    let gw = Gateway::start_threads(&s, 1);
    let b = Backend::start("echo");
    register(&s, "echo", "e1", &b, &[], 100).await;
    route(
        &s,
        &gw,
        "echo",
        json!({"match": {"path_prefix": "/ws"}, "service": "echo"}),
    )
    .await;
    gw.wait_endpoints("echo", &[], 1).await;
    let addr = gw.addr();
    let (head, echoed) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: echo.local\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("response head");
            head.push(byte[0]);
        }
        let mut echoed = Vec::new();
        for msg in [&b"ping"[..], b"second message"] {
            stream.write_all(msg).unwrap();
            let mut buf = vec![0u8; msg.len()];
            stream.read_exact(&mut buf).expect("echo");
            echoed.push(String::from_utf8(buf).unwrap());
        }
        (String::from_utf8(head).unwrap(), echoed)
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: echo"),
        "{head}"
    );
    assert_eq!(echoed, ["ping", "second message"]);
}

#[tokio::test]
async fn grpc_unary_and_streaming_over_h2c() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let s = Server::dev().await;
    let gw = Gateway::start_threads(&s, 1);
    let grpc = crate::endpoints::GrpcEndpoint::start().await;
    grpc.reporter
        .set_service_status("concord.Test", tonic_health::ServingStatus::Serving)
        .await;
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/health-grpc/instances/g1"),
        Some(json!({"address": "127.0.0.1", "port": grpc.addr.port()})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    route(
        &s,
        &gw,
        "grpc",
        json!({"match": {"path_prefix": "/grpc.health.v1.Health"},
        "service": "health-grpc"}),
    )
    .await;
    gw.wait_endpoints("health-grpc", &[], 1).await;

    let channel = tonic::transport::Channel::from_shared(gw.url(""))
        .unwrap()
        .connect()
        .await
        .expect("h2c to the gateway");
    let mut client = HealthClient::new(channel);
    let check = |service: &str| {
        tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        })
    };
    let resp = client
        .check(check("concord.Test"))
        .await
        .expect("unary call");
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);
    // A gRPC error arrives as a status in trailers-only headers.
    let err = client.check(check("nope")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    // Server streaming: the watch sends the current status, then each change.
    let mut watch = client
        .watch(check("concord.Test"))
        .await
        .expect("streaming call")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("first message in time")
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    grpc.reporter
        .set_service_status("concord.Test", tonic_health::ServingStatus::NotServing)
        .await;
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("second message in time")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
}

#[tokio::test]
async fn dev_runs_a_gateway_beside_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["dev", "--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
        .args(["--gateway-addr", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn concord dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.strip_prefix("concord listening: client=") {
                let _ = tx.send(("node", rest.split_whitespace().next().unwrap().to_owned()));
            } else if let Some(rest) = line.strip_prefix("concord gateway listening: ") {
                let _ = tx.send((
                    "gateway",
                    rest.split_whitespace().next().unwrap().to_owned(),
                ));
            }
        }
    });
    let mut urls = HashMap::new();
    while urls.len() < 2 {
        let (what, url) = rx
            .recv_timeout(START_DEADLINE)
            .expect("both listening lines");
        urls.insert(what, url);
    }
    let node = urls["node"].clone();
    let gateway = urls["gateway"].clone();
    let b = Backend::start("beside");
    eventually(START_DEADLINE, "the dev node and its gateway route", || {
        let (node, gateway, port) = (node.clone(), gateway.clone(), b.addr.port());
        async move {
            call(
                Method::PUT,
                &format!("{node}/v1/services/beside/instances/b1"),
                Some(json!({"address": "127.0.0.1", "port": port})),
            )
            .await;
            call(
                Method::PUT,
                &format!("{node}/v1/gateway/routes/beside"),
                Some(json!({"match": {}, "service": "beside"})),
            )
            .await;
            let resp = reqwest::get(format!("{gateway}/x")).await.ok()?;
            (backend_of(resp.headers()) == "beside").then_some(())
        }
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dev did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn keeps_serving_the_last_good_state_when_concord_is_down() {
    let mut s = Server::dev().await;
    let gw = Gateway::start(&s);
    let b = Backend::start("steady");
    register(&s, "steady", "s1", &b, &[], 100).await;
    route(&s, &gw, "steady", json!({"match": {}, "service": "steady"})).await;
    gw.wait_endpoints("steady", &[], 1).await;
    s.kill9();
    let counts = spread(&gw, "/", 40, 2).await;
    assert_eq!(counts.get("steady"), Some(&40), "{counts:?}");
    let routes = gw.admin_json("/admin/routes").await;
    assert_eq!(routes["routes"][0]["name"], "steady");
}

/// The breaker state routes keep for `service`'s target, from `/admin/upstreams`.
async fn breaker_state(gw: &Gateway, service: &str) -> String {
    let ups = gw.admin_json("/admin/upstreams").await;
    let u = ups["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["service"] == service))
        .cloned()
        .unwrap_or(Value::Null);
    u["circuit_breakers"][0]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_failing_service_opens_the_circuit_breaker_until_trials_succeed() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let b1 = Backend::start("flaky-1");
    b1.set_failing(true);
    register(&s, "flaky", "f1", &b1, &[], 100).await;
    route(
        &s,
        &gw,
        "cb",
        json!({"match": {"path_prefix": "/cb"}, "service": "flaky",
               "circuit_breaker": {"min_requests": 5, "window_secs": 10,
                                   "open_secs": 2, "half_open_requests": 2}}),
    )
    .await;
    gw.wait_endpoints("flaky", &[], 1).await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let (st, _, _, _) = send(http.get(gw.url("/cb"))).await;
        assert_eq!(st, 500);
    }
    assert_eq!(b1.hits(), 5);
    // Open: answered by the gateway, the service is not contacted.
    for _ in 0..10 {
        let (st, _, b, _) = send(http.get(gw.url("/cb"))).await;
        assert_eq!(st, 503, "{b}");
        assert_eq!(b["error"]["code"], "circuit_open");
    }
    assert_eq!(b1.hits(), 5);
    assert_eq!(breaker_state(&gw, "flaky").await, "open");
    let (_, _, _, metrics) = send(http.get(format!("{}/metrics", gw.admin))).await;
    assert!(
        metrics.contains(
            "concord_gateway_circuit_breaker_state{route=\"cb\",target=\"default/flaky\"} 1"
        ),
        "{metrics}"
    );

    // Healthy again; after open_secs the half-open trials close it.
    b1.set_failing(false);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(breaker_state(&gw, "flaky").await, "half_open");
    for _ in 0..2 {
        let (st, h, _, _) = send(http.get(gw.url("/cb"))).await;
        assert_eq!((st, backend_of(&h).as_str()), (200, "flaky-1"));
    }
    assert_eq!(breaker_state(&gw, "flaky").await, "closed");
    for _ in 0..10 {
        let (st, _, _, _) = send(http.get(gw.url("/cb"))).await;
        assert_eq!(st, 200);
    }
    assert_eq!(b1.hits(), 17);
}

/// The outlier ejections `/admin/upstreams` lists for `service`.
async fn ejections(gw: &Gateway, service: &str) -> Vec<Value> {
    let ups = gw.admin_json("/admin/upstreams").await;
    ups["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["service"] == service))
        .and_then(|u| u["ejections"].as_array().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn consecutive_failures_eject_an_endpoint_until_its_time_is_up() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let good = Backend::start("good");
    let bad = Backend::start("bad");
    bad.set_failing(true);
    register(&s, "ej", "good", &good, &[], 100).await;
    register(&s, "ej", "bad", &bad, &[], 100).await;
    route(
        &s,
        &gw,
        "ej",
        json!({"match": {"path_prefix": "/ej"}, "service": "ej", "lb": "round_robin",
               "retries": {"attempts": 0},
               "outlier": {"consecutive_failures": 3, "base_ejection_secs": 2,
                           "max_ejection_percent": 50}}),
    )
    .await;
    gw.wait_endpoints("ej", &[], 2).await;
    let http = reqwest::Client::new();
    // Round robin alternates, so the third 500 comes within six requests.
    let mut failures = 0;
    for _ in 0..6 {
        let (st, _, _, _) = send(http.get(gw.url("/ej"))).await;
        failures += usize::from(st == 500);
    }
    assert_eq!((failures, bad.hits()), (3, 3));
    let ejected = ejections(&gw, "ej").await;
    assert_eq!(ejected.len(), 1, "{ejected:?}");
    assert_eq!(ejected[0]["endpoint"], "bad");
    assert_eq!(ejected[0]["times_ejected"], 1);

    // Ejected: every request goes to the healthy endpoint.
    let good_before = good.hits();
    for _ in 0..20 {
        let (st, h, _, _) = send(http.get(gw.url("/ej"))).await;
        assert_eq!((st, backend_of(&h).as_str()), (200, "good"));
    }
    assert_eq!((bad.hits(), good.hits() - good_before), (3, 20));
    let (_, _, _, metrics) = send(http.get(format!("{}/metrics", gw.admin))).await;
    assert!(
        metrics.contains("concord_gateway_ejections_total{route=\"ej\"} 1"),
        "{metrics}"
    );

    // Healthy again: after its ejection time it gets traffic again.
    bad.set_failing(false);
    eventually(
        Duration::from_secs(10),
        "the ejected endpoint gets traffic again",
        || async {
            let (st, h, _, _) = send(http.get(gw.url("/ej"))).await;
            (st == 200 && backend_of(&h) == "bad").then_some(())
        },
    )
    .await;
    assert!(ejections(&gw, "ej").await.is_empty());
}

#[tokio::test]
async fn a_sticky_cookie_keeps_a_client_on_one_endpoint() {
    let s = Server::dev().await;
    let gw = Gateway::start(&s);
    let b1 = Backend::start("st-1");
    let b2 = Backend::start("st-2");
    register(&s, "st", "s1", &b1, &[], 100).await;
    register(&s, "st", "s2", &b2, &[], 100).await;
    route(
        &s,
        &gw,
        "st",
        json!({"match": {"path_prefix": "/st"}, "service": "st", "lb": "round_robin",
               "sticky": {"cookie": "srv", "ttl_secs": 60}}),
    )
    .await;
    gw.wait_endpoints("st", &[], 2).await;
    let http = reqwest::Client::new();
    let (st, h, _, _) = send(http.get(gw.url("/st"))).await;
    assert_eq!(st, 200);
    let first = backend_of(&h);
    let set_cookie = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a Set-Cookie on the first answer")
        .to_owned();
    assert!(
        set_cookie.starts_with("srv=") && set_cookie.ends_with("; Path=/; Max-Age=60; HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Round robin would alternate; the cookie keeps every request on one.
    for _ in 0..20 {
        let req = http
            .get(gw.url("/st"))
            .header("cookie", format!("a=1; {cookie}"));
        let (st, h, _, _) = send(req).await;
        assert_eq!((st, backend_of(&h)), (200, first.clone()));
        assert!(h.get("set-cookie").is_none(), "a valid cookie is not reset");
    }
    let (a, b) = (b1.hits(), b2.hits());
    assert_eq!((a.max(b), a.min(b)), (21, 0));

    // A cookie naming no endpoint is replaced.
    let req = http
        .get(gw.url("/st"))
        .header("cookie", "srv=0123456789abcdef");
    let (st, h, _, _) = send(req).await;
    assert_eq!(st, 200);
    let renewed = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(renewed.starts_with("srv="), "{renewed}");
}

/// The endpoints (instance id, `host:port`) the gateway lists for `service`.
async fn endpoints_of(gw: &Gateway, service: &str) -> Vec<(String, String)> {
    let ups = gw.admin_json("/admin/upstreams").await;
    ups["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["service"] == service))
        .and_then(|u| u["endpoints"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (field("id"), field("addr"))
        })
        .collect()
}

/// Waits until `backend` has received no request for `window`.
async fn wait_quiet(backend: &Backend, window: Duration) {
    let mut last = (backend.hits(), Instant::now());
    eventually(
        Duration::from_secs(20),
        &format!("{} stops getting requests", backend.name),
        || {
            let hits = backend.hits();
            if hits != last.0 {
                last = (hits, Instant::now());
            }
            let quiet = last.1.elapsed() >= window;
            async move { quiet.then_some(()) }
        },
    )
    .await;
}

/// Waits until `backend` has received `n` more requests.
async fn wait_hits(backend: &Backend, n: usize) {
    let target = backend.hits() + n;
    eventually(
        Duration::from_secs(20),
        &format!("{} gets {n} requests", backend.name),
        || {
            let hits = backend.hits();
            async move { (hits >= target).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    let s = Server::dev().await;
    let gw = Gateway::start_threads(&s, 1);
    let ids = ["w1", "w2", "w3"];
    let mut backends: Vec<Backend> = ids
        .iter()
        .map(|id| Backend::start(&format!("{id}-old")))
        .collect();
    for (id, b) in ids.iter().zip(&backends) {
        register(&s, "web", id, b, &[], 100).await;
    }
    route(&s, &gw, "web", json!({"match": {}, "service": "web"})).await;
    gw.wait_endpoints("web", &[], 3).await;

    // Steady load: a few clients, until told to stop (at most 60 s).
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (http, url, stop) = (http.clone(), gw.url("/web/x"), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, usize> = HashMap::new();
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let key = match http.get(&url).send().await {
                    Ok(resp) if resp.status() == 200 => {
                        let name = backend_of(resp.headers());
                        match resp.bytes().await {
                            Ok(_) => name,
                            Err(e) => format!("failed: body: {e}"),
                        }
                    }
                    Ok(resp) => format!("failed: status {}", resp.status()),
                    Err(e) => format!("failed: {e}"),
                };
                *seen.entry(key).or_default() += 1;
            }
            seen
        }));
    }
    for b in &backends {
        wait_hits(b, 20).await;
    }

    let maintenance = |id: &str, enabled: bool| {
        let url = s.url(&format!("/v1/services/web/instances/{id}/maintenance"));
        async move {
            let (st, _, body) = call(
                Method::PUT,
                &url,
                Some(json!({"enabled": enabled, "reason": "restart"})),
            )
            .await;
            assert_eq!(st, 200, "maintenance {enabled}: {body}");
        }
    };
    for (i, id) in ids.iter().enumerate() {
        maintenance(id, true).await;
        eventually(
            Duration::from_secs(20),
            &format!("the gateway drops {id}"),
            || async { (!endpoints_of(&gw, "web").await.iter().any(|e| e.0 == *id)).then_some(()) },
        )
        .await;
        // Requests picked just before the change have finished once it is quiet.
        wait_quiet(&backends[i], Duration::from_millis(300)).await;
        backends[i].kill();

        // The new version comes up on a new port; maintenance survives the
        // re-registration, so it gets no traffic until it is turned off.
        let fresh = Backend::start(&format!("{id}-new"));
        register(&s, "web", id, &fresh, &[], 100).await;
        maintenance(id, false).await;
        let addr = fresh.addr.to_string();
        eventually(
            Duration::from_secs(20),
            &format!("the gateway sends {id} to {addr}"),
            || async {
                let eps = endpoints_of(&gw, "web").await;
                (eps.len() == 3 && eps.contains(&(id.to_string(), addr.clone()))).then_some(())
            },
        )
        .await;
        wait_hits(&fresh, 20).await;
        backends[i] = fresh;
    }

    stop.store(true, Ordering::SeqCst);
    let (total, failed) = tally(workers, "failed").await;
    assert_eq!(failed, 0, "failed requests during the restarts: {total:?}");
    for id in ids {
        for generation in ["old", "new"] {
            let name = format!("{id}-{generation}");
            assert!(
                total.get(&name).copied().unwrap_or(0) >= 20,
                "{name}: {total:?}"
            );
        }
    }
}

/// Sums the outcome counts of finished load workers; also returns how many of
/// them were failures (outcomes whose name starts with `failure_prefix`).
async fn tally(
    workers: Vec<tokio::task::JoinHandle<HashMap<String, usize>>>,
    failure_prefix: &str,
) -> (HashMap<String, usize>, usize) {
    let mut total: HashMap<String, usize> = HashMap::new();
    for w in workers {
        for (k, v) in w.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    let failed = total
        .iter()
        .filter(|(k, _)| k.starts_with(failure_prefix))
        .map(|(_, v)| v)
        .sum();
    (total, failed)
}
