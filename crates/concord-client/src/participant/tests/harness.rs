//! One participant with a one-row ledger, on any barrier backend, for the shared
//! scenarios.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use concord_api::transactions::TxnOp;
use futures::future::BoxFuture;
use sqlx::{Pool, Transaction};

use crate::participant::{Barrier, BarrierDatabase, BarrierError, BarrierOutcome, TxnMeta};

/// A backend for the barrier type-level tests that need any one database.
#[cfg(feature = "barrier-sqlite")]
pub type AnyTestDb = sqlx::Sqlite;
/// A backend for the barrier type-level tests that need any one database.
#[cfg(not(feature = "barrier-sqlite"))]
pub type AnyTestDb = sqlx::Postgres;

/// The business error of the test participant.
#[derive(Debug)]
pub enum Fail {
    /// The participant refused the op (after writing to the ledger, to prove rollback).
    Refused,
    /// The ledger update failed.
    Db(#[allow(dead_code)] sqlx::Error),
}

/// What each backend provides for the scenarios: the ledger's SQL.
pub trait TestDb: BarrierDatabase {
    /// A fresh pool and empty tables named after `name` (dropped first if left over).
    fn harness(name: &'static str) -> BoxFuture<'static, Harness<Self>>;

    /// Adds `amount` to the ledger inside the barrier's transaction.
    fn credit<'c>(
        tx: &'c mut Transaction<'static, Self>,
        ledger: &'c str,
        amount: i64,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;

    /// The ledger's balance, read outside any barrier.
    fn balance<'c>(pool: &'c Pool<Self>, ledger: &'c str) -> BoxFuture<'c, i64>;

    /// How many barrier rows `txn_id` has in `table`.
    fn rows<'c>(pool: &'c Pool<Self>, table: &'c str, txn_id: &'c str) -> BoxFuture<'c, i64>;
}

/// A participant under test.
pub struct Harness<DB: TestDb> {
    pub pool: Pool<DB>,
    pub barrier: Barrier<DB>,
    pub ledger: String,
    /// How often business code ran, committed or not.
    pub runs: Arc<AtomicUsize>,
    /// Keeps a file-backed database alive.
    pub _dir: Option<tempfile::TempDir>,
}

/// The result of one delivery.
pub type Delivery = Result<BarrierOutcome<()>, BarrierError<Fail>>;

impl<DB: TestDb> Harness<DB> {
    /// Delivers `op` of `(txn, step)`, whose business adds `amount` to the ledger.
    pub async fn deliver(&self, txn: &str, step: &str, op: TxnOp, amount: i64) -> Delivery {
        self.run(txn, step, op, amount, false).await
    }

    /// Delivers an op whose business writes the ledger, then refuses.
    pub async fn deliver_refused(&self, txn: &str, step: &str, op: TxnOp) -> Delivery {
        self.run(txn, step, op, 1_000_000, true).await
    }

