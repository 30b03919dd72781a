//! Building blocks for services that take part in Concord transactions.
//!
//! The coordinator calls a participant over HTTP with the headers
//! `Concord-Txn-Id`, `Concord-Txn-Step`, `Concord-Txn-Op`, `Concord-Txn-Attempt`
//! and `traceparent`; [`TxnMeta`] parses them (and is an axum extractor with the
//! `axum` feature). Calls are delivered **at least once** and may arrive out of
//! order: a retry can repeat an op that already took effect, and a compensation
//! can overtake the action it undoes. The [`Barrier`] turns that into
//! exactly-once effects.
//!
//! # The barrier (the DTM "sub-transaction barrier")
//!
//! The participant keeps one table, `concord_barrier` by default, keyed by
//! `(txn_id, step, op)`, with a `reason` column naming the op that inserted the
//! row. Each call runs its business change inside a **local database
//! transaction**, and the barrier's inserts happen in that same transaction, so
//! the rows and the effect commit or roll back together:
//!
//! * **Forward and finish ops** (`action`, `try`, `prepare`, `confirm`, `commit`)
//!   insert `(txn, step, op, reason = op)` with `ON CONFLICT DO NOTHING`. If a row
//!   was inserted the business code runs ([`BarrierOutcome::Ran`]). If not, it is
//!   skipped: either the op already committed ([`BarrierOutcome::Duplicate`]), or
//!   an undo op got there first ([`BarrierOutcome::Suppressed`], see below).
//! * **Undo ops** (`compensate`, `cancel`, `rollback`) first insert the row of
//!   the op they undo (`op.undoes()`), with `reason = <undo op>`. If that insert
//!   succeeds, the forward op never committed: this is a **null compensation**
//!   ([`BarrierOutcome::NullCompensation`]), the business code is skipped since
//!   there is nothing to undo, and the forward op, should it arrive late, finds
//!   its row taken and becomes a no-op instead of leaving an effect (or a TCC
//!   reservation) that nobody will ever undo ("hanging"). Then the undo op
//!   inserts its own row; if that row was already there, the call is a
//!   [`BarrierOutcome::Duplicate`] and is skipped.
//! * If the business code returns an error, the local transaction rolls back:
//!   no barrier row stays behind, so a refused action can be retried later, and
//!   a compensation arriving after the refusal is a null compensation.
//!
//! Concurrent duplicates are serialised by the database: the second insert of a
//! key waits for the first transaction (PostgreSQL row lock, SQLite write lock)
//! and then finds the row, so the effect still happens once.
//!
//! ```no_run
//! # #[cfg(feature = "barrier-sqlite")]
//! # async fn demo(pool: sqlx::SqlitePool, meta: concord_client::participant::TxnMeta)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use concord_client::participant::{BarrierOutcome, SqliteBarrier};
//!
//! let barrier = SqliteBarrier::new();
//! barrier.migrate(&pool).await?;
//! let outcome = barrier
//!     .call(&pool, &meta, |tx| {
//!         Box::pin(async move {
//!             sqlx::query("UPDATE accounts SET balance = balance - 10 WHERE id = 'alice'")
//!                 .execute(&mut **tx)
//!                 .await
//!         })
//!     })
//!     .await?;
//! assert!(matches!(outcome, BarrierOutcome::Ran(_) | BarrierOutcome::Duplicate));
//! # Ok(())
//! # }
//! ```

mod meta;

pub use meta::{MetaError, TxnMeta};

#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
mod barrier;
#[cfg(feature = "barrier-postgres")]
mod postgres;
#[cfg(feature = "barrier-sqlite")]
mod sqlite;

#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
pub use barrier::{
    Barrier, BarrierDatabase, BarrierError, BarrierOutcome, DEFAULT_TABLE, TableNameError,
};
#[cfg(feature = "barrier-postgres")]
pub use postgres::PgBarrier;
#[cfg(feature = "barrier-sqlite")]
pub use sqlite::SqliteBarrier;

#[cfg(test)]
mod tests;
