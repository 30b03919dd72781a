//! Versioned binary snapshots of the replicated state.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::history::HistoryLimits;
use crate::kv::KvEntry;
use crate::lease::Lease;
use crate::machine::StateMachine;
use crate::registry::Service;

/// The first byte of every snapshot; bump it when `SnapshotBody`'s layout changes
/// (2: namespaces and health checks in the registry, config items, routes;
/// 3: distributed transactions). Version 2 snapshots still restore, with no
/// transactions.
const FORMAT_VERSION: u8 = 3;
const FORMAT_V2: u8 = 2;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes end before the snapshot does (a cut-off transfer or file).
    #[error("snapshot is empty or truncated")]
    Truncated,
    /// Written by a format this build does not know (the first byte).
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u8),
    /// Undecodable, trailing bytes, or a state that breaks an invariant.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

/// The encoded body. `Cow` lets `snapshot` borrow the live maps while `restore`
/// decodes into owned ones, with one definition of the layout.
#[derive(Serialize, Deserialize)]
struct SnapshotBody<'a> {
    revision: u64,
    kv: Cow<'a, BTreeMap<String, KvEntry>>,
    services: Cow<'a, BTreeMap<(String, String), Service>>,
    leases: Cow<'a, BTreeMap<u64, Lease>>,
    configs: Cow<'a, crate::config::Configs>,
    routes: Cow<'a, BTreeMap<String, crate::routes::RouteEntry>>,
    next_lease_id: u64,
    txns: Cow<'a, crate::transactions::Txns>,
}

/// Version 2's body: version 3 without transactions.
#[derive(Deserialize)]
struct SnapshotBodyV2 {
    revision: u64,
    kv: BTreeMap<String, KvEntry>,
    services: BTreeMap<(String, String), Service>,
    leases: BTreeMap<u64, Lease>,
    configs: crate::config::Configs,
    routes: BTreeMap<String, crate::routes::RouteEntry>,
    next_lease_id: u64,
}

impl From<SnapshotBodyV2> for SnapshotBody<'static> {
    fn from(v2: SnapshotBodyV2) -> Self {
        SnapshotBody {
            revision: v2.revision,
            kv: Cow::Owned(v2.kv),
            services: Cow::Owned(v2.services),
            leases: Cow::Owned(v2.leases),
            configs: Cow::Owned(v2.configs),
            routes: Cow::Owned(v2.routes),
            next_lease_id: v2.next_lease_id,
            txns: Cow::Owned(BTreeMap::new()),
        }
    }
}

/// Decodes one body layout, insisting on no trailing bytes.
fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, SnapshotError> {
    let (snap, rest) = postcard::take_from_bytes::<T>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => SnapshotError::Truncated,
        e => SnapshotError::Corrupt(e.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(SnapshotError::Corrupt(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(snap)
}

impl StateMachine {
    /// Serializes the replicated state (not the local event history): a format
    /// version byte, then the postcard encoding.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_into(Vec::new())
    }

    /// [`StateMachine::snapshot`] into `buf` (cleared first). A buffer allocated
    /// and touched beforehand keeps allocation and page faults out of the time the
    /// caller holds the state, which writes wait for.
    pub fn snapshot_into(&self, mut buf: Vec<u8>) -> Vec<u8> {
        let body = SnapshotBody {
            revision: self.revision,
            kv: Cow::Borrowed(&self.kv),
            services: Cow::Borrowed(&self.services),
            leases: Cow::Borrowed(&self.leases),
            configs: Cow::Borrowed(&self.configs),
            routes: Cow::Borrowed(&self.routes),
            next_lease_id: self.next_lease_id,
            txns: Cow::Borrowed(&self.txns),
        };
        buf.clear();
        buf.push(FORMAT_VERSION);
        // Postcard into a Vec fails only for sequences of unknown length or a full
        // fixed buffer; maps, sets and strings always know their length.
        postcard::to_extend(&body, buf)
            .expect("postcard cannot fail encoding in-memory maps into a Vec")
    }

    /// Rebuilds a state machine from `snapshot`; its history starts empty and
    /// compacted at the snapshot's revision.
    ///
    /// Any byte string is safe to pass: bytes that end early are `Truncated`, bytes
    /// that do not decode, carry trailing garbage or describe an inconsistent state
    /// (say a key bound to a missing lease) are `Corrupt`.
    pub fn restore(bytes: &[u8], limits: HistoryLimits) -> Result<StateMachine, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Truncated)?;
        let snap: SnapshotBody<'_> = match version {
            FORMAT_VERSION => decode(body)?,
            FORMAT_V2 => decode::<SnapshotBodyV2>(body)?.into(),
            other => return Err(SnapshotError::UnsupportedVersion(other)),
        };
        let mut machine = StateMachine {
            revision: snap.revision,
            kv: snap.kv.into_owned(),
            services: snap.services.into_owned(),
            leases: snap.leases.into_owned(),
            configs: snap.configs.into_owned(),
            routes: snap.routes.into_owned(),
            next_lease_id: snap.next_lease_id,
            txns: snap.txns.into_owned(),
            txn_index: Default::default(),
            log_term: 0,
            log_index: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            compacted: snap.revision,
            limits,
        };
        machine.rebuild_txn_index();
        machine.check_invariants().map_err(SnapshotError::Corrupt)?;
        Ok(machine)
    }
}

#[cfg(test)]
mod tests;