    async fn run(&self, txn: &str, step: &str, op: TxnOp, amount: i64, refuse: bool) -> Delivery {
        let meta = TxnMeta {
            txn_id: txn.to_owned(),
            step: step.to_owned(),
            op,
            attempt: 1,
            traceparent: None,
        };
        let ledger = self.ledger.clone();
        let runs = Arc::clone(&self.runs);
        self.barrier
            .call(&self.pool, &meta, move |tx| {
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    DB::credit(tx, &ledger, amount).await.map_err(Fail::Db)?;
                    if refuse { Err(Fail::Refused) } else { Ok(()) }
                })
            })
            .await
    }

    pub async fn balance(&self) -> i64 {
        DB::balance(&self.pool, &self.ledger).await
    }

    pub async fn rows(&self, txn: &str) -> i64 {
        DB::rows(&self.pool, self.barrier.table(), txn).await
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

fn new_harness<DB: TestDb>(
    pool: Pool<DB>,
    barrier: Barrier<DB>,
    ledger: String,
    dir: Option<tempfile::TempDir>,
) -> Harness<DB> {
    Harness {
        pool,
        barrier,
        ledger,
        runs: Arc::new(AtomicUsize::new(0)),
        _dir: dir,
    }
}

#[cfg(feature = "barrier-sqlite")]
impl TestDb for sqlx::Sqlite {
    fn harness(name: &'static str) -> BoxFuture<'static, Harness<Self>> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

        Box::pin(async move {
            // A file, not `:memory:`, so several connections share it and the
            // concurrency scenarios are real.
            let dir = tempfile::tempdir().unwrap();
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("participant.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let pool = SqlitePoolOptions::new()
                .max_connections(6)
                .connect_with(options)
                .await
                .unwrap();
            let ledger = format!("ledger_{name}");
            sqlx::query(&format!(
                "CREATE TABLE {ledger} (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)"
            ))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(&format!("INSERT INTO {ledger} (id, balance) VALUES (1, 0)"))
                .execute(&pool)
                .await
                .unwrap();
            let barrier = Barrier::new();
            barrier.migrate(&pool).await.unwrap();
            new_harness(pool, barrier, ledger, Some(dir))
        })
    }

    fn credit<'c>(
        tx: &'c mut Transaction<'static, Self>,
        ledger: &'c str,
        amount: i64,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "UPDATE {ledger} SET balance = balance + ? WHERE id = 1"
            ))
            .bind(amount)
            .execute(&mut **tx)
            .await
            .map(drop)
        })
    }

    fn balance<'c>(pool: &'c Pool<Self>, ledger: &'c str) -> BoxFuture<'c, i64> {
        Box::pin(async move {
            sqlx::query_scalar(&format!("SELECT balance FROM {ledger} WHERE id = 1"))
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }

    fn rows<'c>(pool: &'c Pool<Self>, table: &'c str, txn_id: &'c str) -> BoxFuture<'c, i64> {
        Box::pin(async move {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE txn_id = ?"))
                .bind(txn_id)
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }
}

#[cfg(feature = "barrier-postgres")]
impl TestDb for sqlx::Postgres {
    fn harness(name: &'static str) -> BoxFuture<'static, Harness<Self>> {
        use sqlx::postgres::PgPoolOptions;

        Box::pin(async move {
            let url = std::env::var("CONCORD_TEST_POSTGRES_URL").expect(
                "CONCORD_TEST_POSTGRES_URL is not set: the postgres_ barrier tests need \
                 a PostgreSQL URL such as postgres://concord:concord@127.0.0.1:5432/concord_test",
            );
            let pool = PgPoolOptions::new()
                .max_connections(6)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to CONCORD_TEST_POSTGRES_URL: {e}"));
            // Tables named after the test, so tests run in parallel and a rerun
            // starts clean.
            let ledger = format!("ledger_{name}");
            let table = format!("barrier_{name}");
            for sql in [
                format!("DROP TABLE IF EXISTS {ledger}"),
                format!("DROP TABLE IF EXISTS {table}"),
                format!("CREATE TABLE {ledger} (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)"),
                format!("INSERT INTO {ledger} (id, balance) VALUES (1, 0)"),
            ] {
                sqlx::query(&sql).execute(&pool).await.unwrap();
            }
            let barrier = Barrier::with_table(table).unwrap();
            barrier.migrate(&pool).await.unwrap();
            new_harness(pool, barrier, ledger, None)
        })
    }

    fn credit<'c>(
        tx: &'c mut Transaction<'static, Self>,
        ledger: &'c str,
        amount: i64,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "UPDATE {ledger} SET balance = balance + $1 WHERE id = 1"
            ))
            .bind(amount)
            .execute(&mut **tx)
            .await
            .map(drop)
        })
    }

    fn balance<'c>(pool: &'c Pool<Self>, ledger: &'c str) -> BoxFuture<'c, i64> {
        Box::pin(async move {
            sqlx::query_scalar(&format!("SELECT balance FROM {ledger} WHERE id = 1"))
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }

    fn rows<'c>(pool: &'c Pool<Self>, table: &'c str, txn_id: &'c str) -> BoxFuture<'c, i64> {
        Box::pin(async move {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE txn_id = $1"))
                .bind(txn_id)
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }
}
