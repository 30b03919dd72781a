//! `concord demo`: a single node, the gateway beside it, and the shop
//! ([`concord_shop`]) running as child processes behind it, seeded and ready for
//! the README's tour.
//!
//! Order of start: node, gateway, config items and routes (so instances find
//! their settings and traffic finds a route), the first instance of every
//! service, then the others (the first one creates each shared SQLite database
//! and switches it to WAL while nobody else has it open), then the seed data,
//! through the gateway. Order of stop: instances (they deregister), gateway
//! (drains), node.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use concord_client::api::config::ConfigFormat;
use concord_client::api::gateway::RouteSpec;
use concord_client::api::registry::InstanceFilter;
use concord_client::{Client, PublishOptions};
use concord_server::ServerConfig;
use concord_shop::{CONFIG_NAMESPACE, SETTINGS_ID, Service};
use serde_json::json;

use crate::cli::DemoArgs;
use crate::signal::shutdown_signal;

mod child;

use child::Child;

/// How long the demo waits for the node to elect itself, and for every
/// instance to be registered, passing and reachable through the gateway.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between readiness polls.
const POLL: Duration = Duration::from_millis(50);

/// KV key remembering the seeded user, so a second run on the same data
/// directory does not create another one.
const SEED_KEY: &str = "shop-demo/seed";

/// The seeded item: 20 in stock at 15, so 2 cost 30 and 8 cost more than what
/// is left of the seeded balance after that.
const SEED_SKU: &str = "book";

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut config = ServerConfig {
        node_id: 1,
        data_dir: data_dir.join("node"),
        client_addr: args.addr,
        peer_addr: args.peer_addr,
        bootstrap: true,
        dns_addr: args.dns_addr,
        ..ServerConfig::default()
    };
    // A killed instance leaves discovery after two failed probes; keep the
    // transaction history for the whole session.
    config.txn_retention = Duration::from_secs(24 * 3600);
    let server = concord_server::start(config)
        .await
        .context("cannot start the node")?;
    let server_url = format!("http://{}", reachable(server.client_addr));
    let client = Client::new(&server_url);
    let gateway = concord_gateway::start(concord_gateway::GatewayConfig {
        server: server_url.clone(),
        listen: args.gateway_addr,
        ..concord_gateway::GatewayConfig::default()
    })
    .await
    .context("cannot start the gateway")?;
    let gateway_url = format!("http://{}", reachable(gateway.listen_addr()));

    let started = start_shop(&args, &client, &server_url, &gateway_url).await;
    let (children, seed) = match started {
        Ok(started) => started,
        Err(err) => {
            gateway.shutdown().await;
            let _ = server.shutdown().await;
            return Err(err);
        }
    };
    let text = banner(
        &server_url,
        &gateway_url,
        &data_dir,
        &children,
        &seed,
        server.dns_addr,
    );
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    let failure = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!("received {signal}, stopping the shop, the gateway and the node");
            None
        }
        reason = server.fatal_error() => {
            tracing::error!("{reason}; shutting down");
            Some(reason)
        }
    };
    stop_children(children).await;
    gateway.shutdown().await;
    server.shutdown().await.context("clean shutdown failed")?;
    tracing::info!("stopped");
    match failure {
        Some(reason) => bail!("{reason}"),
        None => Ok(()),
    }
}

/// What was seeded, for the tour's curl lines.
struct Seed {
    user_id: i64,
}

