//! `--join URL`: asks a running cluster to add this node.
//!
//! The node starts uninitialized (its peer server is already up, so the leader
//! can replicate to it) and POSTs `/v1/cluster/members` with its id and
//! addresses. A member that is not the leader answers 503; the joiner then reads
//! `GET /v1/cluster/members` from it to find the leader's client address and
//! asks the leader directly. Transient failures are retried with backoff for
//! [`JOIN_DEADLINE`]; a refusal (400: id or address taken) is final. Adding is
//! idempotent, so a retry after a lost answer is harmless. The leader promotes
//! the new learner to voter once it has caught up.

use std::time::{Duration, Instant};

use concord_api::ErrorBody;
use concord_api::cluster::{AddMemberRequest, MembersResponse};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::node::SharedNode;

/// How long a node keeps trying to join before giving up.
pub(crate) const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline for one request; the leader answers an add once it is committed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What joining needs: where to ask, and what to ask for.
#[derive(Debug, Clone)]
pub(crate) struct JoinPlan {
    /// Client URL of any member, from `--join`.
    pub(crate) url: String,
    pub(crate) request: AddMemberRequest,
}

/// How one attempt ended, when it did not succeed.
enum Failed {
    /// The cluster refused the request; retrying the same request cannot help.
    Refused(String),
    /// Not the leader, no leader yet, unreachable: try again (elsewhere).
    Retry(String),
}

/// Joins, or reports why it could not on `fatal`. Ends early when stopped or
/// when this node turns out to be a member already (added by hand).
pub(crate) async fn run(
    node: SharedNode,
    plan: JoinPlan,
    mut stop: watch::Receiver<bool>,
    fatal: watch::Sender<Option<String>>,
) {
    let http = match reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            let _ = fatal.send(Some(format!("cannot build the join HTTP client: {e}")));
            return;
        }
    };
    let seed = concord_api::base_url(&plan.url);
    let mut target = seed.clone();
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if is_member(&node) {
            info!("this node is already a member; not joining");
            return;
        }
        let failure = match attempt(&http, &target, &plan.request).await {
            Ok(()) => {
                info!(via = %target, node_id = plan.request.id, "joined the cluster as a learner; catching up");
                return;
            }
            Err(Failed::Refused(why)) => {
                let msg = format!("the cluster at {target} refused to add this node: {why}");
                let _ = fatal.send(Some(msg));
                return;
            }
            Err(Failed::Retry(why)) => why,
        };
        if started.elapsed() > JOIN_DEADLINE {
            let msg = format!(
                "could not join the cluster through {seed} within {} s: {failure}",
                JOIN_DEADLINE.as_secs()
            );
            let _ = fatal.send(Some(msg));
            return;
        }
        // Ask the seed who leads; fall back to the seed itself.
        target = match find_leader(&http, &seed).await {
            Some(leader) => leader,
            None => seed.clone(),
        };
        warn!(error = %failure, next = %target, "join attempt failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

fn is_member(node: &SharedNode) -> bool {
    let st = node.raft.status();
    st.members.iter().any(|m| m.id == st.node_id)
}

/// One `POST /v1/cluster/members`.
async fn attempt(
    http: &reqwest::Client,
    base: &str,
    request: &AddMemberRequest,
) -> Result<(), Failed> {
    let url = format!("{base}/v1/cluster/members");
    let resp = http
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(|e| Failed::Retry(format!("{url}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    let why = format!("{url} answered {status}: {message}");
    // 400 (id or address taken) and 404 are answers about this request; a 404 from
    // a server without the endpoint is as final.
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(Failed::Refused(why))
    } else {
        Err(Failed::Retry(why))
    }
}

/// The leader's client URL as the member at `seed` knows it.
async fn find_leader(http: &reqwest::Client, seed: &str) -> Option<String> {
    let resp = http
        .get(format!("{seed}/v1/cluster/members"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let members: MembersResponse = resp.json().await.ok()?;
    members
        .members
        .into_iter()
        .find(|m| m.is_leader && !m.client_addr.is_empty())
        .map(|m| concord_api::base_url(&m.client_addr))
}
