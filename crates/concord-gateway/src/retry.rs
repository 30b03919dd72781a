//! When a failed attempt is tried again.
//!
//! The rules live in [`concord_balance::retry`], shared with the SDK's service
//! client; re-exported here so gateway code keeps one import path.

pub use concord_balance::retry::*;
