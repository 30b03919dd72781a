//! `inventory`: items with stock and a price; stock is reserved and released by
//! order sagas.

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

/// `shop/inventory/settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySettings {
    /// Items with this much stock or less are reported `"low_stock": true`.
    pub low_stock_threshold: i64,
}

impl Default for InventorySettings {
    fn default() -> Self {
        InventorySettings {
            low_stock_threshold: 3,
        }
    }
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS items (\
     sku TEXT PRIMARY KEY, \
     stock INTEGER NOT NULL CHECK (stock >= 0), \
     price INTEGER NOT NULL CHECK (price >= 0))"];

#[derive(Clone)]
struct App {
    pool: SqlitePool,
    barrier: SqliteBarrier,
    settings: Arc<ConfigWatcher<InventorySettings>>,
}

pub(crate) async fn router(client: &Client, options: &Options) -> Result<Router, crate::ShopError> {
    let (pool, barrier) = db::open(&options.data_dir, "inventory", SCHEMA).await?;
    let settings = server::watch_settings(client, Service::Inventory).await?;
    let app = App {
        pool,
        barrier,
        settings,
    };
    Ok(Router::new()
        .route("/items", post(create))
        .route("/items/{sku}", get(read))
        .route("/reserve", post(reserve))
        .route("/release", post(release))
        .with_state(app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    sku: String,
    stock: i64,
    price: i64,
}

#[derive(Serialize)]
struct Item {
    sku: String,
    stock: i64,
    price: i64,
    low_stock: bool,
}

/// `POST /items {"sku","stock","price"}` -> 201 `{"sku"}`; 409 if the sku exists.
async fn create(
    State(app): State<App>,
    JsonBody(req): JsonBody<NewItem>,
) -> Result<Response, ApiError> {
    let sku = req.sku.trim();
    let valid_sku = !sku.is_empty()
        && sku.len() <= 64
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_sku {
        return Err(ApiError::invalid(
            "sku must be 1 to 64 of A-Z a-z 0-9 - _ .",
        ));
    }
    if req.stock < 0 || req.price < 0 {
        return Err(ApiError::invalid("stock and price must not be negative"));
    }
    let done = sqlx::query(
        "INSERT INTO items (sku, stock, price) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(sku)
    .bind(req.stock)
    .bind(req.price)
    .execute(&app.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict(format!("item {sku} already exists")));
    }
    tracing::info!(sku, stock = req.stock, price = req.price, "item created");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "sku": sku }))).into_response())
}

/// `GET /items/{sku}` -> `{"sku","stock","price","low_stock"}`.
async fn read(State(app): State<App>, Path(sku): Path<String>) -> Result<Json<Item>, ApiError> {
    let row: Option<(i64, i64)> = sqlx::query_as("SELECT stock, price FROM items WHERE sku = ?")
        .bind(&sku)
        .fetch_optional(&app.pool)
        .await?;
    let (stock, price) = row.ok_or_else(|| ApiError::not_found(format!("no item {sku}")))?;
    let low_stock = stock <= app.settings.current().low_stock_threshold;
    Ok(Json(Item {
        sku,
        stock,
        price,
        low_stock,
    }))
}

/// Body of the saga calls `reserve` and `release`.
#[derive(Deserialize)]
struct Quantity {
    sku: String,
    quantity: i64,
}

/// Saga action: takes `quantity` out of stock, or refuses (409) when there is
/// not that much (or no such item); nothing changes then.
async fn reserve(
    State(app): State<App>,
    meta: TxnMeta,
    JsonBody(req): JsonBody<Quantity>,
) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                let done =
                    sqlx::query("UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?")
                        .bind(req.quantity)
                        .bind(&req.sku)
                        .bind(req.quantity)
                        .execute(&mut **tx)
                        .await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let stock: Option<i64> =
                    sqlx::query_scalar("SELECT stock FROM items WHERE sku = ?")
                        .bind(&req.sku)
                        .fetch_optional(&mut **tx)
                        .await?;
                Err(StepError::Refused(match stock {
                    Some(stock) => format!(
                        "insufficient stock: {} has {stock}, the order needs {}",
                        req.sku, req.quantity
                    ),
                    None => format!("no item {}", req.sku),
                }))
            })
        })
        .await;
    step_response(&meta, result)
}

/// Saga compensation of `reserve`: puts the quantity back. Never refuses; a
/// no-op (by the barrier) when the reservation never happened.
async fn release(
    State(app): State<App>,
    meta: TxnMeta,
    JsonBody(req): JsonBody<Quantity>,
) -> Response {
    let result = app
        .barrier
        .call(&app.pool, &meta, move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE items SET stock = stock + ? WHERE sku = ?")
                    .bind(req.quantity)
                    .bind(&req.sku)
                    .execute(&mut **tx)
                    .await?;
                Ok::<(), StepError>(())
            })
        })
        .await;
    step_response(&meta, result)
}
