//! `concord demo` end to end: the real binary starts a node, the gateway and two
//! instances of each shop service as child processes; everything the shop does
//! is driven through the gateway only (the server's API is used for what an
//! operator does: publish config, read transactions, the registry).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{START_DEADLINE, bin, call, eventually, get};

/// A running `concord demo` on free loopback ports and a temporary data dir.
struct Demo {
    child: Option<Child>,
    server: String,
    gateway: String,
    /// Child pids by service, as the demo printed them.
    pids: BTreeMap<String, Vec<u32>>,
    _tmp: tempfile::TempDir,
}

impl Demo {
    /// Starts the demo and waits for its `concord demo ready:` line (printed once
    /// every instance passes its health check and answers through the gateway).
    fn start() -> Demo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(bin())
            .args([
                "demo",
                "--addr",
                "127.0.0.1:0",
                "--peer-addr",
                "127.0.0.1:0",
            ])
            .args(["--gateway-addr", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("demo"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn concord demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("concord demo ready: ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let mut demo = Demo {
            child: Some(child),
            server: String::new(),
            gateway: String::new(),
            pids: BTreeMap::new(),
            _tmp: tmp,
        };
        let line = rx
            .recv_timeout(START_DEADLINE)
            .expect("concord demo printed its ready line");
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .collect();
        demo.server = fields["server"].to_owned();
        demo.gateway = fields["gateway"].to_owned();
        for service in ["users", "inventory", "orders"] {
            let pids = fields[service]
                .split(',')
                .map(|p| p.parse().expect("pid"))
                .collect::<Vec<u32>>();
            assert_eq!(pids.len(), 2, "two instances of {service}: {line}");
            demo.pids.insert(service.to_owned(), pids);
        }
        demo
    }

    fn gw(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    fn srv(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn all_pids(&self) -> Vec<u32> {
        self.pids.values().flatten().copied().collect()
    }
}

impl Drop for Demo {
    /// On a failed assertion: SIGKILL the demo; its children see their stdin
    /// close and exit on their own, and are killed too in case they hang.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            for pid in self.all_pids() {
                signal(pid, "-KILL");
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = call(Method::POST, url, Some(body)).await;
    (status, body)
}

/// (balance of `user`, stock of `sku`), read through the gateway.
async fn balance_and_stock(demo: &Demo, user: i64, sku: &str) -> (i64, i64) {
    let (st, _, u) = get(&demo.gw(&format!("/api/users/users/{user}"))).await;
    assert_eq!(st, 200, "{u}");
    let (st, _, i) = get(&demo.gw(&format!("/api/inventory/items/{sku}"))).await;
    assert_eq!(st, 200, "{i}");
    (u["balance"].as_i64().unwrap(), i["stock"].as_i64().unwrap())
}

async fn create_user(demo: &Demo, name: &str, balance: i64) -> i64 {
    let (st, body) = post(
        &demo.gw("/api/users/users"),
        json!({"name": name, "balance": balance}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body["id"].as_i64().expect("user id")
}

async fn order(demo: &Demo, user: i64, sku: &str, quantity: i64) -> (u16, Value) {
    let body = json!({"user_id": user, "sku": sku, "quantity": quantity});
    post(&demo.gw("/api/orders/orders"), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_demo_places_orders_compensates_follows_config_and_survives_a_killed_instance() {
    let started = Instant::now();
    let mut demo = Demo::start();
    eprintln!("demo ready after {:?}", started.elapsed());

    // A user and an item, through the gateway.
    let bob = create_user(&demo, "bob", 1000).await;
    let carol = create_user(&demo, "carol", 5).await;
    let (st, body) = post(
        &demo.gw("/api/inventory/items"),
        json!({"sku": "pen", "stock": 50, "price": 9}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(balance_and_stock(&demo, bob, "pen").await, (1000, 50));

    // An order: stock and balance drop by exactly quantity and price * quantity.
    let (st, placed) = order(&demo, bob, "pen", 3).await;
    assert_eq!(st, 201, "{placed}");
    assert_eq!(placed["status"], "confirmed", "{placed}");
    assert_eq!(balance_and_stock(&demo, bob, "pen").await, (973, 47));
    let id = placed["id"].as_i64().expect("order id");
    let (st, _, shown) = get(&demo.gw(&format!("/api/orders/orders/{id}"))).await;
    assert_eq!(st, 200, "{shown}");
    assert_eq!(shown["status"], "confirmed", "{shown}");
    assert_eq!(
        shown["user_name"], "bob",
        "the name comes from users: {shown}"
    );
    assert_eq!(shown["amount"], 27, "{shown}");

    // One the balance cannot cover: 409, the reservation is compensated, and
    // the coordinator lists the saga as aborted.
    let (st, refused) = order(&demo, carol, "pen", 1).await;
    assert_eq!(st, 409, "{refused}");
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("balance"),
        "{refused}"
    );
    assert_eq!(balance_and_stock(&demo, carol, "pen").await, (5, 47));
    let txn = refused["transaction"]
        .as_str()
        .expect("transaction id")
        .to_owned();
    let (st, _, view) = get(&demo.srv(&format!("/v1/transactions/{txn}"))).await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["status"], "aborted", "{view}");
    assert_eq!(view["steps"][0]["status"], "compensated", "{view}");
    assert_eq!(view["steps"][1]["status"], "refused", "{view}");
    let (_, _, aborted) = get(&demo.srv("/v1/transactions?status=aborted")).await;
    assert!(
        aborted["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == txn.as_str()),
        "{aborted}"
    );

    // A config change: once both orders instances apply it (they say so on
    // /settings), the next order over it is refused and nothing moves.
    let (st, _, published) = crate::support::call_raw(
        Method::PUT,
        &demo.srv("/v1/config/shop/orders/settings.json?format=json"),
        br#"{"max_quantity_per_order": 2}"#.to_vec(),
    )
    .await;
    assert_eq!(st, 200, "{published}");
    let applied = RefCell::new(BTreeSet::new());
    eventually(
        Duration::from_secs(15),
        "both orders instances apply the new limit",
        || {
            let url = demo.gw("/api/orders/settings");
            let applied = &applied;
            async move {
                let (_, _, s) = get(&url).await;
                let mut applied = applied.borrow_mut();
                if s["max_quantity_per_order"] == 2 {
                    applied.insert(s["instance"].as_str().unwrap_or_default().to_owned());
                }
                (applied.len() == 2).then_some(())
            }
        },
    )
    .await;
    let (st, over) = order(&demo, bob, "pen", 3).await;
    assert_eq!(st, 409, "{over}");
    assert!(
        over["reason"]
            .as_str()
            .unwrap()
            .contains("max_quantity_per_order"),
        "{over}"
    );
    assert_eq!(balance_and_stock(&demo, bob, "pen").await, (973, 47));

    // SIGKILL one inventory instance: it cannot deregister. Every order must
    // still succeed, first time, with no retry by the test: the gateway only
    // talks to orders (both alive); orders reads the price through
    // ServiceClient, which retries a refused connect or a broken keep-alive
    // connection (GET only) on the other instance; the coordinator's saga calls to the dead instance fail to
    // connect and are retried (backoff, up to 10 attempts, a random passing
    // instance each time) until the health check takes it out after two
    // failed probes (about 2 s). So any non-201 here is a bug, not noise.
    let victim = demo.pids["inventory"][0];
    signal(victim, "-KILL");
    let killed = Instant::now();
    let orders = 12;
    let mut retried = 0;
    for n in 0..orders {
        let (st, body) = order(&demo, bob, "pen", 1).await;
        assert_eq!(st, 201, "order {n} after the kill: {body}");
        let txn = body["transaction"].as_str().expect("transaction id");
        let (_, _, view) = get(&demo.srv(&format!("/v1/transactions/{txn}"))).await;
        let history = view["history"].as_array().expect("history");
        retried += usize::from(history.iter().any(|h| h["outcome"] == "failed"));
    }
    eprintln!(
        "{orders} orders in {:?} after the kill; {retried} of them retried a saga call",
        killed.elapsed()
    );
    eventually(
        Duration::from_secs(15),
        "the killed instance leaves discovery",
        || {
            let url = demo.srv("/v1/services/inventory?passing=true");
            async move {
                let (_, _, s) = get(&url).await;
                (s["instances"].as_array().map(Vec::len) == Some(1)).then_some(())
            }
        },
    )
    .await;
    let (st, body) = order(&demo, bob, "pen", 1).await;
    assert_eq!(st, 201, "{body}");
    // Exactly one effect per order, retries and all.
    assert_eq!(
        balance_and_stock(&demo, bob, "pen").await,
        (973 - 9 * (orders + 1), 47 - (orders + 1))
    );

    // SIGTERM: the demo stops its instances, the gateway and the node, and exits 0.
    let mut child = demo.child.take().expect("demo running");
    let term_sent = Instant::now();
    signal(child.id(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("concord demo did not exit within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "concord demo exited with {status}");
    eprintln!("demo exited {:?} after SIGTERM", term_sent.elapsed());
    for pid in demo.all_pids() {
        assert!(!alive(pid), "instance pid {pid} outlived the demo");
    }
    eprintln!("demo test took {:?}", started.elapsed());
}
