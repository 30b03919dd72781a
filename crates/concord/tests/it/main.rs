//! Integration tests: each one starts the real `concord` binary and drives its HTTP API
//! (and CLI) from outside, exactly as a client written elsewhere would.

mod support;

mod cli;
mod crash;
mod kv;
mod leases;
mod node;
mod registry;
mod txn;
mod validation;
mod watch;
