//! Which bucket a value falls in, and which values a bucket holds: computed from the value's
//! bits, so no table is needed.
//!
//! Values below [`SUB_BUCKETS`] have a bucket each. Above that, the values from 2^k to
//! 2^(k+1) - 1 are split into [`SUB_BUCKETS`] buckets of equal width, by the three bits below
//! the highest set bit: a bucket is at most 1/8 as wide as the values it holds.

/// Buckets per power of two (and the exact values at the bottom).
pub const SUB_BUCKETS: usize = 8;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();

/// How many buckets cover every `u64`: the exact ones, then 8 per power of two from 2^3 up.
pub const COUNT: usize = SUB_BUCKETS * (u64::BITS - SUB_BITS + 1) as usize;

/// The bucket that holds `value`.
pub fn index_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let highest_bit = u64::BITS - 1 - value.leading_zeros();
    let shift = highest_bit - SUB_BITS;
    // The top four bits, 8..=15: which eighth of its power of two the value is in.
    let top = (value >> shift) as usize;
    SUB_BUCKETS * (shift as usize + 1) + (top - SUB_BUCKETS)
}

/// The smallest and largest value bucket `index` holds.
pub fn bounds(index: usize) -> (u64, u64) {
    assert!(index < COUNT, "bucket {index} of {COUNT}");
    if index < SUB_BUCKETS {
        return (index as u64, index as u64);
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let top = (SUB_BUCKETS + index % SUB_BUCKETS) as u64;
    let low = top << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// The value a percentile falling in bucket `index` is reported as: the bucket's middle,
/// which is at most half a bucket (1/16 of the value) from any value it holds.
pub fn representative(index: usize) -> u64 {
    let (low, high) = bounds(index);
    low + (high - low) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_have_a_bucket_each() {
        for value in 0..SUB_BUCKETS as u64 {
            assert_eq!(bounds(index_of(value)), (value, value));
        }
    }

    #[test]
    fn buckets_tile_every_value_in_order() {
        let mut next = 0u64;
        for index in 0..COUNT {
            let (low, high) = bounds(index);
            assert_eq!(low, next, "bucket {index} starts where the previous one ended");
            assert!(high >= low);
            assert_eq!(index_of(low), index);
            assert_eq!(index_of(high), index);
            next = high.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn a_bucket_is_at_most_an_eighth_of_its_values() {
        for index in SUB_BUCKETS..COUNT {
            let (low, high) = bounds(index);
            let width = high - low + 1;
            assert!(width * 8 <= low, "bucket {index}: {low}..={high}");
        }
    }

    #[test]
    fn the_representative_is_inside_its_bucket() {
        for index in 0..COUNT {
            let (low, high) = bounds(index);
            let middle = representative(index);
            assert!(low <= middle && middle <= high);
        }
    }
}
