//! A lock-free random source for `&self` picks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::{GOLDEN_GAMMA, mix64};

/// SplitMix64 over an atomic counter.
///
/// Every draw is one `fetch_add` plus a mix, so concurrent picks never contend
/// on a lock, and a fixed seed gives a reproducible sequence in single-threaded
/// tests. Statistical quality is ample for load balancing (it is Java's
/// `SplittableRandom`); it is not for cryptography.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A generator seeded with `seed`, or from the OS when `None`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self {
            state: AtomicU64::new(seed.unwrap_or_else(rand::random)),
        }
    }

    /// The next uniformly distributed `u64`.
    pub(crate) fn next_u64(&self) -> u64 {
        let s = self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed);
        mix64(s.wrapping_add(GOLDEN_GAMMA))
    }

    /// A value in `0..n` (`n > 0`), by Lemire's multiply-shift: no division, and
    /// the bias (at most n / 2^64) is far below anything a test can see.
    pub(crate) fn below(&self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (a, b) = (Rng::new(Some(7)), Rng::new(Some(7)));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = Rng::new(Some(1));
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[rng.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (850..=1150).contains(&n)), "{seen:?}");
    }
}
