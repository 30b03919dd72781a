//! Opening a service's SQLite database, shared by all its instances.

use std::path::Path;
use std::time::Duration;

use concord_client::participant::SqliteBarrier;

use crate::ShopError;
use concord_client::sqlx::SqlitePool;
use concord_client::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

/// How long a statement waits for another connection (or another instance's
/// process) to release the write lock before failing; the barrier takes the
/// write lock up front (`BEGIN IMMEDIATE`), so waiting is the normal case under
/// concurrent orders.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it if needed) `<dir>/<name>.db` in WAL mode, runs `schema`
/// and creates the barrier table.
///
/// WAL lets readers proceed while another instance writes; `synchronous=NORMAL`
/// is WAL's usual durability trade (a power cut may lose the last commits, never
/// corrupt the file), fine for a demo.
pub async fn open(
    dir: &Path,
    name: &str,
    schema: &[&str],
) -> Result<(SqlitePool, SqliteBarrier), ShopError> {
    std::fs::create_dir_all(dir).map_err(|source| ShopError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(format!("{name}.db"));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let failed = |what| {
        let path = path.clone();
        move |source| ShopError::Database { path, what, source }
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(failed("cannot open it"))?;
    for statement in schema {
        concord_client::sqlx::query(statement)
            .execute(&pool)
            .await
            .map_err(failed("cannot create the schema"))?;
    }
    let barrier = SqliteBarrier::new();
    barrier
        .migrate(&pool)
        .await
        .map_err(failed("cannot create the barrier table"))?;
    Ok((pool, barrier))
}
