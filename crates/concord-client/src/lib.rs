//! Typed async client for the Concord HTTP API.
//!
//! One [`Client`] per server address; every endpoint of the `/v1` API is one
//! async method that returns the wire types of [`concord_api`], so callers
//! never hand-build URLs, percent-encode keys or parse error JSON themselves.
//!
//! Watches ([`Client::watch_prefix`], [`Client::watch_service`],
//! [`Client::watch_config`]) come back as
//! a [`futures::Stream`] of typed [`WatchEvent`]s, parsed from the server's
//! Server-Sent Events by the small parser in [`sse`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), concord_client::ClientError> {
//! use futures::StreamExt;
//!
//! let client = concord_client::Client::new("http://127.0.0.1:7600");
//! client.kv_put("app/color", "blue").await?;
//! let item = client.kv_get("app/color").await?;
//! assert_eq!(item.map(|i| i.value_bytes()), Some(b"blue".to_vec()));
//!
//! let mut watch = client.watch_prefix("app/", None).await?;
//! while let Some(event) = watch.next().await {
//!     println!("{:?}", event?);
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod backup;
mod client;
mod cluster;
mod config;
pub mod config_watcher;
mod discovery;
pub mod encode;
mod error;
mod kv;
mod leases;
pub mod participant;
mod registration;
mod routes;
mod service_client;
mod services;
pub mod sse;
mod transactions;
mod watch;

pub use client::{Client, Consistency, DEFAULT_BASE_URL, DEFAULT_FAILOVER_BUDGET};
pub use config::{PublishOptions, RawConfig};
pub use config_watcher::ConfigWatcher;
pub use discovery::Discovery;
pub use error::ClientError;
pub use kv::{DeleteOptions, PutOptions, RawValue};
#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
pub use participant::{Barrier, BarrierError, BarrierOutcome};
pub use participant::{MetaError, TxnMeta};
pub use registration::{DEFAULT_TTL_SECS, Registration};
pub use service_client::{CallError, CallPolicy, ServiceClient};
pub use transactions::{BranchOutcome, CallSpecExt, Saga, Tcc, TccHandle, TwoPhase, TxnAnswer};
pub use watch::{WatchEvent, WatchPayload, WatchStream};

/// Re-exported so users of the client need no direct dependency on the wire-types crate.
pub use concord_api as api;

/// Re-exported for [`CallPolicy`]'s breaker settings and retry conditions, and
/// [`Discovery::with_policy`]'s balancing policies.
pub use concord_balance as balance;
/// The circuit-breaker settings of [`CallPolicy::circuit_breaker`].
pub use concord_balance::breaker::BreakerConfig;
/// The retry conditions [`CallPolicy::retry_on`] lists.
pub use concord_balance::retry::RetryOn;

/// Re-exported so participants write their business queries with the same sqlx the
/// [`Barrier`] hands its transaction from.
#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
pub use sqlx;
