//! The barrier itself: the decision logic, shared by every backend.

use std::fmt;
use std::marker::PhantomData;

use concord_api::transactions::TxnOp;
use futures::future::BoxFuture;
use sqlx::{Pool, Transaction};

use super::TxnMeta;

/// The table name used by [`Barrier::new`].
pub const DEFAULT_TABLE: &str = "concord_barrier";

/// Longest accepted table name: PostgreSQL truncates identifiers past 63 bytes.
const MAX_TABLE_LEN: usize = 63;

/// A database the barrier can keep its table in: SQLite and PostgreSQL, each behind
/// its cargo feature. Sealed, because each one needs its own SQL dialect.
pub trait BarrierDatabase: sqlx::Database + backend::Backend {}

impl<DB: sqlx::Database + backend::Backend> BarrierDatabase for DB {}

pub(super) mod backend {
    use futures::future::BoxFuture;

    /// What differs between databases: SQL text and the concrete query calls.
    /// Unnameable outside the crate, which seals [`super::BarrierDatabase`].
    pub trait Backend: sqlx::Database {
        /// The statement that opens the local transaction; `None` for the default.
        const BEGIN: Option<&'static str>;

        /// `CREATE TABLE IF NOT EXISTS` for the barrier table.
        fn create_sql(table: &str) -> String;

        /// Inserts `(txn_id, step, op, reason)`, doing nothing on a key conflict.
        fn insert_sql(table: &str) -> String;

        /// Selects `reason` by `(txn_id, step, op)`.
        fn reason_sql(table: &str) -> String;

        /// Runs [`Backend::insert_sql`]; true if a row was inserted.
        fn insert<'c>(
            conn: &'c mut Self::Connection,
            sql: &'c str,
            key: super::RowKey<'c>,
            reason: &'c str,
        ) -> BoxFuture<'c, Result<bool, sqlx::Error>>;

        /// Runs [`Backend::reason_sql`].
        fn reason<'c>(
            conn: &'c mut Self::Connection,
            sql: &'c str,
            key: super::RowKey<'c>,
        ) -> BoxFuture<'c, Result<Option<String>, sqlx::Error>>;

        /// Runs one statement without binds (the table creation).
        fn execute<'c>(
            pool: &'c sqlx::Pool<Self>,
            sql: &'c str,
        ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
    }
}

/// The primary key of one barrier row.
#[derive(Debug, Clone, Copy)]
pub struct RowKey<'a> {
    pub(super) txn_id: &'a str,
    pub(super) step: &'a str,
    pub(super) op: &'a str,
}

impl<'a> RowKey<'a> {
    fn new(meta: &'a TxnMeta, op: TxnOp) -> Self {
        RowKey {
            txn_id: &meta.txn_id,
            step: &meta.step,
            op: op.as_str(),
        }
    }
}

/// The idempotency barrier of one participant: makes the effect of at-least-once
/// coordinator calls exactly-once, and makes undo ops safe against reordering.
///
/// See the [module docs](super) for the algorithm. One value per table; cheap to
/// clone and share (it only holds the prepared SQL text).
pub struct Barrier<DB: BarrierDatabase> {
    table: String,
    insert_sql: String,
    reason_sql: String,
    _db: PhantomData<fn() -> DB>,
}

impl<DB: BarrierDatabase> Clone for Barrier<DB> {
    fn clone(&self) -> Self {
        Barrier {
            table: self.table.clone(),
            insert_sql: self.insert_sql.clone(),
            reason_sql: self.reason_sql.clone(),
            _db: PhantomData,
        }
    }
}

impl<DB: BarrierDatabase> fmt::Debug for Barrier<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("table", &self.table)
            .finish()
    }
}

impl<DB: BarrierDatabase> Default for Barrier<DB> {
    fn default() -> Self {
        Self::new()
    }
}

/// A table name the barrier refuses: it is spliced into SQL, so only
/// `[A-Za-z0-9_]`, not starting with a digit, at most 63 bytes, is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid barrier table name {0:?}: use 1 to 63 of [A-Za-z0-9_], not starting with a digit")]
pub struct TableNameError(pub String);

