//! Running one instance: bind, open the database, serve, register; and the
//! reverse on shutdown.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use concord_client::api::registry::{CheckSpec, CheckType, InstanceSpec};
use concord_client::{Client, ConfigWatcher, Registration};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{CONFIG_NAMESPACE, Options, SETTINGS_ID, Service, ShopError, http};

/// How long in-flight requests get to finish once the instance is deregistered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for Concord to confirm the deregistration.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// Lease TTL of the registration: a process that dies without deregistering
/// (SIGKILL) leaves the registry this long after its last heartbeat.
const TTL_SECS: u32 = 10;

/// A running instance of a shop service: serving, registered, following its
/// settings. Call [`ShopServer::shutdown`] to leave cleanly.
pub struct ShopServer {
    service: Service,
    instance_id: String,
    addr: SocketAddr,
    registration: Registration,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl ShopServer {
    /// Starts an instance of `service`: opens its database, starts following its
    /// settings, serves on `options.listen`, then registers with an HTTP health
    /// check on `/health` (only once it can answer, so its first probe passes).
    pub async fn start(service: Service, options: Options) -> Result<ShopServer, ShopError> {
        let client = Client::with_servers(options.servers.clone());
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ShopError::Listen {
                addr: options.listen,
                source,
            })?;
        let addr = reachable(listener.local_addr()?);
        let app = match service {
            Service::Users => crate::users::router(&client, &options).await?,
            Service::Inventory => crate::inventory::router(&client, &options).await?,
            Service::Orders => crate::orders::router(&client, &options).await?,
        };
        let app: Router = app.route("/health", get(http::health));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let spec = instance_spec(addr);
        let registration =
            Registration::start(client, service.as_str(), &options.instance_id, spec)
                .await
                .map_err(|e| ShopError::Registry {
                    what: "register",
                    instance: format!("{service}/{}", options.instance_id),
                    reason: e.to_string(),
                })?;
        tracing::info!(%service, id = %options.instance_id, %addr, "registered");
        Ok(ShopServer {
            service,
            instance_id: options.instance_id,
            addr,
            registration,
            stop,
            serving,
        })
    }

    /// Where the instance listens (a wildcard bind reported as loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Deregisters first, so the gateway, the coordinator and other services stop
    /// picking this instance, then lets in-flight requests finish (at most 10 s).
    ///
    /// Deregistering gets at most 3 s: when Concord is down too
    /// (the whole demo was killed) the SDK would keep failing over for its full
    /// budget, and the registration's lease removes the instance anyway.
    pub async fn shutdown(self) -> Result<(), ShopError> {
        let deregistered =
            match tokio::time::timeout(DEREGISTER_TIMEOUT, self.registration.shutdown()).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "no answer within {DEREGISTER_TIMEOUT:?}; the lease expires within {TTL_SECS} s"
                )),
            };
        let _ = self.stop.send(());
        match tokio::time::timeout(DRAIN_TIMEOUT, self.serving).await {
            Ok(Ok(result)) => result.map_err(|e| ShopError::Serve(e.to_string()))?,
            Ok(Err(join)) => {
                return Err(ShopError::Serve(format!("the serving task failed: {join}")));
            }
            Err(_) => {
                tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; leaving them")
            }
        }
        deregistered.map_err(|reason| ShopError::Registry {
            what: "deregister",
            instance: format!("{}/{}", self.service, self.instance_id),
            reason,
        })?;
        tracing::info!(service = %self.service, id = %self.instance_id, "stopped");
        Ok(())
    }
}

/// The registration: ephemeral (the lease outlives a crash by [`TTL_SECS`] at
/// most), with an HTTP check every second that takes an instance out of
/// discovery after two failed probes, so a killed instance stops getting
/// traffic within about two seconds even before its lease runs out.
fn instance_spec(addr: SocketAddr) -> InstanceSpec {
    let check = CheckSpec {
        id: "http".to_owned(),
        kind: CheckType::Http,
        url: Some(format!("http://{addr}/health")),
        method: None,
        expect_status: None,
        headers: BTreeMap::new(),
        address: None,
        service: None,
        interval_secs: Some(1),
        timeout_ms: Some(500),
        ttl_secs: None,
    };
    InstanceSpec {
        address: addr.ip().to_string(),
        port: addr.port(),
        meta: BTreeMap::from([("pid".to_owned(), std::process::id().to_string())]),
        ttl_secs: Some(TTL_SECS),
        checks: vec![check],
        healthy_threshold: Some(1),
        unhealthy_threshold: Some(2),
        ..InstanceSpec::default()
    }
}

/// A wildcard bind (0.0.0.0, ::) is registered as loopback: the registry needs
/// an address others can dial.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    addr
}

/// Follows `shop/<service>/settings.json` and logs each change, so the effect of
/// a publish shows in the instance's log.
pub(crate) async fn watch_settings<T>(
    client: &Client,
    service: Service,
) -> Result<Arc<ConfigWatcher<T>>, ShopError>
where
    T: DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let watcher = ConfigWatcher::<T>::start(
        client.clone(),
        CONFIG_NAMESPACE,
        service.as_str(),
        SETTINGS_ID,
        None,
    )
    .await
    .map_err(|source| ShopError::Config {
        item: format!("{CONFIG_NAMESPACE}/{service}/{SETTINGS_ID}"),
        source,
    })?;
    let mut updates = watcher.subscribe();
    tracing::info!(%service, settings = ?watcher.current(), "settings loaded");
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let settings = updates.borrow_and_update().clone();
            tracing::info!(%service, ?settings, "settings changed");
        }
    });
    Ok(Arc::new(watcher))
}
