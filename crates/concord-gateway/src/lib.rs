//! The Concord gateway: a reverse proxy whose routes and endpoints come from
//! Concord by push, and change live without a reload.
//!
//! How a request travels:
//!
//! 1. [`server`] accepts HTTP/1.1 and h2c connections (hyper-util's `auto`
//!    builder), hands each request to [`proxy`], and on shutdown drains the
//!    connections ([`drain`]).
//! 2. [`proxy`] reads the current [`state::Snapshot`] (an `Arc` swapped whole on
//!    change, never waited on), finds the most specific route ([`matching`]),
//!    applies its rate limit ([`rate_limit`]), rewrites the path and headers
//!    ([`headers`]), picks a split target by weight and an endpoint with the
//!    target's `concord_balance::Balancer`, and forwards with per-try and total
//!    deadlines and retries ([`retry`]), through the target's circuit breaker
//!    when the route has one ([`circuit_breaker`]), skipping endpoints its
//!    outlier detection has ejected ([`outlier`]) and keeping clients with a
//!    sticky cookie on their endpoint ([`sticky`]). HTTP/1.1 goes over the
//!    gateway's own keep-alive [`pool`] of its own client connections
//!    ([`h1`]), gRPC over h2c through [`client`].
//! 3. [`discovery`] runs in the background: it lists routes and follows the
//!    route watch, and for every target a route uses it follows that service's
//!    watch and re-reads its passing instances into the balancers
//!    ([`upstream`]). When Concord is unreachable it keeps the last good state
//!    and reconnects with backoff.
//! 4. [`admin`] serves `/metrics`, `/admin/routes` and `/admin/upstreams`.
//!
//! Defaults a route gets when it does not say otherwise are in [`route`]
//! ([`route::DEFAULT_CONNECT_TIMEOUT`] and the constants beside it).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod admin;
pub mod body;
pub mod circuit_breaker;
pub mod client;
pub mod config;
pub mod deadline;
pub mod discovery;
pub mod drain;
pub mod error;
pub mod h1;
pub mod headers;
pub mod idle;
pub mod matching;
pub mod metrics;
pub mod outlier;
pub mod pool;
pub mod proxy;
pub mod rate_limit;
pub mod retry;
pub mod route;
pub mod server;
pub mod socket;
pub mod state;
pub mod sticky;
pub mod upstream;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use server::{Gateway, start};