/// Config, routes, instances, readiness, seed. On failure the instances already
/// started are stopped.
async fn start_shop(
    args: &DemoArgs,
    client: &Client,
    server_url: &str,
    gateway_url: &str,
) -> anyhow::Result<(Vec<Child>, Seed)> {
    wait_until("the node is ready", || async {
        client.ready().await.is_ok()
    })
    .await?;
    publish_settings(client).await?;
    put_routes(client).await?;
    let exe = std::env::current_exe().context("cannot find the concord executable")?;
    let mut children = Vec::new();
    let result = async {
        for n in 1..=args.instances {
            // One round at a time: the first round creates the databases.
            let round = Service::ALL.map(|service| {
                let dir = args.data_dir.join("shop").join(service.as_str());
                let id = format!("{service}-{n}");
                let exe = exe.clone();
                async move { Child::spawn(&exe, service, &id, server_url, &dir).await }
            });
            for child in futures::future::join_all(round).await {
                children.push(child?);
            }
        }
        let http = reqwest::Client::new();
        for service in Service::ALL {
            wait_passing(client, service, usize::from(args.instances)).await?;
            let url = format!("{gateway_url}/api/{service}/health");
            let what = format!("{service} answers through the gateway");
            wait_until(&what, || async {
                matches!(http.get(&url).send().await, Ok(r) if r.status().is_success())
            })
            .await?;
        }
        seed(client, &http, gateway_url).await
    }
    .await;
    match result {
        Ok(seed) => Ok((children, seed)),
        Err(err) => {
            stop_children(children).await;
            Err(err)
        }
    }
}

/// Publishes each service's default settings, unless an earlier run (or the
/// user) already did: a restart keeps what was changed.
async fn publish_settings(client: &Client) -> anyhow::Result<()> {
    for service in Service::ALL {
        let group = service.as_str();
        if client
            .config_get(CONFIG_NAMESPACE, group, SETTINGS_ID)
            .await?
            .is_some()
        {
            continue;
        }
        let content = serde_json::to_string_pretty(&service.default_settings())?;
        let options = PublishOptions {
            cas: Some(0),
            comment: Some("concord demo defaults".to_owned()),
        };
        client
            .config_put(
                CONFIG_NAMESPACE,
                group,
                SETTINGS_ID,
                ConfigFormat::Json,
                &content,
                &options,
            )
            .await
            .with_context(|| format!("cannot publish {CONFIG_NAMESPACE}/{group}/{SETTINGS_ID}"))?;
    }
    Ok(())
}

/// `/api/<service>/...` to the service, prefix stripped.
///
/// Round robin rather than the default `p2c_ewma`: with two instances, power
/// of two choices always compares both and keeps sending sequential traffic to
/// the one with the lower latency estimate, so the tour would never see the
/// other one answer. POSTs are not idempotent, but a request whose connection
/// was refused never reached the instance, so retrying connect failures
/// elsewhere is safe for every method.
async fn put_routes(client: &Client) -> anyhow::Result<()> {
    for service in Service::ALL {
        let route: RouteSpec = serde_json::from_value(json!({
            "match": {"path_prefix": format!("/api/{service}")},
            "service": service.as_str(),
            "strip_prefix": true,
            "lb": "round_robin",
            "retries": {"attempts": 2, "on": ["connect_failure"], "non_idempotent": true},
        }))
        .context("the demo's route does not parse")?;
        client
            .route_put(service.as_str(), &route)
            .await
            .with_context(|| format!("cannot store the route {service}"))?;
    }
    Ok(())
}

/// Waits until `count` instances of `service` pass their health check.
async fn wait_passing(client: &Client, service: Service, count: usize) -> anyhow::Result<()> {
    let filter = InstanceFilter {
        passing: true,
        ..InstanceFilter::default()
    };
    let what = format!("{count} instances of {service} pass their health check");
    wait_until(&what, || async {
        matches!(client.discover(service.as_str(), &filter).await, Ok(d) if d.instances.len() >= count)
    })
    .await
}

