//! Round robin and nginx's smooth weighted round robin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The next index of plain round robin over `n` members.
///
/// The cursor lives in the balancer, not the set, so frequent set swaps do not
/// restart every cycle at the first member and overload it.
pub(crate) fn next(cursor: &AtomicU64, n: usize) -> usize {
    (cursor.fetch_add(1, Ordering::Relaxed) % n as u64) as usize
}

/// nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`): each
/// pick adds every member's weight to its current weight, takes the largest
/// (first on ties) and subtracts the total from it. Over one cycle of
/// `total` picks each member is chosen exactly `weight` times, spread out
/// rather than in bursts: weights 5,1,1 give `a a b a c a a`.
///
/// nginx also lowers an "effective weight" after failures; here failure
/// handling belongs to health checks and outlier detection, so the effective
/// weight is the configured one.
#[derive(Debug)]
pub(crate) struct SmoothWeighted {
    weights: Vec<i64>,
    total: i64,
    /// Per-member current weights: a short lock over an O(n) scan, as in nginx.
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        Self {
            total: weights.iter().sum(),
            current: Mutex::new(vec![0; weights.len()]),
            weights,
        }
    }

    /// The next member; the set must not be empty.
    pub(crate) fn next(&self) -> usize {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut best, mut best_weight) = (0, i64::MIN);
        for (i, (cw, w)) in current.iter_mut().zip(&self.weights).enumerate() {
            *cw += w;
            // Strictly greater: the first of equals wins, as in nginx.
            if *cw > best_weight {
                (best, best_weight) = (i, *cw);
            }
        }
        current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(weights: &[u32], n: usize) -> String {
        let wrr = SmoothWeighted::new(weights.iter().copied());
        (0..n).map(|_| (b'a' + wrr.next() as u8) as char).collect()
    }

    #[test]
    fn nginx_documented_sequence() {
        assert_eq!(sequence(&[5, 1, 1], 14), "aabacaaaabacaa");
    }

    #[test]
    fn each_cycle_honours_weights_exactly() {
        let weights = [3, 1, 4, 2];
        let seq = sequence(&weights, 10 * 100);
        for (i, w) in weights.iter().enumerate() {
            let c = (b'a' + i as u8) as char;
            assert_eq!(seq.matches(c).count(), *w as usize * 100);
        }
    }

    #[test]
    fn equal_weights_alternate() {
        assert_eq!(sequence(&[2, 2], 6), "ababab");
    }

    #[test]
    fn plain_round_robin_cycles() {
        let cursor = AtomicU64::new(0);
        let seq: Vec<usize> = (0..7).map(|_| next(&cursor, 3)).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2, 0]);
    }
}
