//! The barrier's PostgreSQL dialect.

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool, Postgres};

use super::barrier::{Barrier, RowKey, backend::Backend};

/// The barrier on PostgreSQL.
///
/// Local transactions use the default `BEGIN` (read committed): a concurrent
/// duplicate's `INSERT ... ON CONFLICT DO NOTHING` waits for the first delivery's
/// transaction, then inserts nothing if it committed, or wins the row if it rolled back.
pub type PgBarrier = Barrier<Postgres>;

impl Backend for Postgres {
    const BEGIN: Option<&'static str> = None;

    fn create_sql(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             txn_id TEXT NOT NULL, \
             step TEXT NOT NULL, \
             op TEXT NOT NULL, \
             reason TEXT NOT NULL, \
             created_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
             PRIMARY KEY (txn_id, step, op))"
        )
    }

    fn insert_sql(table: &str) -> String {
        format!(
            "INSERT INTO {table} (txn_id, step, op, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING"
        )
    }

    fn reason_sql(table: &str) -> String {
        format!("SELECT reason FROM {table} WHERE txn_id = $1 AND step = $2 AND op = $3")
    }

    fn insert<'c>(
        conn: &'c mut PgConnection,
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
        conn: &'c mut PgConnection,
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

    fn execute<'c>(pool: &'c PgPool, sql: &'c str) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move { sqlx::query(sql).execute(pool).await.map(drop) })
    }
}
