//! A transaction participant for tests: a SQLite ledger of accounts behind an axum
//! server on loopback, guarded by the SDK's barrier, with scripted misbehaviour.
//!
//! `POST /apply {"account","delta"}` adds `delta` to the account under the barrier,
//! whatever the op (the transaction says which delta undoes which). A delta that
//! would take a balance below zero is refused with 409. Before that, a script
//! keyed by (step, op) can make a call fail, answer 425, or stall.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use concord_client::participant::{BarrierError, BarrierOutcome, SqliteBarrier, TxnMeta};
use concord_client::sqlx::{self, SqlitePool};
use serde::Deserialize;

/// What the participant does with one call before (or instead of) the barrier.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer this status without touching anything.
    Fail(u16),
    /// Answer 425, with `Retry-After` seconds when given.
    Pending(Option<u64>),
    /// Wait this long, then proceed normally (the caller may have given up).
    Stall(Duration),
    /// Apply the change, then answer 500 as if the response got lost.
    LoseResponse,
}

/// One call as the participant saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub txn: String,
    pub step: String,
    pub op: String,
    pub attempt: u32,
    /// The caller's address (one connection pool per coordinator node).
    #[allow(dead_code)] // read by the cluster suite's reports only
    pub from: SocketAddr,
    /// When the call arrived.
    #[allow(dead_code)] // read by the cluster suite's reports only
    pub at: std::time::Instant,
    /// `ran`, `duplicate`, `null_compensation`, `suppressed`, `refused`, `failed`,
    /// `pending`, `lost_response`.
    pub outcome: String,
}

#[derive(Default)]
struct Shared {
    script: HashMap<(String, String), VecDeque<Behavior>>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct App {
    pool: SqlitePool,
    barrier: SqliteBarrier,
    shared: Arc<Mutex<Shared>>,
}

/// A running ledger participant.
pub struct Ledger {
    pub addr: SocketAddr,
    app: App,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

#[derive(Deserialize)]
struct Apply {
    account: String,
    delta: i64,
}

impl Ledger {
    /// Starts a participant with these accounts and balances.
    pub async fn start(accounts: &[(&str, i64)]) -> Ledger {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("ledger.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .expect("sqlite");
        let barrier = SqliteBarrier::new();
        barrier.migrate(&pool).await.expect("barrier table");
        sqlx::query("CREATE TABLE accounts (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .expect("accounts table");
        for (a, b) in accounts {
            sqlx::query("INSERT INTO accounts VALUES (?, ?)")
                .bind(*a)
                .bind(*b)
                .execute(&pool)
                .await
                .expect("seed");
        }
        let app = App {
            pool,
            barrier,
            shared: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/apply", post(apply))
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ledger {
            addr,
            app,
            task,
            _dir: dir,
        }
    }

    /// The call that applies `delta` to `account`, as transaction JSON.
    pub fn call(&self, account: &str, delta: i64) -> serde_json::Value {
        serde_json::json!({
            "url": format!("http://{}/apply", self.addr),
            "body": {"account": account, "delta": delta}
        })
    }

    /// Queues behaviours for the next calls of (step, op), in order.
    pub fn script(&self, step: &str, op: &str, behaviors: impl IntoIterator<Item = Behavior>) {
        let mut s = self.app.shared.lock().expect("lock");
        s.script
            .entry((step.to_owned(), op.to_owned()))
            .or_default()
            .extend(behaviors);
    }

    /// Every call so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.app.shared.lock().expect("lock").seen.clone()
    }

    /// Calls of `txn` as `step:op:outcome` strings, in arrival order.
    pub fn trace(&self, txn: &str) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.txn == txn)
            .map(|s| format!("{}:{}:{}", s.step, s.op, s.outcome))
            .collect()
    }

    /// How many calls of `txn` took effect (ran their business code).
    pub fn effects(&self, txn: &str) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.txn == txn && matches!(s.outcome.as_str(), "ran" | "lost_response"))
            .map(|s| format!("{}:{}", s.step, s.op))
            .collect()
    }

