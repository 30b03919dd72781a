//! Finding a member's client API address.
//!
//! Members bootstrapped by `--initial-cluster` carry an empty client address in
//! the membership: every node writes the same initial membership entry (the log
//! must be identical everywhere) and each node only knows its own client address.
//! Every node therefore serves its own on the peer route `GET /raft/info`, and
//! this cache asks a member once and remembers the answer, so forwarding and
//! `NotLeader` hints work on bootstrapped clusters too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::network::dial_addr;

/// Peer route where a node tells who it is and where its client API listens.
pub(crate) const INFO_PATH: &str = "/raft/info";

/// Answer of `GET /raft/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerInfo {
    pub(crate) node_id: u64,
    pub(crate) client_addr: String,
    /// Whether the node already holds cluster state (log entries or a vote).
    #[serde(default)]
    pub(crate) initialized: bool,
}

/// One lookup must not hold up a members listing for long.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// A found address is asked again after this long, in case the node restarted
/// with another client address; until the new answer arrives the old one is used.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// After a failed lookup, the member is not asked again for this long.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(1);

/// Cached `/raft/info` answers, keyed by node id and valid for one peer address.
pub(crate) struct ClientAddrs {
    http: reqwest::Client,
    routes: Arc<HashMap<u64, String>>,
    cache: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    /// The peer address asked; a member re-added at another address is asked again.
    peer_addr: String,
    found: Option<String>,
    found_at: Option<Instant>,
    failed_at: Option<Instant>,
    /// A background refresh is under way.
    refreshing: bool,
}

impl Entry {
    fn new(peer_addr: &str) -> Entry {
        Entry {
            peer_addr: peer_addr.to_owned(),
            found: None,
            found_at: None,
            failed_at: None,
            refreshing: false,
        }
    }
}

impl ClientAddrs {
    pub(crate) fn new(http: reqwest::Client, routes: Arc<HashMap<u64, String>>) -> ClientAddrs {
        ClientAddrs {
            http,
            routes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The last address learned for member `id` at `peer_addr`, without asking.
    pub(crate) fn cached(&self, id: u64, peer_addr: &str) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(&id)
            .filter(|e| e.peer_addr == peer_addr)
            .and_then(|e| e.found.clone())
    }

    /// The client address of member `id` at `peer_addr`: cached, or asked over
    /// the peer network. `None` when the member cannot be reached and was never
    /// reached. Only a member never reached makes the caller wait (at most
    /// [`LOOKUP_TIMEOUT`]); an old answer is returned at once and refreshed in
    /// the background.
    pub(crate) async fn resolve(self: &Arc<Self>, id: u64, peer_addr: &str) -> Option<String> {
        {
            let mut cache = self.cache.lock().ok()?;
            if let Some(e) = cache.get_mut(&id).filter(|e| e.peer_addr == peer_addr) {
                let fresh = e.found_at.is_some_and(|t| t.elapsed() < FRESH_FOR);
                let failed_recently = e
                    .failed_at
                    .is_some_and(|t| t.elapsed() < RETRY_FAILED_AFTER);
                if fresh || failed_recently || e.refreshing {
                    return e.found.clone();
                }
                if let Some(found) = e.found.clone() {
                    e.refreshing = true;
                    let (me, peer_addr) = (self.clone(), peer_addr.to_owned());
                    tokio::spawn(async move { me.lookup(id, &peer_addr).await });
                    return Some(found);
                }
            }
        }
        self.lookup(id, peer_addr).await
    }

    /// Asks member `id` and records the answer; a failure keeps what was known.
    async fn lookup(&self, id: u64, peer_addr: &str) -> Option<String> {
        let answer = self.ask(id, peer_addr).await;
        let mut cache = self.cache.lock().ok()?;
        let entry = cache.entry(id).or_insert_with(|| Entry::new(peer_addr));
        if entry.peer_addr != peer_addr {
            *entry = Entry::new(peer_addr);
        }
        entry.refreshing = false;
        match answer {
            Ok(addr) => {
                entry.found = Some(addr.clone());
                entry.found_at = Some(Instant::now());
                entry.failed_at = None;
                Some(addr)
            }
            Err(e) => {
                tracing::debug!(node_id = id, peer_addr, error = %e, "client address lookup failed");
                entry.failed_at = Some(Instant::now());
                entry.found.clone()
            }
        }
    }

    /// Drops what is known about a member (it left the cluster).
    pub(crate) fn forget(&self, id: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&id);
        }
    }

    async fn ask(&self, id: u64, peer_addr: &str) -> Result<String, String> {
        let info = self.info(id, peer_addr).await?;
        if info.client_addr.is_empty() {
            return Err(format!("node {id} reports no client address"));
        }
        Ok(info.client_addr)
    }

    /// Member `id`'s `/raft/info`, checked to come from node `id`.
    pub(crate) async fn info(&self, id: u64, peer_addr: &str) -> Result<PeerInfo, String> {
        let url = format!(
            "http://{}{INFO_PATH}",
            dial_addr(&self.routes, id, peer_addr)
        );
        let resp = self
            .http
            .get(&url)
            .timeout(LOOKUP_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let info: PeerInfo = resp.json().await.map_err(|e| e.to_string())?;
        if info.node_id != id {
            // Two members at one address, or a replaced node: do not trust it.
            return Err(format!(
                "{url} is node {}, not node {id}: check the peer addresses",
                info.node_id
            ));
        }
        Ok(info)
    }
}