impl<DB: BarrierDatabase> Barrier<DB> {
    /// A barrier on the table [`DEFAULT_TABLE`].
    pub fn new() -> Self {
        Self::build(DEFAULT_TABLE.to_owned())
    }

    /// A barrier on another table, e.g. one per service sharing a database. The name
    /// is validated because SQL cannot bind identifiers.
    pub fn with_table(table: impl Into<String>) -> Result<Self, TableNameError> {
        let table = table.into();
        let valid = !table.is_empty()
            && table.len() <= MAX_TABLE_LEN
            && !table.starts_with(|c: char| c.is_ascii_digit())
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(TableNameError(table));
        }
        Ok(Self::build(table))
    }

    fn build(table: String) -> Self {
        Barrier {
            insert_sql: DB::insert_sql(&table),
            reason_sql: DB::reason_sql(&table),
            table,
            _db: PhantomData,
        }
    }

    /// The table this barrier keeps its rows in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the barrier table if it does not exist; call once at start-up.
    ///
    /// Rows are never deleted by the barrier: a row is what turns a late duplicate
    /// into a no-op, so keep them at least as long as the coordinator may still retry
    /// the transaction (delete by `created_at` well after it is final).
    pub async fn migrate(&self, pool: &Pool<DB>) -> Result<(), sqlx::Error> {
        DB::execute(pool, &DB::create_sql(&self.table)).await
    }

    /// Runs `business` at most once per `(txn_id, step, op)`, inside a local
    /// transaction that also holds the barrier's rows.
    ///
    /// `business` receives the open transaction and must do all its database work
    /// through it (`&mut **tx` is the executor), so the effect and the barrier row
    /// commit together. If `business` returns `Err`, everything rolls back, no row
    /// is kept, and a later delivery runs it again. See [`BarrierOutcome`] for what
    /// skipped calls report.
    ///
    /// The returned future may borrow only the transaction, so move owned values
    /// (the request body, cloned strings, an `Arc`) into the closure.
    pub async fn call<T, E, F>(
        &self,
        pool: &Pool<DB>,
        meta: &TxnMeta,
        business: F,
    ) -> Result<BarrierOutcome<T>, BarrierError<E>>
    where
        F: for<'c> FnOnce(&'c mut Transaction<'static, DB>) -> BoxFuture<'c, Result<T, E>>,
    {
        let mut tx = match DB::BEGIN {
            Some(begin) => pool.begin_with(begin).await,
            None => pool.begin().await,
        }
        .map_err(BarrierError::Db)?;
        let outcome = match self.gate(&mut tx, meta).await? {
            Gate::Run => match business(&mut tx).await {
                Ok(value) => BarrierOutcome::Ran(value),
                Err(err) => {
                    tx.rollback().await.map_err(BarrierError::Db)?;
                    return Err(BarrierError::Business(err));
                }
            },
            Gate::Skip(outcome) => outcome,
        };
        tx.commit().await.map_err(BarrierError::Db)?;
        Ok(outcome)
    }

    /// Inserts the barrier rows for `meta` and decides whether the business runs.
    async fn gate<T, E>(
        &self,
        tx: &mut Transaction<'static, DB>,
        meta: &TxnMeta,
    ) -> Result<Gate<T>, BarrierError<E>> {
        let conn: &mut DB::Connection = tx;
        let Some(forward) = meta.op.undoes() else {
            // Forward or finish op: claim its row; losing means it already ran,
            // or an undo op that came first claimed it to suppress it.
            if self.insert(conn, meta, meta.op, meta.op).await? {
                return Ok(Gate::Run);
            }
            let key = RowKey::new(meta, meta.op);
            let reason = DB::reason(conn, &self.reason_sql, key)
                .await
                .map_err(BarrierError::Db)?;
            return Ok(Gate::Skip(match reason.as_deref() {
                Some(r) if r != meta.op.as_str() => BarrierOutcome::Suppressed,
                _ => BarrierOutcome::Duplicate,
            }));
        };
        // Undo op: claim the forward op's row first. Winning it means the forward
        // op never committed, so there is nothing to undo, and its late delivery
        // will now find the row taken (no hanging reservation).
        let null_compensation = self.insert(conn, meta, forward, meta.op).await?;
        if !self.insert(conn, meta, meta.op, meta.op).await? {
            return Ok(Gate::Skip(BarrierOutcome::Duplicate));
        }
        Ok(if null_compensation {
            Gate::Skip(BarrierOutcome::NullCompensation)
        } else {
            Gate::Run
        })
    }

    async fn insert<E>(
        &self,
        conn: &mut DB::Connection,
        meta: &TxnMeta,
        op: TxnOp,
        reason: TxnOp,
    ) -> Result<bool, BarrierError<E>> {
        DB::insert(
            conn,
            &self.insert_sql,
            RowKey::new(meta, op),
            reason.as_str(),
        )
        .await
        .map_err(BarrierError::Db)
    }
}

