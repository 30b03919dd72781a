//! [`TccHandle`]: one open TCC transaction, so a service adds branches and
//! commits without repeating the client and the id at every call.

use concord_api::transactions::{BranchRequest, CallSpec};

use super::{BranchOutcome, TxnAnswer};
use crate::client::Client;
use crate::error::ClientError;

/// An open TCC transaction on one server.
///
/// Holds only the client and the id, so it is cheap to clone and can be
/// rebuilt after a restart with [`TccHandle::resume`]. Commit and abort borrow
/// it: after a transport error their outcome is unknown, and the caller must
/// still be able to ask ([`TccHandle::view`]) or repeat them.
///
/// ```no_run
/// # async fn demo(client: concord_client::Client) -> Result<(), concord_client::ClientError> {
/// use concord_client::api::transactions::CallSpec;
/// use concord_client::{BranchOutcome, CallSpecExt, Tcc};
///
/// let txn = client.begin_tcc(Tcc::new().id("trip-7")).await?;
/// let seat = txn
///     .branch(
///         "seat",
///         CallSpec::post("concord://flights/seat/try"),
///         CallSpec::post("concord://flights/seat/confirm"),
///         CallSpec::post("concord://flights/seat/cancel"),
///     )
///     .await;
/// match seat {
///     Ok(BranchOutcome::Succeeded(_)) => drop(txn.commit().await?),
///     Ok(BranchOutcome::Refused { message, .. }) => drop(txn.abort(&message).await?),
///     Ok(BranchOutcome::Pending(_)) => drop(txn.abort("seat try too slow").await?),
///     Err(err) => drop(txn.abort(&err.to_string()).await?),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TccHandle {
    client: Client,
    id: String,
}

impl TccHandle {
    /// A handle on the already started TCC transaction `id`.
    pub fn resume(client: Client, id: impl Into<String>) -> Self {
        TccHandle {
            client,
            id: id.into(),
        }
    }

    /// The transaction's id (the one given to [`Tcc::id`](crate::Tcc::id), or the server's).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adds a branch and makes its `try` call now; the outcome says whether the
    /// reservation holds. Unless it [`BranchOutcome::Succeeded`], abort (or, on
    /// [`BranchOutcome::Pending`], wait and look again): the coordinator then
    /// cancels every branch, this one included.
    pub async fn branch(
        &self,
        name: impl Into<String>,
        try_: CallSpec,
        confirm: CallSpec,
        cancel: CallSpec,
    ) -> Result<BranchOutcome, ClientError> {
        let branch = BranchRequest {
            name: name.into(),
            try_,
            confirm,
            cancel,
            timeout_ms: None,
            retry: None,
        };
        self.branch_with(&branch).await
    }

    /// As [`TccHandle::branch`], for a branch with its own timeout or retry limits.
    pub async fn branch_with(&self, branch: &BranchRequest) -> Result<BranchOutcome, ClientError> {
        self.client.add_branch(&self.id, branch).await
    }

    /// Commits: the coordinator confirms every branch. Waits for the
    /// confirmation; [`TxnAnswer::Accepted`] if it took longer than the server's wait.
    pub async fn commit(&self) -> Result<TxnAnswer, ClientError> {
        self.client.commit_transaction(&self.id, true).await
    }

    /// Aborts: the coordinator cancels every branch; `reason` is kept in the history.
    pub async fn abort(&self, reason: &str) -> Result<TxnAnswer, ClientError> {
        self.client
            .abort_transaction(&self.id, Some(reason), true)
            .await
    }

    /// The transaction as the server reports it now.
    pub async fn view(&self) -> Result<Option<concord_api::transactions::TxnView>, ClientError> {
        self.client.get_transaction(&self.id).await
    }
}