/// Creates the demo's user and item through the gateway, once per data directory.
async fn seed(client: &Client, http: &reqwest::Client, gateway_url: &str) -> anyhow::Result<Seed> {
    let item = json!({"sku": SEED_SKU, "stock": 20, "price": 15});
    let answer = http
        .post(format!("{gateway_url}/api/inventory/items"))
        .json(&item)
        .send()
        .await?;
    // 409: an earlier run created it.
    if !answer.status().is_success() && answer.status() != reqwest::StatusCode::CONFLICT {
        bail!(
            "cannot create the demo item: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
    }
    if let Some(stored) = client.kv_get(SEED_KEY).await? {
        let seed: serde_json::Value = serde_json::from_slice(&stored.value_bytes())?;
        if let Some(user_id) = seed["user_id"].as_i64() {
            return Ok(Seed { user_id });
        }
    }
    let user = json!({"name": "alice", "balance": 100});
    let answer = http
        .post(format!("{gateway_url}/api/users/users"))
        .json(&user)
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!(
            "cannot create the demo user: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
    }
    let created: serde_json::Value = answer.json().await?;
    let user_id = created["id"]
        .as_i64()
        .context("the user id is not a number")?;
    client
        .kv_put(SEED_KEY, json!({"user_id": user_id}).to_string())
        .await?;
    Ok(Seed { user_id })
}

/// Stops every instance at once and waits for all of them.
async fn stop_children(children: Vec<Child>) {
    futures::future::join_all(children.into_iter().map(Child::stop)).await;
}

/// Polls `ready` every 50 ms until it holds, for at most [`START_TIMEOUT`].
async fn wait_until<F, Fut>(what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {START_TIMEOUT:?} waiting until {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The machine-readable line (first), then the tour with curl lines that work
/// as printed.
fn banner(
    server: &str,
    gateway: &str,
    data_dir: &Path,
    children: &[Child],
    seed: &Seed,
    dns: Option<SocketAddr>,
) -> String {
    let pids = |service: Service| {
        children
            .iter()
            .filter(|c| c.service == service)
            .map(|c| c.pid.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let instances: String = children
        .iter()
        .map(|c| format!("    {:<12} pid {:<8} http://{}\n", c.id, c.pid, c.addr))
        .collect();
    let dns_field = dns.map(|d| format!(" dns={d}")).unwrap_or_default();
    let user = seed.user_id;
    let victim = children
        .iter()
        .find(|c| c.service == Service::Inventory)
        .map_or(0, |c| c.pid);
    let order = |quantity: u32| {
        format!(
            "curl -s -X POST {gateway}/api/orders/orders -d '{{\"user_id\":{user},\"sku\":\"{SEED_SKU}\",\"quantity\":{quantity}}}'"
        )
    };
    format!(
        "concord demo ready: server={server} gateway={gateway}{dns_field} user={user} sku={SEED_SKU} \
         users={} inventory={} orders={}\n\
         \n\
         The shop is running (data in {}):\n\
         \x20 Concord API: {server}/v1/\n\
         \x20 gateway:     {gateway}   (/api/users, /api/inventory, /api/orders)\n\
         \x20 instances:\n{instances}\
         \x20 seeded:      user {user} (alice, balance 100 at first); item {SEED_SKU} (20 in stock at 15)\n\
         \n\
         Try it:\n\
         \x20 # look around\n\
         \x20 curl -s {gateway}/api/users/users/{user}\n\
         \x20 curl -s {gateway}/api/inventory/items/{SEED_SKU}\n\
         \x20 # place an order: a saga reserves stock, debits the balance, confirms (201)\n\
         \x20 {}\n\
         \x20 curl -s {gateway}/api/orders/orders/1         # the first order, with the buyer's name\n\
         \x20 # one the balance cannot cover: 409, the stock reservation is compensated\n\
         \x20 {}\n\
         \x20 curl -s '{server}/v1/transactions?status=aborted'\n\
         \x20 # change a setting: the next order over it is refused at once\n\
         \x20 curl -s -X PUT '{server}/v1/config/shop/orders/settings.json?format=json' -d '{{\"max_quantity_per_order\":1}}'\n\
         \x20 {}\n\
         \x20 # kill an instance: orders keep going (retries, then the health check takes it out)\n\
         \x20 kill -9 {victim}\n\
         \x20 {}\n\
         \x20 curl -s {server}/v1/services/inventory\n\
         Press Ctrl-C to stop everything.\n",
        pids(Service::Users),
        pids(Service::Inventory),
        pids(Service::Orders),
        data_dir.display(),
        order(2),
        order(8),
        order(2),
        order(1),
    )
}

/// An address a local client can connect to: a wildcard bind becomes loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}