enum Gate<T> {
    Run,
    Skip(BarrierOutcome<T>),
}

/// What the barrier did with a call. Every variant is a success for the coordinator
/// (answer 2xx): the op's effect is in place exactly once, or was rightly never made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BarrierOutcome<T> {
    /// First delivery: the business code ran and its effect committed.
    Ran(T),
    /// A repeat of a delivery that already committed; the business code was skipped.
    Duplicate,
    /// An undo op arrived before its forward op had committed (it failed, or is
    /// still in flight): nothing to undo, the business code was skipped, and the
    /// forward op is now fenced off.
    NullCompensation,
    /// A forward op arriving after its undo op already ran as a null compensation:
    /// running it now would leave an effect nobody undoes, so it was skipped.
    Suppressed,
}

impl<T> BarrierOutcome<T> {
    /// A stable name for logs and response bodies.
    pub fn as_str(&self) -> &'static str {
        match self {
            BarrierOutcome::Ran(_) => "ran",
            BarrierOutcome::Duplicate => "duplicate",
            BarrierOutcome::NullCompensation => "null_compensation",
            BarrierOutcome::Suppressed => "suppressed",
        }
    }

    /// The business code's value, if it ran on this call.
    pub fn ran(self) -> Option<T> {
        match self {
            BarrierOutcome::Ran(value) => Some(value),
            _ => None,
        }
    }
}

/// Why a barrier call failed; in both cases nothing was committed, so the
/// coordinator may deliver the call again.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError<E> {
    /// The business code returned an error (a refusal, or a failure to retry).
    #[error("business error: {0}")]
    Business(E),
    /// The database failed while running the barrier or committing.
    #[error("barrier database error: {0}")]
    Db(#[source] sqlx::Error),
}

#[cfg(feature = "axum")]
mod respond {
    use axum::response::{IntoResponse, Response};
    use concord_api::{ErrorBody, ErrorCode};
    use http::StatusCode;

    use super::{BarrierError, BarrierOutcome};

    /// `Ran(v)` answers with `v`'s response; skipped calls answer 200 with
    /// `{"outcome": "duplicate" | "null_compensation" | "suppressed"}`, since the
    /// coordinator must treat them as success.
    impl<T: IntoResponse> IntoResponse for BarrierOutcome<T> {
        fn into_response(self) -> Response {
            let outcome = self.as_str();
            match self {
                BarrierOutcome::Ran(value) => value.into_response(),
                _ => (
                    StatusCode::OK,
                    axum::Json(serde_json::json!({ "outcome": outcome })),
                )
                    .into_response(),
            }
        }
    }

    /// A business error answers with its own response, so the participant decides
    /// between a refusal (409, only for ops that `may_refuse`) and a retryable
    /// failure (5xx); a database error answers 500 `internal`, which the
    /// coordinator retries.
    impl<E: IntoResponse> IntoResponse for BarrierError<E> {
        fn into_response(self) -> Response {
            match self {
                BarrierError::Business(err) => err.into_response(),
                BarrierError::Db(err) => {
                    let message = format!("barrier database error: {err}");
                    let body = ErrorBody::new(ErrorCode::Internal, message);
                    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
                }
            }
        }
    }
}
