//! An in-process wal-index: regions in memory and locks in a table. For tests and for tools
//! that own a database exclusively (nothing else maps it).
//!
//! Invariant: a region, once created, is never moved or shrunk, so handles stay valid.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::{IndexRegion, SharedIndex, REGION_BYTES};

/// Lock slots SQLite defines (write, checkpoint, recover, five readers).
const LOCK_SLOTS: usize = 8;

/// A handle on one in-memory region.
#[derive(Clone, Debug)]
pub struct MemoryRegion(Arc<Mutex<Vec<u8>>>);

impl MemoryRegion {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut bytes)
    }
}

impl IndexRegion for MemoryRegion {
    fn load_u32(&self, byte_offset: usize) -> u32 {
        assert!(byte_offset.is_multiple_of(4), "misaligned u32 offset");
        self.with(|b| {
            u32::from_ne_bytes([
                b[byte_offset],
                b[byte_offset + 1],
                b[byte_offset + 2],
                b[byte_offset + 3],
            ])
        })
    }

    fn store_u32(&self, byte_offset: usize, value: u32) {
        assert!(byte_offset.is_multiple_of(4), "misaligned u32 offset");
        self.with(|b| b[byte_offset..byte_offset + 4].copy_from_slice(&value.to_ne_bytes()));
    }

    fn load_u16(&self, byte_offset: usize) -> u16 {
        assert!(byte_offset.is_multiple_of(2), "misaligned u16 offset");
        self.with(|b| u16::from_ne_bytes([b[byte_offset], b[byte_offset + 1]]))
    }

    fn store_u16(&self, byte_offset: usize, value: u16) {
        assert!(byte_offset.is_multiple_of(2), "misaligned u16 offset");
        self.with(|b| b[byte_offset..byte_offset + 2].copy_from_slice(&value.to_ne_bytes()));
    }
}

/// An in-memory wal-index, all zeros at first (as a new `-shm` file).
#[derive(Debug, Default)]
pub struct MemoryIndex {
    regions: Mutex<Vec<MemoryRegion>>,
    locks: Mutex<[bool; LOCK_SLOTS]>,
}

impl MemoryIndex {
    /// An empty index (no regions, no locks held).
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every region's bytes, concatenated, as the `-shm` file would hold them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let regions = self.regions.lock().unwrap_or_else(PoisonError::into_inner);
        regions.iter().flat_map(|r| r.with(|b| b.clone())).collect()
    }
}

impl SharedIndex for MemoryIndex {
    type Region = MemoryRegion;

    fn region(&self, n: usize) -> io::Result<MemoryRegion> {
        let mut regions = self.regions.lock().unwrap_or_else(PoisonError::into_inner);
        while regions.len() <= n {
            regions.push(MemoryRegion(Arc::new(Mutex::new(vec![0u8; REGION_BYTES]))));
        }
        Ok(regions[n].clone())
    }

    fn barrier(&self) {
        // Region mutexes already order every access within this process.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    fn try_lock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<bool> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = locks
            .get_mut(first_slot..first_slot + count)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "lock slot out of range"))?;
        if slots.iter().any(|held| *held) {
            return Ok(false);
        }
        slots.fill(true);
        Ok(true)
    }

    fn unlock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<()> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = locks
            .get_mut(first_slot..first_slot + count)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "lock slot out of range"))?;
        slots.fill(false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: values round-trip natively, u16 halves do not clobber each other, new regions are zero.
    #[test]
    fn region_access() {
        let index = MemoryIndex::new();
        let r = index.region(1).unwrap();
        assert_eq!(r.load_u32(400), 0);
        r.store_u32(400, 0xdead_beef);
        r.store_u16(404, 7);
        r.store_u16(406, 9);
        assert_eq!(r.load_u32(400), 0xdead_beef);
        assert_eq!((r.load_u16(404), r.load_u16(406)), (7, 9));
        assert_eq!(index.region(1).unwrap().load_u32(400), 0xdead_beef);
        assert_eq!(index.to_bytes().len(), 2 * REGION_BYTES);
    }

    // Goal: exclusive locks conflict on overlap and are released by unlock.
    #[test]
    fn locks_conflict() {
        let index = MemoryIndex::new();
        assert!(index.try_lock_exclusive(3, 5).unwrap());
        assert!(!index.try_lock_exclusive(7, 1).unwrap());
        assert!(index.try_lock_exclusive(0, 1).unwrap());
        index.unlock_exclusive(3, 5).unwrap();
        assert!(index.try_lock_exclusive(7, 1).unwrap());
        assert!(index.try_lock_exclusive(8, 1).is_err());
    }
}