    /// One account's balance.
    pub async fn balance(&self, account: &str) -> i64 {
        sqlx::query_scalar("SELECT balance FROM accounts WHERE account = ?")
            .bind(account)
            .fetch_one(&self.app.pool)
            .await
            .expect("balance")
    }

    /// Sum of every balance.
    #[allow(dead_code)] // used by the cluster suite only
    pub async fn total(&self) -> i64 {
        sqlx::query_scalar("SELECT COALESCE(SUM(balance), 0) FROM accounts")
            .fetch_one(&self.app.pool)
            .await
            .expect("total")
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(app: &App, meta: &TxnMeta, from: SocketAddr, outcome: &str) {
    app.shared.lock().expect("lock").seen.push(Seen {
        txn: meta.txn_id.clone(),
        step: meta.step.clone(),
        op: meta.op.as_str().to_owned(),
        attempt: meta.attempt,
        from,
        at: std::time::Instant::now(),
        outcome: outcome.to_owned(),
    });
}

enum Refusal {
    Insufficient,
    Db(sqlx::Error),
}

async fn apply(
    State(app): State<App>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<SocketAddr>,
    meta: TxnMeta,
    Json(body): Json<Apply>,
) -> Response {
    let behavior = {
        let mut s = app.shared.lock().expect("lock");
        s.script
            .get_mut(&(meta.step.clone(), meta.op.as_str().to_owned()))
            .and_then(VecDeque::pop_front)
    };
    match &behavior {
        Some(Behavior::Fail(code)) => {
            record(&app, &meta, from, "failed");
            return StatusCode::from_u16(*code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Some(Behavior::Pending(after)) => {
            record(&app, &meta, from, "pending");
            let mut resp = StatusCode::from_u16(425).expect("425").into_response();
            if let Some(secs) = after {
                resp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().expect("header"));
            }
            return resp;
        }
        _ => {}
    }
    // The work runs in its own task: a caller that times out closes the
    // connection, which would cancel the handler, and a slow participant's effect
    // must still land late, as it would in a real service.
    let stall = match behavior {
        Some(Behavior::Stall(d)) => Some(d),
        _ => None,
    };
    let lose = matches!(behavior, Some(Behavior::LoseResponse));
    tokio::spawn(async move {
        if let Some(d) = stall {
            tokio::time::sleep(d).await;
        }
        settle(app, meta, from, body, lose).await
    })
    .await
    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn settle(app: App, meta: TxnMeta, from: SocketAddr, body: Apply, lose: bool) -> Response {
    let (account, delta) = (body.account, body.delta);
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE accounts SET balance = balance + ? WHERE account = ? AND balance + ? >= 0",
                )
                .bind(delta)
                .bind(&account)
                .bind(delta)
                .execute(&mut **tx)
                .await
                .map_err(Refusal::Db)?;
                if done.rows_affected() == 0 {
                    return Err(Refusal::Insufficient);
                }
                Ok(())
            })
        })
        .await;
    match result {
        Ok(BarrierOutcome::Ran(())) if lose => {
            record(&app, &meta, from, "lost_response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Ok(outcome) => {
            let word = match outcome {
                BarrierOutcome::Ran(()) => "ran",
                BarrierOutcome::Duplicate => "duplicate",
                BarrierOutcome::NullCompensation => "null_compensation",
                BarrierOutcome::Suppressed => "suppressed",
            };
            record(&app, &meta, from, word);
            StatusCode::OK.into_response()
        }
        Err(BarrierError::Business(Refusal::Insufficient)) => {
            record(&app, &meta, from, "refused");
            (StatusCode::CONFLICT, "insufficient balance").into_response()
        }
        Err(BarrierError::Business(Refusal::Db(e))) | Err(BarrierError::Db(e)) => {
            record(&app, &meta, from, "failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}
