//! The routing state the request path reads: one immutable snapshot, swapped
//! whole when routes change.

use std::sync::{Arc, PoisonError, RwLock};

use crate::matching::RouteTable;

/// The routes as of one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Routes in match order.
    pub table: RouteTable,
    /// Whether routes have been loaded from Concord at least once; before
    /// that, an unmatched request is "not ready", not "no route".
    pub loaded: bool,
    /// The route revision this snapshot reflects.
    pub revision: u64,
}

/// The current snapshot. Readers hold the lock only to clone the `Arc`, so
/// the request path never waits on discovery.
#[derive(Debug, Default)]
pub struct Shared {
    current: RwLock<Arc<Snapshot>>,
}

impl Shared {
    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }
}
