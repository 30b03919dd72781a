//! What can be proposed to the log, and what applying it answers.

use concord_api::config::{ConfigFormat, GraySelector};
use concord_api::registry::{HealthStatus, Instance, InstanceSpec};
use concord_api::txn::{CompareOp, CompareTarget};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigKey, PublishMeta};
use crate::kv::KvEntry;
use crate::registry::InstanceRef;

/// A change to replicated state. Inputs are already validated by the server;
/// `apply` still refuses what would break an invariant (missing lease, failed CAS).
///
/// Serializes in postcard as well as JSON: the embedded API types write every field
/// (no `skip_serializing_if`), which a non-self-describing format needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Register or replace an instance. With `spec.ttl_secs` a fresh private lease is
    /// granted and bound to it (any previous private lease of the instance is dropped,
    /// deleting any key a client had bound to it).
    Register {
        /// Namespace, service and instance id.
        at: InstanceRef,
        /// What to register; `ttl_secs` makes the instance ephemeral.
        spec: InstanceSpec,
    },
    /// Remove an instance (and its private lease, with any key bound to it).
    Deregister {
        /// The instance.
        at: InstanceRef,
    },
    /// A health check changed status (after damping, on the server that owns it,
    /// or from a TTL update).
    CheckStatus {
        /// The instance.
        at: InstanceRef,
        /// The check's id.
        check: String,
        /// Its new status (`passing`, `warning` or `critical`).
        status: HealthStatus,
        /// What the status is based on.
        output: String,
        /// Apply only if the check is still in this status (a probe owner's view).
        expected: Option<HealthStatus>,
    },
    /// Turn maintenance on (with its reason) or off.
    Maintenance {
        /// The instance.
        at: InstanceRef,
        /// `Some(reason)`: on; `None`: off.
        reason: Option<String>,
    },
    /// Remove an instance that has been critical since revision `since`, if it still is.
    ReapCritical {
        /// The instance.
        at: InstanceRef,
        /// Its `status_revision` when it was found critical for too long.
        since: u64,
    },
    /// Write a key. `cas`: the mod_revision that must be current (0 = must not exist).
    Put {
        /// The key.
        key: String,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Lease to bind the key to (it must exist); `None` unbinds it.
        lease: Option<u64>,
        /// Compare-and-swap guard on the key's mod_revision.
        cas: Option<u64>,
    },
    /// Delete a key, or every key under a prefix. `cas` only applies to single keys.
    Delete {
        /// The key, or the prefix when `prefix` is set.
        key: String,
        /// Delete every key starting with `key`.
        prefix: bool,
        /// Compare-and-swap guard for a single key; ignored for prefixes.
        cas: Option<u64>,
    },
    /// Compares, then one branch, atomically, under one revision.
    Txn {
        /// Guards that must all hold for `success` to run.
        compare: Vec<Compare>,
        /// Ops run when every compare holds.
        success: Vec<TxnOp>,
        /// Ops run otherwise.
        failure: Vec<TxnOp>,
    },
    /// Grant a lease; the state machine picks the id.
    LeaseGrant {
        /// Time to live; only the leader's timers use it.
        ttl_secs: u32,
    },
    /// Revoke a lease: everything bound to it is deleted (instances as `deregister`).
    LeaseRevoke {
        /// The lease.
        id: u64,
    },
    /// The leader saw a lease run out: like revoke, but instances go as `expire`.
    LeaseExpire {
        /// The lease.
        id: u64,
    },
    /// Publish a new version of a config item (content validated and hashed by the server).
    ConfigPublish {
        /// The item.
        key: ConfigKey,
        /// How the content parses.
        format: ConfigFormat,
        /// The content.
        content: String,
        /// Its hex SHA-256.
        sha256: String,
        /// Publish only over this version (0: only if absent).
        cas: Option<u64>,
        /// Comment, time and history depth.
        meta: PublishMeta,
    },
    /// Delete a config item.
    ConfigDelete {
        /// The item.
        key: ConfigKey,
        /// When it was proposed (for the watch event).
        at_ms: u64,
    },
    /// Publish a kept version's content as a new version.
    ConfigRollback {
        /// The item.
        key: ConfigKey,
        /// The version to restore.
        version: u64,
        /// Comment, time and history depth.
        meta: PublishMeta,
    },
    /// Stage a gray candidate for selected instances.
    ConfigGray {
        /// The item.
        key: ConfigKey,
        /// The candidate content (validated in the item's format).
        content: String,
        /// Its hex SHA-256.
        sha256: String,
        /// Who gets it.
        selector: GraySelector,
        /// When it was proposed.
        at_ms: u64,
    },
    /// Publish the gray candidate as the next version.
    ConfigGrayPromote {
        /// The item.
        key: ConfigKey,
        /// Comment, time and history depth.
        meta: PublishMeta,
    },
    /// Withdraw the gray candidate.
    ConfigGrayCancel {
        /// The item.
        key: ConfigKey,
        /// When it was proposed.
        at_ms: u64,
    },
    /// Create or replace a gateway route (validated, canonical JSON).
    RoutePut {
        /// The route's name.
        name: String,
        /// The route as JSON.
        json: String,
    },
    /// Delete a gateway route.
    RouteDelete {
        /// The route's name.
        name: String,
    },
    /// Replace the whole replicated state with a snapshot (`StateMachine::snapshot`
    /// bytes), to seed a cluster from a backup. Goes through the log like any change so
    /// every member, and every member added later, gets it.
    Restore {
        /// The snapshot bytes.
        #[serde(with = "serde_bytes")]
        snapshot: Vec<u8>,
    },
    /// Create a distributed transaction (idempotent for a client id with the same body).
    TxnCreate {
        /// The validated transaction.
        txn: crate::transactions::NewTxn,
        /// Wall clock of the node that took the request, for display.
        at_ms: u64,
    },
    /// What the leader's driver saw: call results, restarts, the deadline.
    TxnAdvance {
        /// The transaction.
        id: String,
        /// The driving leader's term; a driver from a term older than the one the
        /// record was last driven or changed in is refused.
        term: u64,
        /// Leader wall clock, for display.
        at_ms: u64,
        /// Driving time used so far (monotonic, summed over leaders).
        elapsed_ms: u64,
        /// What happened, in order.
        events: Vec<crate::transactions::TxnEvent>,
    },
    /// A TCC branch joins.
    TxnBranch {
        /// The transaction.
        id: String,
        /// The validated branch.
        step: crate::transactions::NewStep,
        /// Wall clock of the node that took the request, for display.
        at_ms: u64,
    },
    /// A client's commit or abort, an operator's retry or resolve.
    TxnDecide {
        /// The transaction.
        id: String,
        /// What was decided.
        decision: crate::transactions::TxnDecision,
        /// Wall clock of the node that took the request, for display.
        at_ms: u64,
    },
    /// Drop finished transactions past their retention.
    TxnForget {
        /// Their ids; ones not final are kept.
        ids: Vec<String>,
    },
}

