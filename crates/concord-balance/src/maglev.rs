//! Google's Maglev consistent hashing (Eisenbud et al., NSDI 2016), with
//! Envoy's extension for weights.
//!
//! Each endpoint walks its own permutation of a prime-sized table and claims
//! the next free slot in turn until the table is full. Every endpoint ends up
//! with a share of slots proportional to its weight (to within one slot), so
//! the spread is far more even than a ring's, lookup is one array index, and
//! when the set changes only slightly more than the minimal `1 / (n + 1)` of
//! keys move.

use crate::hash::{mix64, xxh64};

const EMPTY: u32 = u32::MAX;

/// A built lookup table; immutable, shared by every pick of one endpoint set.
#[derive(Debug)]
pub(crate) struct Maglev {
    /// Member index for each slot.
    table: Vec<u32>,
}

/// One member's walk through the table while it is being filled.
struct Walk {
    position: u64,
    skip: u64,
    weight: u64,
    /// Envoy's weighting: a member claims a slot in round `r` only once
    /// `r * weight` reaches this target, which then grows by the largest
    /// weight, so a member with half the largest weight claims every other
    /// round.
    target: u64,
}

impl Maglev {
    /// Builds the table for members given as `(id, weight)`. `size` must be
    /// prime and at least the number of members, which must not be zero.
    pub(crate) fn new(members: &[(&str, u32)], size: u64) -> Self {
        debug_assert!(!members.is_empty() && members.len() as u64 <= size);
        let max_weight = members
            .iter()
            .map(|&(_, w)| u64::from(w))
            .max()
            .unwrap_or(1);
        let mut walks: Vec<Walk> = members
            .iter()
            .map(|&(id, weight)| Walk {
                // Offset and skip from two independent hashes of the id; a
                // skip in 1..size visits every slot because size is prime.
                position: xxh64(id.as_bytes(), 0) % size,
                skip: xxh64(id.as_bytes(), 1) % (size - 1) + 1,
                weight: u64::from(weight),
                target: 0,
            })
            .collect();
        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0;
        let mut round = 0u64;
        while filled < size {
            round += 1;
            for (index, walk) in walks.iter_mut().enumerate() {
                if filled == size {
                    break;
                }
                if round * walk.weight < walk.target {
                    continue;
                }
                walk.target += max_weight;
                while table[walk.position as usize] != EMPTY {
                    walk.position = (walk.position + walk.skip) % size;
                }
                table[walk.position as usize] = index as u32;
                filled += 1;
            }
        }
        Self { table }
    }

    /// The member owning `key`. The key is mixed first so that sequential or
    /// clustered keys spread over the table.
    pub(crate) fn lookup(&self, key: u64) -> usize {
        self.table[(mix64(key) % self.table.len() as u64) as usize] as usize
    }

    /// How many slots each of `n` members owns.
    #[cfg(test)]
    pub(crate) fn slots(&self, n: usize) -> Vec<usize> {
        let mut slots = vec![0; n];
        for &index in &self.table {
            slots[index as usize] += 1;
        }
        slots
    }
}

#[cfg(test)]
mod tests;
