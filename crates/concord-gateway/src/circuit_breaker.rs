//! A circuit breaker per route target.
//!
//! The breaker lives in [`concord_balance::breaker`], shared with the SDK's
//! service client; re-exported here so gateway code keeps one import path.

pub use concord_balance::breaker::*;
