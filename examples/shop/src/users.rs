//! `users`: accounts with balances, debited and credited by order sagas.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_client::participant::{SqliteBarrier, TxnMeta};
use concord_client::sqlx::{self, SqlitePool};
use concord_client::{Client, ConfigWatcher};
use serde::{Deserialize, Serialize};

use crate::http::{ApiError, JsonBody, StepError, step_response};
use crate::{Options, Service, db, server};

/// `shop/users/settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSettings {
    /// The largest balance a new account may open with (`POST /users` over it is
    /// refused with 400), so a typo cannot mint a fortune.
    pub max_initial_balance: i64,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            max_initial_balance: 1_000_000,
        }
    }
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS users (\
     id INTEGER PRIMARY KEY AUTOINCREMENT, \
     name TEXT NOT NULL, \
     balance INTEGER NOT NULL CHECK (balance >= 0))"];

#[derive(Clone)]
struct App {
    pool: SqlitePool,
    barrier: SqliteBarrier,
    settings: Arc<ConfigWatcher<UserSettings>>,
}

pub(crate) async fn router(client: &Client, options: &Options) -> Result<Router, crate::ShopError> {
    let (pool, barrier) = db::open(&options.data_dir, "users", SCHEMA).await?;
    let settings = server::watch_settings(client, Service::Users).await?;
    let app = App {
        pool,
        barrier,
        settings,
    };
    Ok(Router::new()
        .route("/users", post(create))
        .route("/users/{id}", get(read))
        .route("/debit", post(debit))
        .route("/credit", post(credit))
        .with_state(app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    balance: i64,
}

#[derive(Serialize)]
struct User {
    id: i64,
    name: String,
    balance: i64,
}

/// `POST /users {"name","balance"}` -> 201 `{"id"}`.
async fn create(
    State(app): State<App>,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name must be 1 to 100 characters"));
    }
    let max = app.settings.current().max_initial_balance;
    if !(0..=max).contains(&req.balance) {
        return Err(ApiError::invalid(format!(
            "balance must be between 0 and {max} (max_initial_balance in config shop/users/settings.json)"
        )));
    }
    let id: i64 =
        sqlx::query_scalar("INSERT INTO users (name, balance) VALUES (?, ?) RETURNING id")
            .bind(name)
            .bind(req.balance)
            .fetch_one(&app.pool)
            .await?;
    tracing::info!(id, name, balance = req.balance, "user created");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// `GET /users/{id}` -> `{"id","name","balance"}`.
async fn read(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<User>, ApiError> {
    let row: Option<(String, i64)> = sqlx::query_as("SELECT name, balance FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(&app.pool)
        .await?;
    let (name, balance) = row.ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    Ok(Json(User { id, name, balance }))
}

/// Body of the saga calls `debit` and `credit`.
#[derive(Deserialize)]
struct Amount {
    user_id: i64,
    amount: i64,
}

/// Saga action: takes `amount` from the balance, or refuses (409) when the
/// balance cannot cover it or the user does not exist; nothing changes then.
async fn debit(State(app): State<App>, meta: TxnMeta, JsonBody(req): JsonBody<Amount>) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE users SET balance = balance - ? WHERE id = ? AND balance >= ?",
                )
                .bind(req.amount)
                .bind(req.user_id)
                .bind(req.amount)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let balance: Option<i64> =
                    sqlx::query_scalar("SELECT balance FROM users WHERE id = ?")
                        .bind(req.user_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                Err(StepError::Refused(match balance {
                    Some(balance) => format!(
                        "insufficient balance: user {} has {balance}, the order costs {}",
                        req.user_id, req.amount
                    ),
                    None => format!("no user {}", req.user_id),
                }))
            })
        })
        .await;
    step_response(&meta, result)
}

/// Saga compensation of `debit`: gives the amount back. Never refuses (a
/// compensation must succeed); the barrier makes it a no-op when the debit
/// never happened.
async fn credit(
    State(app): State<App>,
    meta: TxnMeta,
    JsonBody(req): JsonBody<Amount>,
) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE users SET balance = balance + ? WHERE id = ?")
                    .bind(req.amount)
                    .bind(req.user_id)
                    .execute(&mut **tx)
                    .await?;
                Ok::<(), StepError>(())
            })
        })
        .await;
    step_response(&meta, result)
}
