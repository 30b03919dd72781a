//! Load-balancing algorithms (and call-protection rules) shared by the Concord gateway and the Rust SDK.
//!
//! A [`Balancer`] holds one [`Policy`] and the current set of [`Endpoint`]s. The
//! request path only calls [`Balancer::pick`], which takes `&self`, does not
//! allocate and never waits on discovery: a background updater builds a whole new
//! endpoint set (with its lookup tables) and swaps it in with
//! [`Balancer::set_endpoints`]. Per-endpoint load (requests in flight, latency
//! EWMA) lives outside the set and survives a swap for ids that remain.
//!
//! The same goes for what decides whether a call is made at all and whether a
//! failed one is tried again: the [`breaker`] (circuit breaker per target) and
//! the [`retry`] rules (conditions, idempotency, backoff, budget), so the gateway
//! and the SDK's service client behave alike.
//!
//! The crate does no I/O and has no async runtime, so the same code runs in the
//! gateway, in the SDK and in deterministic tests (seed the RNG with
//! [`Config::seed`]).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod balancer;
pub mod breaker;
mod config;
mod endpoint;
mod hash;
mod maglev;
mod p2c;
mod pick;
mod policy;
mod random;
pub mod retry;
mod ring_hash;
mod rng;
mod round_robin;
mod snapshot;
mod stats;

pub use balancer::{Balancer, EndpointsError};
pub use config::{Config, ConfigError};
pub use endpoint::Endpoint;
pub use hash::hash_key;
pub use pick::Pick;
pub use policy::{ParsePolicyError, Policy};
pub use stats::EndpointStats;
