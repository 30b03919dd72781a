//! Latency samples and their percentiles.

use std::time::Duration;

/// Latency samples of one run (or one worker, merged later with [`Samples::merge`]).
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Records one sample.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Moves every sample of `other` into `self`.
    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Sorts the samples and returns their percentiles.
    pub fn summary(mut self) -> Summary {
        self.0.sort_unstable();
        Summary {
            p50: percentile(&self.0, 50.0),
            p99: percentile(&self.0, 99.0),
            max: self.0.last().copied(),
        }
    }
}

/// Percentiles of a set of samples; `None` when there were no samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Median.
    pub p50: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// Largest sample.
    pub max: Option<Duration>,
}

/// The `q`-th percentile (0 < q <= 100) of `sorted` by the nearest-rank method: the
/// smallest sample such that at least q% of the samples are at or below it.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds with two decimals, or `nan` when absent (how the report shows "no data").
pub fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2}", d.as_secs_f64() * 1e3),
        None => "nan".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = millis(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 0.1), Some(Duration::from_millis(1)));
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(percentile(&[], 50.0), None);
        let one = millis(&[7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        // Ten samples: p99 is the largest, p50 the fifth.
        let ten = millis(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&ten, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&ten, 99.0), Some(Duration::from_millis(10)));
    }

    #[test]
    fn summary_sorts_merged_samples() {
        let mut a = Samples::default();
        for m in [30, 10] {
            a.push(Duration::from_millis(m));
        }
        let mut b = Samples::default();
        b.push(Duration::from_millis(20));
        a.merge(b);
        let s = a.summary();
        assert_eq!(s.p50, Some(Duration::from_millis(20)));
        assert_eq!(s.max, Some(Duration::from_millis(30)));
        assert_eq!(Samples::default().summary().p99, None);
    }

    #[test]
    fn ms_formatting() {
        assert_eq!(ms(Some(Duration::from_micros(1_234))), "1.23");
        assert_eq!(ms(None), "nan");
    }
}
