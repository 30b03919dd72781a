//! Distributed transactions (`/v1/transactions`): submit sagas and two-phase
//! commits, drive TCC transactions branch by branch, and list, inspect, retry
//! or resolve them.
//!
//! The builders ([`Saga`], [`TwoPhase`], [`Tcc`]) and [`CallSpecExt`] keep a
//! service's transaction a few lines long; the wire types stay those of
//! [`concord_api::transactions`], so what is built is exactly what is sent.

use concord_api::transactions::{
    BranchRequest, ResolveRequest, StepView, TxnAccepted, TxnList, TxnRequest, TxnStatus, TxnView,
};
use concord_api::{ErrorBody, ErrorCode};
use serde::Serialize;

use crate::client::{Client, decode_json};
use crate::encode::{Query, encode_segment};
use crate::error::ClientError;

mod builders;
mod tcc;
#[cfg(test)]
mod tests;

pub use builders::{CallSpecExt, Saga, Tcc, TwoPhase};
pub use tcc::TccHandle;

/// How the server answered a submit, commit or abort: either it waited and
/// reports the whole transaction (200), or it is still under way (202).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnAnswer {
    /// The transaction ended within the server's wait; its full view.
    Finished(TxnView),
    /// Not ended yet (or no wait was asked for); poll with
    /// [`Client::get_transaction`].
    Accepted(TxnAccepted),
}

impl TxnAnswer {
    /// The transaction's id, whichever the answer.
    pub fn id(&self) -> &str {
        match self {
            TxnAnswer::Finished(view) => &view.id,
            TxnAnswer::Accepted(accepted) => &accepted.id,
        }
    }

    /// The transaction's status when the server answered.
    pub fn status(&self) -> TxnStatus {
        match self {
            TxnAnswer::Finished(view) => view.status,
            TxnAnswer::Accepted(accepted) => accepted.status,
        }
    }
}

/// The outcome of a TCC branch's `try` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchOutcome {
    /// The try succeeded: the reservation holds until commit or abort.
    Succeeded(StepView),
    /// 202: the try had not settled when the server stopped waiting (it keeps
    /// retrying). Whether it holds is unknown: watch the transaction with
    /// [`Client::get_transaction`], or abort.
    Pending(StepView),
    /// 409: the participant refused the try (or the transaction no longer
    /// takes branches). Nothing is reserved; the caller should abort.
    Refused {
        /// The server's error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
}

/// Body of `commit`: whether to answer only once confirmed.
#[derive(Serialize)]
struct CommitBody {
    wait: bool,
}

/// Body of `abort`: the reason kept in the history, and the wait flag.
#[derive(Serialize)]
struct AbortBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    wait: bool,
}

/// `/v1/transactions/{id}` with the id percent-encoded.
///
/// An empty id, `.` or `..` cannot be sent as a path segment (URL parsers drop
/// or collapse them, encoded or not, and the request would reach another
/// route), so those are refused here as the server would refuse a bad id.
fn txn_path(id: &str) -> Result<String, ClientError> {
    if matches!(id, "" | "." | "..") {
        return Err(ClientError::from_body(
            ErrorCode::InvalidArgument.status(),
            ErrorBody::new(
                ErrorCode::InvalidArgument,
                format!("transaction id {id:?} cannot be addressed in a URL"),
            ),
        ));
    }
    Ok(format!("/v1/transactions/{}", encode_segment(id)))
}

/// `q` plus `status=S&limit=N&after=ID`, each only when given.
fn list_query(
    mut q: Query,
    status: Option<TxnStatus>,
    limit: Option<usize>,
    after: Option<&str>,
) -> Query {
    q.push_opt("status", status)
        .push_opt("limit", limit)
        .push_opt("after", after);
    q
}

/// An `add_branch` answer as an outcome: 200 tried, 202 still trying, 409 refused.
fn branch_outcome(status: u16, body: &bytes::Bytes) -> Result<BranchOutcome, ClientError> {
    match status {
        202 => decode_json(body).map(BranchOutcome::Pending),
        200..=299 => decode_json(body).map(BranchOutcome::Succeeded),
        409 => match ClientError::from_response(status, body) {
            ClientError::Api { code, message, .. } => Ok(BranchOutcome::Refused { code, message }),
            other => Err(other),
        },
        _ => Err(ClientError::from_response(status, body)),
    }
}