/// One guard of a transaction.
///
/// A missing key counts as version, create_revision and mod_revision 0; its value
/// only satisfies `!=`. A `value` whose kind does not fit `target` never holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key looked at.
    pub key: String,
    /// What of the key is compared.
    pub target: CompareTarget,
    /// How the key's side relates to `value`.
    pub op: CompareOp,
    /// The other side.
    pub value: CompareValue,
}

/// The value side of a compare: bytes for `value`, a number for the revision targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareValue {
    /// For the `value` target; compared lexicographically.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// For `version`, `create_revision` and `mod_revision`.
    Number(u64),
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Write a key, like `Command::Put` without CAS.
    Put {
        /// The key.
        key: String,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Lease to bind to; checked before the branch changes anything.
        lease: Option<u64>,
    },
    /// Read a key as the branch has left it so far.
    Get {
        /// The key.
        key: String,
    },
    /// Delete a key or a prefix.
    Delete {
        /// The key, or the prefix when `prefix` is set.
        key: String,
        /// Delete every key starting with `key`.
        prefix: bool,
    },
}

/// What one transaction operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpOutcome {
    /// The key was written.
    Put {
        /// The key.
        key: String,
    },
    /// The key as read, `None` if absent.
    Get {
        /// The key.
        key: String,
        /// Its entry at that point of the branch.
        entry: Option<KvEntry>,
    },
    /// Keys removed.
    Delete {
        /// The key or prefix.
        key: String,
        /// How many keys went.
        deleted: u64,
    },
}

