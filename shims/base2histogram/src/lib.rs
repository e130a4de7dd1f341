//! Histograms of `u64` samples with percentiles: the part of the `base2histogram` 0.2 API
//! that openraft calls, without that crate's process-wide bucket table (README.md says why).

mod buckets;
mod chart;

use std::fmt;
use std::marker::PhantomData;

pub use chart::AsciiChart;

/// Counts of recorded values per bucket (see `buckets` for their bounds).
///
/// `T` is only there to keep openraft's `Histogram::<()>` spelling; nothing is stored of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram<T = ()> {
    counts: Vec<u64>,
    total: u64,
    label: PhantomData<T>,
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Histogram<T> {
    pub fn new() -> Self {
        Histogram { counts: vec![0; buckets::COUNT], total: 0, label: PhantomData }
    }

    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `value` `count` times.
    pub fn record_n(&mut self, value: u64, count: u64) {
        let bucket = &mut self.counts[buckets::index_of(value)];
        *bucket = bucket.saturating_add(count);
        self.total = self.total.saturating_add(count);
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value at `fraction` (0.0 to 1.0) of the recorded values, in ascending order: the
    /// middle of its bucket. 0 when nothing was recorded.
    pub fn percentile(&self, fraction: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // The rank of the wanted value, 1-based: the smallest value has rank 1.
        let rank =
            ((fraction.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                return buckets::representative(index);
            }
        }
        unreachable!("the counts add up to the total")
    }

    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// The non-empty buckets, lowest first: (smallest value, largest value, count).
    pub(crate) fn nonempty_buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, count)| **count > 0).map(|(index, count)| {
            let (low, high) = buckets::bounds(index);
            (low, high, *count)
        })
    }
}

/// A histogram's sample count and percentiles (`p0_1` is the 0.1th, `p99_9` the 99.9th).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p0.1={} p1={} p5={} p10={} p50={} p90={} p99={} p99.9={}",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let histogram = Histogram::<()>::new();
        assert_eq!(histogram.percentile_stats(), PercentileStats::default());
    }

    #[test]
    fn small_values_are_reported_exactly() {
        let mut histogram = Histogram::<()>::new();
        for value in [1, 2, 2, 3, 7] {
            histogram.record(value);
        }
        let stats = histogram.percentile_stats();
        assert_eq!((stats.samples, stats.p0_1, stats.p50, stats.p99_9), (5, 1, 2, 7));
    }

    #[test]
    fn percentiles_are_within_a_sixteenth_of_the_true_value() {
        let mut histogram = Histogram::<()>::new();
        for value in 1..=100_000u64 {
            histogram.record(value);
        }
        let stats = histogram.percentile_stats();
        assert_eq!(stats.samples, 100_000);
        for (reported, exact) in
            [(stats.p1, 1_000), (stats.p50, 50_000), (stats.p90, 90_000), (stats.p99, 99_000)]
        {
            let error = reported.abs_diff(exact);
            assert!(error * 16 <= exact, "reported {reported}, exact {exact}");
        }
    }

    #[test]
    fn record_n_counts_a_value_n_times() {
        let mut once_each = Histogram::<()>::new();
        let mut batched = Histogram::<()>::new();
        for _ in 0..5 {
            once_each.record(1_000);
        }
        batched.record_n(1_000, 5);
        assert_eq!(once_each, batched);
        assert_eq!(batched.total(), 5);
    }

    #[test]
    fn the_largest_values_do_not_overflow() {
        let mut histogram = Histogram::<()>::new();
        histogram.record_n(u64::MAX, u64::MAX);
        histogram.record(u64::MAX);
        assert_eq!(histogram.total(), u64::MAX);
        assert!(histogram.percentile(1.0) >= 15 << 60);
    }
}
