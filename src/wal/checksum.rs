//! SQLite's WAL checksum: a pair of u32 sums, accumulated over 8-byte chunks read as two
//! 32-bit words, cumulative from one frame to the next.
//!
//! The words are read in the byte order the WAL's magic number selects (its low bit: 0 =
//! little-endian words, 1 = big-endian words), so a WAL written on one machine verifies on
//! another. Invariant: input lengths are multiples of 8 (headers and pages always are).

/// The magic of a WAL whose checksums read words little-endian.
pub const MAGIC_LITTLE_ENDIAN: u32 = 0x377f_0682;
/// The magic of a WAL whose checksums read words big-endian.
pub const MAGIC_BIG_ENDIAN: u32 = 0x377f_0683;

/// How checksum input bytes are grouped into u32 words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordOrder {
    /// Words are little-endian (magic 0x377f0682).
    Little,
    /// Words are big-endian (magic 0x377f0683).
    Big,
}

impl WordOrder {
    /// The order of this machine: what SQLite writes here, and the order of the wal-index
    /// header checksum (always native).
    pub const fn native() -> Self {
        if cfg!(target_endian = "big") {
            WordOrder::Big
        } else {
            WordOrder::Little
        }
    }

    /// The order a WAL magic number selects, or `None` for a foreign magic.
    pub const fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            MAGIC_LITTLE_ENDIAN => Some(WordOrder::Little),
            MAGIC_BIG_ENDIAN => Some(WordOrder::Big),
            _ => None,
        }
    }

    /// The WAL magic number announcing this order.
    pub const fn magic(self) -> u32 {
        match self {
            WordOrder::Little => MAGIC_LITTLE_ENDIAN,
            WordOrder::Big => MAGIC_BIG_ENDIAN,
        }
    }

    /// The wal-index `bigEndCksum` flag for this order.
    pub const fn is_big(self) -> bool {
        matches!(self, WordOrder::Big)
    }

    fn word(self, bytes: [u8; 4]) -> u32 {
        match self {
            WordOrder::Little => u32::from_le_bytes(bytes),
            WordOrder::Big => u32::from_be_bytes(bytes),
        }
    }
}

/// A running WAL checksum (`s1`, `s2`). The zero value seeds the WAL header's checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(pub [u32; 2]);

impl Checksum {
    /// Continues this checksum over `bytes` (length a multiple of 8).
    pub fn extend(self, order: WordOrder, bytes: &[u8]) -> Checksum {
        assert!(bytes.len().is_multiple_of(8), "WAL checksum input must be 8-byte aligned");
        let [mut s1, mut s2] = self.0;
        for chunk in bytes.chunks_exact(8) {
            let x0 = order.word([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let x1 = order.word([chunk[4], chunk[5], chunk[6], chunk[7]]);
            s1 = s1.wrapping_add(x0).wrapping_add(s2);
            s2 = s2.wrapping_add(x1).wrapping_add(s1);
        }
        Checksum([s1, s2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the sums follow the published recurrence s1 += x0 + s2; s2 += x1 + s1.
    #[test]
    fn recurrence_by_hand() {
        let mut bytes = Vec::new();
        for w in [1u32, 2, 3, 4] {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        // chunk 1: s1 = 1, s2 = 2 + 1 = 3; chunk 2: s1 = 1 + 3 + 3 = 7, s2 = 3 + 4 + 7 = 14.
        assert_eq!(Checksum::default().extend(WordOrder::Big, &bytes), Checksum([7, 14]));
    }

    // Goal: the word order changes the result, and matches reading the bytes swapped.
    #[test]
    fn word_order_matters() {
        let bytes: Vec<u8> = (1..=16).collect();
        let big = Checksum::default().extend(WordOrder::Big, &bytes);
        let little = Checksum::default().extend(WordOrder::Little, &bytes);
        assert_ne!(big, little);
        let swapped: Vec<u8> = bytes.chunks(4).flat_map(|w| w.iter().rev().copied()).collect();
        assert_eq!(Checksum::default().extend(WordOrder::Little, &swapped), big);
    }

    // Goal: extending in two pieces equals extending once (the checksum is cumulative).
    #[test]
    fn cumulative() {
        let bytes: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37)).collect();
        let once = Checksum([5, 9]).extend(WordOrder::Little, &bytes);
        let twice = Checksum([5, 9])
            .extend(WordOrder::Little, &bytes[..24])
            .extend(WordOrder::Little, &bytes[24..]);
        assert_eq!(once, twice);
    }

    // Goal: sums wrap instead of overflowing.
    #[test]
    fn wraps() {
        let bytes = [0xffu8; 16];
        let sum = Checksum([u32::MAX, u32::MAX]).extend(WordOrder::Big, &bytes);
        assert_ne!(sum, Checksum([u32::MAX, u32::MAX]));
    }

    // Goal: the magic numbers map to and from their orders; foreign magics are refused.
    #[test]
    fn magic_round_trip() {
        for order in [WordOrder::Little, WordOrder::Big] {
            assert_eq!(WordOrder::from_magic(order.magic()), Some(order));
        }
        assert_eq!(WordOrder::from_magic(0x377f_0684), None);
        assert_eq!(WordOrder::native().magic() & 1 == 1, cfg!(target_endian = "big"));
    }
}