/// What applying a command produced. `revision` is the store revision after it
/// (unchanged when nothing changed, e.g. a transaction whose branch only reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answer to `Register`.
    Registered {
        /// Store revision after the command.
        revision: u64,
        /// The instance as stored.
        instance: Instance,
        /// Its new private lease, for ephemeral instances.
        lease: Option<u64>,
    },
    /// Answer to `Deregister`.
    Deregistered {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `Put`.
    Put {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `Delete`.
    Deleted {
        /// Store revision after the command (unchanged if nothing was deleted).
        revision: u64,
        /// How many keys went.
        deleted: u64,
    },
    /// Answer to `Txn`.
    Txn {
        /// Store revision after the command (unchanged if the branch changed nothing).
        revision: u64,
        /// Whether every compare held, i.e. `success` ran.
        succeeded: bool,
        /// One result per op of the branch that ran, in order.
        results: Vec<TxnOpOutcome>,
    },
    /// Answer to `LeaseGrant`.
    LeaseGranted {
        /// Store revision after the command.
        revision: u64,
        /// The new lease's id.
        id: u64,
        /// Its time to live, echoed.
        ttl_secs: u32,
    },
    /// Answer to `LeaseRevoke` and `LeaseExpire`.
    LeaseRevoked {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `CheckStatus`.
    CheckStatus {
        /// Store revision after the command.
        revision: u64,
        /// The check's status now.
        status: HealthStatus,
        /// Whether the status moved (false: already there, or `expected` did not hold).
        changed: bool,
    },
    /// Answer to `Maintenance`.
    Maintenance {
        /// Store revision after the command.
        revision: u64,
        /// The instance as it now is.
        instance: Instance,
    },
    /// Answer to `ReapCritical`.
    Reaped {
        /// Store revision after the command.
        revision: u64,
        /// Whether the instance went (false: it recovered or was already gone).
        removed: bool,
    },
    /// Answer to `ConfigPublish`, `ConfigRollback` and `ConfigGrayPromote`.
    ConfigPublished {
        /// Store revision after the command.
        revision: u64,
        /// The item's current version.
        version: u64,
        /// Its content's hex SHA-256.
        sha256: String,
    },
    /// Answer to `ConfigDelete`.
    ConfigDeleted {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `ConfigGray` and `ConfigGrayCancel`.
    ConfigGray {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `RoutePut` and `RouteDelete`.
    RouteChanged {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `Restore`.
    Restored {
        /// Store revision after the command.
        revision: u64,
    },
    /// Answer to `TxnCreate`.
    TxnCreated {
        /// Store revision after the command.
        revision: u64,
        /// The transaction's id (chosen by the state machine if the client gave none).
        id: String,
        /// True when the id already existed with the same body (nothing changed).
        existed: bool,
    },
    /// Answer to `TxnAdvance`, `TxnBranch` and `TxnDecide`.
    TxnChanged {
        /// Store revision after the command.
        revision: u64,
        /// How many events applied (0: all were stale; nothing changed).
        applied: u32,
    },
    /// Answer to `TxnForget`.
    TxnForgotten {
        /// Store revision after the command.
        revision: u64,
        /// How many went.
        removed: u32,
    },
    /// The command was refused; nothing changed. Refusals are replicated results, not faults.
    Refused(StateError),
}

/// Why a command was refused. Deterministic, so every replica refuses alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StateError {
    /// A CAS guard did not match; `current` lets the client retry.
    #[error("compare-and-swap failed: the key's mod_revision is {current}")]
    CasFailed {
        /// The key's mod_revision now, 0 if absent.
        current: u64,
    },
    /// A put or revoke named a lease that does not exist.
    #[error("lease {0:016x} not found")]
    LeaseNotFound(u64),
    /// A restore carried bytes that are not a valid snapshot.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// A command that validation should have stopped (kept deterministic anyway).
    #[error("invalid command: {0}")]
    Invalid(String),
    /// A check update named a check the instance does not declare.
    #[error("instance {instance} has no check {check:?}")]
    CheckNotFound {
        /// `namespace/service/id`.
        instance: String,
        /// The check id.
        check: String,
    },
    /// A config publish's CAS guard did not match; `current` is the item's version (0: absent).
    #[error("compare-and-swap failed: the item's current version is {current}")]
    ConfigCasFailed {
        /// The item's version now, 0 if absent.
        current: u64,
    },
    /// A route delete named a route that does not exist.
    #[error("route {0:?} not found")]
    RouteNotFound(String),
    /// A config command named an item that does not exist.
    #[error("config {0} not found")]
    ConfigNotFound(String),
    /// A rollback named a version that is not (or no longer) kept.
    #[error("config {key} has no version {version} in its history")]
    ConfigVersionNotFound {
        /// `namespace/group/id`.
        key: String,
        /// The version asked for.
        version: u64,
    },
    /// A gray promote or cancel with no gray release staged.
    #[error("config {0} has no gray release staged")]
    NoGray(String),
    /// A transaction command named a transaction that does not exist.
    #[error("transaction {0:?} not found")]
    TxnNotFound(String),
    /// A transaction command that does not fit the transaction's state.
    #[error("{0}")]
    TxnConflict(String),
    /// A deregister named an instance that does not exist.
    #[error("instance {service}/{id} not found in namespace {namespace}")]
    InstanceNotFound {
        /// Namespace.
        namespace: String,
        /// Service name.
        service: String,
        /// Instance id.
        id: String,
    },
}
