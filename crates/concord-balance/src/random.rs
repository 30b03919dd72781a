//! Weighted random sampling, used directly by `random` and to draw P2C candidates.

use crate::rng::Rng;

/// Prefix sums of the weights of a set's members, for O(log n) weighted draws
/// without allocating.
#[derive(Debug)]
pub(crate) struct Weights {
    /// `cumulative[i]` is the sum of the weights of members `0..=i`; all
    /// weights are positive, so it is strictly increasing.
    cumulative: Vec<u64>,
}

impl Weights {
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0u64, |sum, w| {
                debug_assert!(w > 0, "weight-0 endpoints are filtered out first");
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.cumulative[i - 1] }
    }

    fn member_at(&self, point: u64) -> usize {
        self.cumulative.partition_point(|&c| c <= point)
    }

    /// One member, with probability proportional to its weight. The set must
    /// not be empty.
    pub(crate) fn sample(&self, rng: &Rng) -> usize {
        self.member_at(rng.below(self.total()))
    }

    /// Two distinct members, each drawn proportionally to weight: the second
    /// from the set without the first, by skipping the first's range of
    /// points. The set needs at least two members.
    pub(crate) fn sample_two(&self, rng: &Rng) -> (usize, usize) {
        let first = self.sample(rng);
        let start = self.start(first);
        let width = self.cumulative[first] - start;
        let mut point = rng.below(self.total() - width);
        if point >= start {
            point += width;
        }
        (first, self.member_at(point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_proportional_to_weight() {
        let weights = Weights::new([1, 2, 7]);
        let rng = Rng::new(Some(42));
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[weights.sample(&rng)] += 1;
        }
        for (count, expected) in counts.iter().zip([1_000, 2_000, 7_000]) {
            assert!(count.abs_diff(expected) < 250, "{counts:?}");
        }
    }

    #[test]
    fn sample_two_is_distinct_and_covers_every_pair() {
        let weights = Weights::new([3, 1, 1, 5]);
        let rng = Rng::new(Some(7));
        let mut pairs = [[0u32; 4]; 4];
        for _ in 0..10_000 {
            let (a, b) = weights.sample_two(&rng);
            assert_ne!(a, b);
            pairs[a][b] += 1;
        }
        for (a, row) in pairs.iter().enumerate() {
            for (b, &n) in row.iter().enumerate() {
                assert_eq!(n == 0, a == b, "{pairs:?}");
            }
        }
        // The weight-5 member is drawn first half the time, and second with
        // probability 0.3 * 5/7 + 2 * (0.1 * 5/9): in 82.5% of pairs overall.
        let heavy: u32 = (0..4).map(|i| pairs[3][i] + pairs[i][3]).sum();
        assert!(heavy.abs_diff(8_250) < 250, "{heavy}");
    }

    #[test]
    fn single_member_always_sampled() {
        let weights = Weights::new([9]);
        let rng = Rng::new(Some(1));
        assert!((0..100).all(|_| weights.sample(&rng) == 0));
    }
}
