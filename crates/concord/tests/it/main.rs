//! Integration tests: each one starts the real `concord` binary and drives its HTTP API
//! (and CLI) from outside, exactly as a client written elsewhere would.

mod support;

mod backup;
mod cli;
mod cluster;
mod config;
mod crash;
mod demo;
mod dns;
mod endpoints;
mod forwarding;
mod gateway;
mod health;
mod kv;
mod leases;
mod node;
mod registry;
mod routes;
mod sdk;
mod transactions;
mod txn;
mod txn_cli;
mod validation;
mod watch;
