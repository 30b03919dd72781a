//! `orders`: places orders as sagas over `inventory` and `users`, and shows them
//! with the buyer's name fetched from `users` through discovery.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_client::api::transactions::{CallSpec, RetrySpec, TxnStatus, TxnView};
use concord_client::participant::{SqliteBarrier, TxnMeta};
use concord_client::sqlx::{self, SqlitePool};
use concord_client::{
    CallError, CallPolicy, CallSpecExt, Client, ConfigWatcher, RetryOn, Saga, ServiceClient,
    TxnAnswer,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{ApiError, JsonBody, StepError, step_response};
use crate::{Options, Service, db, server};

/// `shop/orders/settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderSettings {
    /// Orders for more than this many units are rejected (409) before any saga
    /// starts; read on every order, so a publish takes effect at once.
    pub max_quantity_per_order: i64,
}

impl Default for OrderSettings {
    fn default() -> Self {
        OrderSettings {
            max_quantity_per_order: 10,
        }
    }
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS orders (\
     id INTEGER PRIMARY KEY AUTOINCREMENT, \
     user_id INTEGER NOT NULL, \
     sku TEXT NOT NULL, \
     quantity INTEGER NOT NULL, \
     amount INTEGER, \
     status TEXT NOT NULL, \
     reason TEXT, \
     txn_id TEXT)"];

/// The saga's forward phase gets this long before the coordinator aborts it.
const SAGA_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct App {
    pool: SqlitePool,
    barrier: SqliteBarrier,
    settings: Arc<ConfigWatcher<OrderSettings>>,
    client: Client,
    services: ServiceClient,
    instance_id: Arc<str>,
}

/// How `orders` calls the other services: only reads (GET), so a connection
/// that broke is retried on another instance too, not only a refused connect.
/// That matters when an instance is killed: the pool still holds keep-alive
/// connections to it, and reusing one fails as a reset, not as a connect
/// failure (the SDK's default retries only the latter).
fn read_policy() -> CallPolicy {
    CallPolicy {
        attempts: 2,
        retry_on: vec![RetryOn::ConnectFailure, RetryOn::Reset],
        per_try_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..CallPolicy::default()
    }
}

pub(crate) async fn router(client: &Client, options: &Options) -> Result<Router, crate::ShopError> {
    let (pool, barrier) = db::open(&options.data_dir, "orders", SCHEMA).await?;
    let settings = server::watch_settings(client, Service::Orders).await?;
    let app = App {
        pool,
        barrier,
        settings,
        client: client.clone(),
        services: ServiceClient::new(client.clone()).with_policy(read_policy()),
        instance_id: options.instance_id.as_str().into(),
    };
    Ok(Router::new()
        .route("/orders", post(place))
        .route("/orders/{id}", get(read))
        .route("/settings", get(show_settings))
        .route("/confirm", post(confirm))
        .route("/cancel", post(cancel))
        .with_state(app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    user_id: i64,
    sku: String,
    quantity: i64,
}

/// What `inventory` answers for `GET /items/{sku}` (the fields used here).
#[derive(Deserialize)]
struct ItemView {
    price: i64,
}

/// What `users` answers for `GET /users/{id}` (the fields used here).
#[derive(Deserialize)]
struct UserView {
    name: String,
}

/// `POST /orders {"user_id","sku","quantity"}`: 201 `{"id","status":"confirmed"}`
/// once the saga succeeded, 409 `{"id","status":"rejected","reason"}` when a
/// limit, the stock or the balance refused it (everything already done undone).
async fn place(
    State(app): State<App>,
    JsonBody(req): JsonBody<NewOrder>,
) -> Result<Response, ApiError> {
    if req.quantity <= 0 {
        return Err(ApiError::invalid("quantity must be at least 1"));
    }
    if !valid_sku(&req.sku) {
        return Err(ApiError::invalid(
            "sku must be 1 to 64 of A-Z a-z 0-9 - _ .",
        ));
    }
    let max = app.settings.current().max_quantity_per_order;
    if req.quantity > max {
        let reason = format!(
            "quantity {} is over max_quantity_per_order {max} (config shop/orders/settings.json)",
            req.quantity
        );
        let id = insert(&app.pool, &req, None, "rejected", Some(&reason)).await?;
        return Ok(rejected(id, &reason, None));
    }
    let price = match app
        .services
        .get_json::<ItemView>("inventory", &format!("/items/{}", req.sku))
        .await
    {
        Ok(item) => item.price,
        Err(CallError::Status { status: 404, .. }) => {
            let reason = format!("no item {}", req.sku);
            let id = insert(&app.pool, &req, None, "rejected", Some(&reason)).await?;
            return Ok(rejected(id, &reason, None));
        }
        Err(err) => {
            return Err(ApiError::unavailable(format!(
                "cannot read the price from inventory: {err}"
            )));
        }
    };
    let amount = price
        .checked_mul(req.quantity)
        .ok_or_else(|| ApiError::invalid("the order's amount overflows"))?;
    let id = insert(&app.pool, &req, Some(amount), "pending", None).await?;
    let txn_id = txn_id(id);
    sqlx::query("UPDATE orders SET txn_id = ? WHERE id = ?")
        .bind(&txn_id)
        .bind(id)
        .execute(&app.pool)
        .await?;
    tracing::info!(order = id, txn = %txn_id, user = req.user_id, sku = %req.sku, quantity = req.quantity, amount, "placing order");
    let saga = saga(&app.client, &txn_id, id, &req, amount);
    match app.client.create_transaction(&saga).await {
        Ok(TxnAnswer::Finished(view)) => finish(&app, id, &req, amount, &view).await,
        Ok(TxnAnswer::Accepted(accepted)) => {
            // Not over within the server's wait: the saga goes on, and its
            // confirm or compensations settle the order later.
            let body = json!({"id": id, "status": "pending", "transaction": accepted.id});
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(err) => Err(ApiError::unavailable(format!(
            "cannot submit the saga {txn_id}: {err}; order {id} stays pending until it is resubmitted or resolved"
        ))),
    }
}

/// Settles the order by the saga's final state.
async fn finish(
    app: &App,
    id: i64,
    req: &NewOrder,
    amount: i64,
    view: &TxnView,
) -> Result<Response, ApiError> {
    match view.status {
        TxnStatus::Succeeded => {
            let body =
                json!({"id": id, "status": "confirmed", "amount": amount, "transaction": view.id});
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        TxnStatus::Aborted => {
            let reason = abort_reason(req, amount, view);
            sqlx::query("UPDATE orders SET status = 'rejected', reason = ? WHERE id = ? AND status = 'pending'")
                .bind(&reason)
                .bind(id)
                .execute(&app.pool)
                .await?;
            tracing::info!(order = id, txn = %view.id, %reason, "order rejected, saga compensated");
            Ok(rejected(id, &reason, Some(&view.id)))
        }
        status => {
            // Stuck (a compensation ran out of attempts) or resolved by hand:
            // an operator's matter; the order stays pending.
            let body = json!({"id": id, "status": "pending", "transaction": view.id,
                              "reason": format!("saga is {status}: {}", view.reason.as_deref().unwrap_or("see the transaction"))});
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

/// Why a saga aborted, for people: the step that refused says what was missing.
fn abort_reason(req: &NewOrder, amount: i64, view: &TxnView) -> String {
    let refused = view.steps.iter().find(|step| step.status == "refused");
    match refused.map(|step| step.name.as_str()) {
        Some("reserve") => format!(
            "insufficient stock: {} cannot cover {}",
            req.sku, req.quantity
        ),
        Some("debit") => format!(
            "insufficient balance: user {} cannot cover {amount}",
            req.user_id
        ),
        _ => view
            .reason
            .clone()
            .unwrap_or_else(|| "the saga aborted".to_owned()),
    }
}

/// The saga of one order. Each step is a call to one instance of a service,
/// picked by the coordinator among the passing ones (`concord://`), so a dead
/// instance costs a retry, not the order.
fn saga(
    client: &Client,
    txn_id: &str,
    id: i64,
    req: &NewOrder,
    amount: i64,
) -> concord_client::api::transactions::TxnRequest {
    let url = |service: &str, path: &str| participant_url(client.namespace(), service, path);
    let stock = json!({"sku": req.sku, "quantity": req.quantity});
    let money = json!({"user_id": req.user_id, "amount": amount});
    let order = json!({"order_id": id});
    Saga::new()
        .id(txn_id)
        .step(
            "reserve",
            CallSpec::post(url("inventory", "/reserve")).json(stock.clone()),
            Some(CallSpec::post(url("inventory", "/release")).json(stock)),
        )
        .step(
            "debit",
            CallSpec::post(url("users", "/debit")).json(money.clone()),
            Some(CallSpec::post(url("users", "/credit")).json(money)),
        )
        .step(
            "confirm",
            CallSpec::post(url("orders", "/confirm")).json(order.clone()),
            Some(CallSpec::post(url("orders", "/cancel")).json(order)),
        )
        .timeout(SAGA_TIMEOUT)
        .step_timeout(Duration::from_secs(5))
        .retry(RetrySpec {
            initial_backoff_ms: Some(100),
            max_backoff_ms: Some(1000),
            max_attempts: Some(10),
        })
        .wait(true)
        .build()
}

/// `concord://service[.namespace]/path`: the namespace only when it is not the default.
fn participant_url(namespace: &str, service: &str, path: &str) -> String {
    if namespace == "default" {
        format!("concord://{service}{path}")
    } else {
        format!("concord://{service}.{namespace}{path}")
    }
}

/// A transaction id unique across restarts and wiped databases: the order id
/// alone would repeat after a wipe, and the coordinator answers a repeated id
/// with the old transaction.
fn txn_id(order_id: i64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("order-{order_id}-{nanos:x}")
}

fn valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 64
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

async fn insert(
    pool: &SqlitePool,
    req: &NewOrder,
    amount: Option<i64>,
    status: &str,
    reason: Option<&str>,
) -> Result<i64, ApiError> {
    let id = sqlx::query_scalar(
        "INSERT INTO orders (user_id, sku, quantity, amount, status, reason) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(req.user_id)
    .bind(&req.sku)
    .bind(req.quantity)
    .bind(amount)
    .bind(status)
    .bind(reason)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

fn rejected(id: i64, reason: &str, transaction: Option<&str>) -> Response {
    let body =
        json!({"id": id, "status": "rejected", "reason": reason, "transaction": transaction});
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// `GET /orders/{id}`: the order, with the buyer's name from `users`
/// (`"user_name": null` if `users` cannot answer right now).
async fn read(State(app): State<App>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    type Row = (
        i64,
        String,
        i64,
        Option<i64>,
        String,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT user_id, sku, quantity, amount, status, reason, txn_id FROM orders WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&app.pool)
    .await?;
    let (user_id, sku, quantity, amount, status, reason, txn_id) =
        row.ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    let user_name = match app
        .services
        .get_json::<UserView>("users", &format!("/users/{user_id}"))
        .await
    {
        Ok(user) => Some(user.name),
        Err(err) => {
            tracing::warn!(order = id, user = user_id, error = %err, "cannot read the user");
            None
        }
    };
    Ok(Json(
        json!({"id": id, "user_id": user_id, "user_name": user_name, "sku": sku,
                   "quantity": quantity, "amount": amount, "status": status, "reason": reason,
                   "transaction": txn_id}),
    )
    .into_response())
}

/// `GET /settings`: the settings this instance applies now, with its id, so
/// a config change can be seen arriving at each instance.
async fn show_settings(State(app): State<App>) -> Json<serde_json::Value> {
    let current = app.settings.current();
    Json(
        json!({"instance": &*app.instance_id, "max_quantity_per_order": current.max_quantity_per_order}),
    )
}

/// Body of the saga calls `confirm` and `cancel`.
#[derive(Deserialize)]
struct OrderRef {
    order_id: i64,
}

/// Saga action, the last step: the order is confirmed.
async fn confirm(
    State(app): State<App>,
    meta: TxnMeta,
    JsonBody(req): JsonBody<OrderRef>,
) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE orders SET status = 'confirmed' WHERE id = ? AND status = 'pending'",
                )
                .bind(req.order_id)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StepError::Refused(format!(
                        "order {} is not pending",
                        req.order_id
                    )));
                }
                Ok(())
            })
        })
        .await;
    step_response(&meta, result)
}

/// Saga compensation of `confirm`: the order is rejected after all.
async fn cancel(
    State(app): State<App>,
    meta: TxnMeta,
    JsonBody(req): JsonBody<OrderRef>,
) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE orders SET status = 'rejected', reason = COALESCE(reason, 'cancelled by the saga') WHERE id = ?",
                )
                .bind(req.order_id)
                .execute(&mut **tx)
                .await?;
                Ok::<(), StepError>(())
            })
        })
        .await;
    step_response(&meta, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_urls_name_the_namespace_only_when_needed() {
        assert_eq!(
            participant_url("default", "users", "/debit"),
            "concord://users/debit"
        );
        assert_eq!(
            participant_url("shop", "users", "/debit"),
            "concord://users.shop/debit"
        );
    }

    #[test]
    fn transaction_ids_are_valid() {
        let a = txn_id(7);
        assert!(a.starts_with("order-7-"));
        assert!(a.len() <= 128 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn skus_are_path_safe() {
        assert!(valid_sku("book-2.b_x"));
        assert!(!valid_sku(""));
        assert!(!valid_sku("a/b"));
        assert!(!valid_sku("a b"));
    }
}
