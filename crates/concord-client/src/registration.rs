//! [`Registration`]: an instance that stays registered while the process lives.
//!
//! An ephemeral instance disappears when its heartbeats stop (the process
//! died) — which is the point — but also when the server forgets it while the
//! process is fine: the instance was deregistered by an operator, the lease was
//! lost, the node restarted on an empty data dir. A heartbeat then answers
//! `404`, and the task registers the same spec again, so the only lasting way
//! to take a live instance out is to stop its process (or [`Registration::shutdown`]).

use std::time::Duration;

use concord_api::registry::InstanceSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::ClientError;

/// TTL given to a spec that names none, so the instance is ephemeral: a crashed
/// process leaves the registry within about this long.
pub const DEFAULT_TTL_SECS: u32 = 10;

/// Shortest pause between heartbeats, whatever the TTL.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// A registered instance kept alive by a background heartbeat task.
///
/// Dropping it stops the task and deregisters on a best-effort basis (on the
/// current Tokio runtime, if there is one); call [`Registration::shutdown`] to
/// deregister and learn whether it worked.
#[derive(Debug)]
pub struct Registration {
    client: Client,
    service: String,
    id: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Registration {
    /// Registers `id` of `service` now (in the client's namespace), then
    /// heart-beats every TTL/3 in a background task.
    ///
    /// A spec without `ttl_secs` gets [`DEFAULT_TTL_SECS`]. A heartbeat
    /// answered `404` (the instance or its lease is gone) registers the spec
    /// again; transport errors and other failures are retried at the next beat.
    /// Fails only when the first registration fails.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), concord_client::ClientError> {
    /// use concord_client::{Client, Registration};
    /// use concord_client::api::registry::InstanceSpec;
    ///
    /// let client = Client::with_servers(["127.0.0.1:7600"]);
    /// let spec = InstanceSpec { address: "127.0.0.1".into(), port: 8080, ..Default::default() };
    /// let registration = Registration::start(client, "orders", "orders-1", spec).await?;
    /// // ... serve ...
    /// registration.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(
        client: Client,
        service: &str,
        id: &str,
        mut spec: InstanceSpec,
    ) -> Result<Registration, ClientError> {
        let ttl = *spec.ttl_secs.get_or_insert(DEFAULT_TTL_SECS);
        client.register(service, id, &spec).await?;
        let (stop, stopped) = watch::channel(false);
        let beat = (Duration::from_secs(u64::from(ttl)) / 3).max(MIN_HEARTBEAT);
        let task = tokio::spawn(heartbeat_loop(
            client.clone(),
            service.to_owned(),
            id.to_owned(),
            spec,
            beat,
            stopped,
        ));
        Ok(Registration {
            client,
            service: service.to_owned(),
            id: id.to_owned(),
            stop,
            task: Some(task),
        })
    }

    /// The service this instance belongs to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops heart-beating and deregisters (an instance already gone counts as done).
    pub async fn shutdown(mut self) -> Result<(), ClientError> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match self.client.deregister(&self.service, &self.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return; // shut down already
        };
        task.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, service, id) =
                (self.client.clone(), self.service.clone(), self.id.clone());
            runtime.spawn(async move {
                let _ = client.deregister(&service, &id).await;
            });
        }
    }
}

async fn heartbeat_loop(
    client: Client,
    service: String,
    id: String,
    spec: InstanceSpec,
    beat: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(beat) => {}
            _ = stopped.changed() => return,
        }
        match client.heartbeat(&service, &id).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                tracing::info!(%service, %id, "instance gone from the registry; registering again");
                if let Err(e) = client.register(&service, &id, &spec).await {
                    tracing::warn!(%service, %id, error = %e, "re-registration failed; retrying");
                }
            }
            Err(e) => tracing::debug!(%service, %id, error = %e, "heartbeat failed; retrying"),
        }
    }
}
