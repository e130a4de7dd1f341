//! Percentiles and rates over a `repeat`'s figures.

/// The `p`-th percentile (0..=100) of `values` in milliseconds, by nearest rank; None if empty.
pub fn percentile_ms(values_us: &[u64], p: f64) -> Option<f64> {
    if values_us.is_empty() {
        return None;
    }
    let mut sorted = values_us.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index] as f64 / 1000.0)
}

/// `count` per second over `elapsed_us`.
pub fn per_second(count: u64, elapsed_us: u64) -> f64 {
    if elapsed_us == 0 {
        return 0.0;
    }
    count as f64 * 1e6 / elapsed_us as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
        assert_eq!(per_second(10, 2_000_000), 5.0);
    }
}
