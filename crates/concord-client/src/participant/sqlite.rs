//! The barrier's SQLite dialect.

use futures::future::BoxFuture;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::barrier::{Barrier, RowKey, backend::Backend};

/// The barrier on SQLite (bundled with sqlx, so no system library is needed).
///
/// Its local transactions start with `BEGIN IMMEDIATE`: the first barrier statement
/// writes anyway, and taking the write lock up front lets concurrent deliveries wait
/// on SQLite's busy timeout instead of failing with `SQLITE_BUSY` on lock upgrade.
pub type SqliteBarrier = Barrier<Sqlite>;

impl Backend for Sqlite {
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn create_sql(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             txn_id TEXT NOT NULL, \
             step TEXT NOT NULL, \
             op TEXT NOT NULL, \
             reason TEXT NOT NULL, \
             created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
             PRIMARY KEY (txn_id, step, op))"
        )
    }

    fn insert_sql(table: &str) -> String {
        // Upsert syntax needs SQLite 3.24; the bundled library is far newer.
        format!(
            "INSERT INTO {table} (txn_id, step, op, reason) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING"
        )
    }

    fn reason_sql(table: &str) -> String {
        format!("SELECT reason FROM {table} WHERE txn_id = ? AND step = ? AND op = ?")
    }

    fn insert<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        key: RowKey<'c>,
        reason: &'c str,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            let done = sqlx::query(sql)
                .bind(key.txn_id)
                .bind(key.step)
                .bind(key.op)
                .bind(reason)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn reason<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        key: RowKey<'c>,
    ) -> BoxFuture<'c, Result<Option<String>, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(sql)
                .bind(key.txn_id)
                .bind(key.step)
                .bind(key.op)
                .fetch_optional(conn)
                .await
        })
    }

    fn execute<'c>(pool: &'c SqlitePool, sql: &'c str) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move { sqlx::query(sql).execute(pool).await.map(drop) })
    }
}