impl Client {
    /// `POST /v1/transactions`: submits a transaction (build it with [`Saga`],
    /// [`TwoPhase`] or [`Tcc`]). With `wait` set, the answer is
    /// [`TxnAnswer::Finished`] if it ended in time; resubmitting the same id and
    /// body is idempotent, so a submit that failed in transport can be repeated.
    pub async fn create_transaction(&self, request: &TxnRequest) -> Result<TxnAnswer, ClientError> {
        let url = self.url("/v1/transactions", &Query::default());
        self.send_answer(self.http().post(url).json(request)).await
    }

    /// Starts a TCC transaction and returns the handle that adds its branches
    /// and commits or aborts it.
    pub async fn begin_tcc(&self, tcc: Tcc) -> Result<TccHandle, ClientError> {
        let answer = self.create_transaction(&tcc.build()).await?;
        Ok(TccHandle::resume(self.clone(), answer.id()))
    }

    /// `GET /v1/transactions/{id}`: status, steps and history; `None` when
    /// there is no such transaction.
    pub async fn get_transaction(&self, id: &str) -> Result<Option<TxnView>, ClientError> {
        match self.get_json(&txn_path(id)?, &self.read_query()).await {
            Ok(view) => Ok(Some(view)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/transactions`: one page ordered by id, optionally only those in
    /// `status`; pass the answer's `next` as `after` for the next page.
    pub async fn list_transactions(
        &self,
        status: Option<TxnStatus>,
        limit: Option<usize>,
        after: Option<&str>,
    ) -> Result<TxnList, ClientError> {
        let q = list_query(self.read_query(), status, limit, after);
        self.get_json("/v1/transactions", &q).await
    }

    /// `POST /v1/transactions/{id}/branches`: adds a TCC branch and makes its
    /// `try` call now. A refusal (409) is an [`BranchOutcome::Refused`], not an
    /// error, because it is a normal business answer; a try that failed for
    /// good is an API error with status 502.
    pub async fn add_branch(
        &self,
        id: &str,
        branch: &BranchRequest,
    ) -> Result<BranchOutcome, ClientError> {
        let url = self.url(&format!("{}/branches", txn_path(id)?), &Query::default());
        let response = self.http().post(url).json(branch).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        branch_outcome(status, &body)
    }

    /// `POST /v1/transactions/{id}/commit`: a TCC transaction confirms its
    /// branches. With `wait`, answers once confirmed (or
    /// [`TxnAnswer::Accepted`] if that takes longer than the server waits).
    pub async fn commit_transaction(&self, id: &str, wait: bool) -> Result<TxnAnswer, ClientError> {
        let url = self.url(&format!("{}/commit", txn_path(id)?), &Query::default());
        self.send_answer(self.http().post(url).json(&CommitBody { wait }))
            .await
    }

    /// `POST /v1/transactions/{id}/abort`: undoes what took effect; `reason`
    /// is kept in the history. Answers as [`Client::commit_transaction`].
    pub async fn abort_transaction(
        &self,
        id: &str,
        reason: Option<&str>,
        wait: bool,
    ) -> Result<TxnAnswer, ClientError> {
        let url = self.url(&format!("{}/abort", txn_path(id)?), &Query::default());
        let body = AbortBody { reason, wait };
        self.send_answer(self.http().post(url).json(&body)).await
    }

    /// `POST /v1/transactions/{id}/retry`: an operator restarts a stuck
    /// transaction with fresh retry limits.
    pub async fn retry_transaction(&self, id: &str) -> Result<TxnAccepted, ClientError> {
        let url = self.url(&format!("{}/retry", txn_path(id)?), &Query::default());
        self.send_json(self.http().post(url)).await
    }

    /// `POST /v1/transactions/{id}/resolve`: an operator closes a stuck or
    /// running transaction by hand (after fixing its effects themselves);
    /// `reason` is kept in the history.
    pub async fn resolve_transaction(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<TxnAccepted, ClientError> {
        let url = self.url(&format!("{}/resolve", txn_path(id)?), &Query::default());
        let body = ResolveRequest {
            reason: reason.to_owned(),
        };
        self.send_json(self.http().post(url).json(&body)).await
    }

    /// Sends a submit, commit or abort and tells 200 (a view) from 202 (accepted).
    async fn send_answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<TxnAnswer, ClientError> {
        let response = self.send(request).await?;
        let accepted = response.status() == reqwest::StatusCode::ACCEPTED;
        let body = response.bytes().await?;
        if accepted {
            decode_json(&body).map(TxnAnswer::Accepted)
        } else {
            decode_json(&body).map(TxnAnswer::Finished)
        }
    }
}
