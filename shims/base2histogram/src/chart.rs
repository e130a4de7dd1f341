//! Histograms drawn as text: one bar per non-empty bucket, for logs and terminals.

use std::fmt;

use crate::Histogram;

/// The longest bar, in characters; the other bars are scaled to it.
const BAR_WIDTH: u64 = 40;

/// Named histograms to draw one after another.
#[derive(Debug, Clone, Default)]
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

impl<T> AsciiChart<T> {
    pub fn new() -> Self {
        AsciiChart { series: Vec::new() }
    }

    /// Adds `histogram` under `name`.
    pub fn add(mut self, name: impl ToString, histogram: Histogram<T>) -> Self {
        self.series.push((name.to_string(), histogram));
        self
    }

    /// Every series: its name and sample count, then a line per non-empty bucket with the
    /// bucket's values, a bar and the count.
    pub fn detailed(&self) -> impl fmt::Display + '_ {
        Detailed(self)
    }
}

struct Detailed<'a, T>(&'a AsciiChart<T>);

impl<T> fmt::Display for Detailed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, histogram) in &self.0.series {
            writeln!(f, "{name} (n={})", histogram.total())?;
            let largest =
                histogram.nonempty_buckets().map(|(_, _, count)| count).max().unwrap_or(0);
            for (low, high, count) in histogram.nonempty_buckets() {
                // At least one mark, so that a bucket with few values still shows.
                let marks = (u128::from(count) * u128::from(BAR_WIDTH) / u128::from(largest)).max(1)
                    as usize;
                let values = if low == high { low.to_string() } else { format!("{low}-{high}") };
                writeln!(
                    f,
                    "  {values:>24} | {:<width$} {count}",
                    "#".repeat(marks),
                    width = BAR_WIDTH as usize
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_shows_its_buckets_and_counts() {
        let mut fast = Histogram::<()>::new();
        fast.record_n(3, 10);
        fast.record(100);
        let mut slow = Histogram::<()>::new();
        slow.record(5_000);
        let text = AsciiChart::new().add("fast", fast).add("slow", slow).detailed().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "fast (n=11)");
        assert!(
            lines[1].trim_start().starts_with("3 | ")
                && lines[1].ends_with(&format!("{} 10", "#".repeat(40))),
            "{text}"
        );
        assert!(
            lines[2].trim_start().starts_with("96-103 | #### ") && lines[2].ends_with(" 1"),
            "{text}"
        );
        assert_eq!(lines[3], "slow (n=1)");
        assert!(lines[4].contains("4608-5119 | "), "{text}");
    }
}
