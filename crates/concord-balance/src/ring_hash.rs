//! Consistent hashing on a ring of virtual nodes (Karger et al., as in Envoy's
//! `RING_HASH`).
//!
//! Each endpoint owns points on a `u64` ring, in number proportional to its
//! weight; a key goes to the owner of the first point at or after it. Adding
//! an endpoint only takes over the keys just before its new points, so about
//! `1 / (n + 1)` of the keys move and none move between old endpoints.

use crate::hash::{GOLDEN_GAMMA, hash_key, mix64};

/// A built ring; immutable, shared by every pick of one endpoint set.
#[derive(Debug)]
pub(crate) struct Ring {
    /// `(position, member index)`, sorted by position.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring for members given as `(id, weight)`, with
    /// `per_weight` virtual nodes per unit of weight, scaled down if needed so
    /// the ring has at most about `max_points` points. Every member keeps at
    /// least one point.
    pub(crate) fn new(members: &[(&str, u32)], per_weight: u32, max_points: usize) -> Self {
        let wanted: u64 = members
            .iter()
            .map(|&(_, w)| u64::from(w) * u64::from(per_weight))
            .sum();
        let scale = (max_points as f64 / wanted.max(1) as f64).min(1.0);
        let mut points = Vec::new();
        for (index, &(id, weight)) in members.iter().enumerate() {
            let vnodes = ((f64::from(weight) * f64::from(per_weight) * scale) as u64).max(1);
            // Positions form a SplitMix64 sequence seeded by the id: stable
            // across processes, and independent of the other members.
            let base = hash_key(id.as_bytes());
            points.extend((1..=vnodes).map(|v| {
                let position = mix64(base.wrapping_add(v.wrapping_mul(GOLDEN_GAMMA)));
                (position, index as u32)
            }));
        }
        // Sorting by (position, index) keeps the rare collision deterministic.
        points.sort_unstable();
        Self { points }
    }

    /// The member owning `key`. The key is mixed first so that sequential or
    /// clustered keys spread over the ring.
    pub(crate) fn lookup(&self, key: u64) -> usize {
        let key = mix64(key);
        let at = self.points.partition_point(|&(position, _)| position < key);
        let (_, index) = self.points.get(at).unwrap_or(&self.points[0]);
        *index as usize
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests;
