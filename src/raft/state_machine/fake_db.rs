//! An in-memory [`Database`] for tests: pages in a map, images as rmp-serde files, and a log of
//! every call so tests can check which path the state machine took.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use super::Database;
use crate::raft::types::{LogIndex, PageSet, ProposalId};

/// What the state machine asked of the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Finish(ProposalId, LogIndex),
    Reject(ProposalId),
    Apply(LogIndex),
}

#[derive(Default)]
pub(crate) struct FakeDb {
    pub(crate) pages: Mutex<BTreeMap<u32, Vec<u8>>>,
    /// Proposals this node is "waiting on" (finish_local returns true for them).
    pub(crate) pending: Mutex<Vec<ProposalId>>,
    pub(crate) calls: Mutex<Vec<Call>>,
    /// Whether `holds` vouches for any position (as a database that survived a process
    /// crash would).
    pub(crate) vouch: std::sync::atomic::AtomicBool,
}

impl FakeDb {
    pub(crate) fn page(&self, n: u32) -> Option<Vec<u8>> {
        self.pages.lock().unwrap().get(&n).cloned()
    }
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Database for FakeDb {
    fn finish_local(&self, proposal: ProposalId, index: LogIndex) -> io::Result<bool> {
        let mut pending = self.pending.lock().unwrap();
        let Some(pos) = pending.iter().position(|p| *p == proposal) else {
            return Ok(false);
        };
        pending.remove(pos);
        self.calls.lock().unwrap().push(Call::Finish(proposal, index));
        Ok(true)
    }
    fn reject_local(&self, proposal: ProposalId) {
        self.calls.lock().unwrap().push(Call::Reject(proposal));
    }
    fn apply_pages(&self, index: LogIndex, pages: &PageSet) -> io::Result<()> {
        let mut map = self.pages.lock().unwrap();
        for p in &pages.pages {
            map.insert(p.number, p.data.to_vec());
        }
        self.calls.lock().unwrap().push(Call::Apply(index));
        Ok(())
    }
    fn export_image(&self, path: &Path) -> io::Result<()> {
        let bytes = rmp_serde::to_vec(&*self.pages.lock().unwrap()).map_err(io::Error::other)?;
        std::fs::write(path, bytes)
    }
    fn import_image(&self, path: &Path) -> io::Result<()> {
        let bytes = std::fs::read(path)?;
        *self.pages.lock().unwrap() = rmp_serde::from_slice(&bytes).map_err(io::Error::other)?;
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_last_write_index(&self, _index: LogIndex) {}

    fn position(&self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn holds(&self, _position: &[u8]) -> io::Result<bool> {
        Ok(self.vouch.load(std::sync::atomic::Ordering::Relaxed))
    }
}
