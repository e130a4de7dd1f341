//! The commit protocol on a node's WAL, as SQLite writes it.
//!
//! SQLite appends a transaction as frames (a 24-byte header write, then the page write) and
//! marks the last one as the commit frame (non-zero "database size" field). A WAL frame
//! counts for recovery only if its salts match the WAL header; so we write the commit
//! frame's header with a flipped salt. Until the cluster has committed the transaction, a
//! crash (or another process's recovery) sees no commit, so frames Raft never committed
//! never come back. When the page write of the commit frame arrives, the transaction is
//! complete in the file: we ask the node to replicate it, and return only when it has.
//! The valid header is written by the node once the entry is committed.
//!
//! Frame layout: https://www.sqlite.org/fileformat2.html#walformat

use super::{CommitFrame, Replicator};
use crate::ffi::file::{Code, RawFile};
use crate::wal::format::{
    frame_number_at, header_page_size, is_commit_frame, FRAME_HEADER_BYTES, FRAME_SALT1_OFFSET,
    WAL_HEADER_BYTES,
};

/// Tracks the frames SQLite writes into one WAL file handle.
///
/// A transaction that spilled pages early may overwrite its own frames; SQLite then
/// rewrites the checksums of the frames from the first overwritten one up to the commit
/// frame, after the commit frame's page write (when we have already replicated it; page
/// contents do not change). That rewrite of the commit frame's header is passed through
/// as is: it is the final, valid header of a committed transaction. SQLite holds the WAL
/// write lock until it is done, so the node syncs the WAL only under that lock.
#[derive(Default)]
pub struct WalWriter {
    page_size: Option<u32>,
    held_back: Option<CommitFrame>,
    /// Header offset of the last commit frame the cluster committed through this handle.
    replicated_commit: Option<u64>,
    /// A transaction has written frames and not yet been replicated (or failed).
    in_transaction: bool,
}

impl WalWriter {
    /// Handles one `xWrite` on the WAL of a node's database.
    pub fn write(
        &mut self,
        raw: &RawFile,
        replicator: &dyn Replicator,
        data: &[u8],
        offset: u64,
    ) -> Result<(), Code> {
        let rewrites_committed = self.replicated_commit.is_some_and(|end| offset <= end);
        if !self.in_transaction && !rewrites_committed {
            // A local transaction's first write: refuse it cleanly, before anything reaches
            // the file, if this node may not write.
            super::last_error::clear();
            replicator.check_writable().map_err(|error| {
                tracing::debug!(error = %error.chain(), "local write refused");
                super::last_error::record(&error);
                Code(error.sqlite_code())
            })?;
            self.in_transaction = true;
        }
        if let (0, Ok(header)) = (offset, <&[u8; WAL_HEADER_BYTES]>::try_from(data)) {
            // A new WAL generation: whatever we tracked belongs to the old one.
            *self = WalWriter {
                page_size: Some(header_page_size(header)),
                in_transaction: true,
                ..WalWriter::default()
            };
            return raw.write_all_at(data, offset);
        }
        if let Some(frame) = self.frame_header(raw, data, offset)? {
            if !is_commit_frame(&frame.header) || self.replicated_commit == Some(offset) {
                return raw.write_all_at(data, offset);
            }
            let mut invalid = frame.header;
            invalid[FRAME_SALT1_OFFSET] ^= 0xff;
            raw.write_all_at(&invalid, offset)?;
            self.held_back = Some(frame);
            return Ok(());
        }
        let completes_held_back = self
            .held_back
            .as_ref()
            .is_some_and(|held| offset == held.header_offset + FRAME_HEADER_BYTES as u64);
        raw.write_all_at(data, offset)?;
        match self.held_back.take() {
            Some(commit) if completes_held_back => self.replicate(raw, replicator, commit),
            held_back => {
                self.held_back = held_back;
                Ok(())
            }
        }
    }

    /// The transaction is complete in the file: replicate it.
    fn replicate(
        &mut self,
        raw: &RawFile,
        replicator: &dyn Replicator,
        commit: CommitFrame,
    ) -> Result<(), Code> {
        self.in_transaction = false;
        match replicator.commit(raw, &commit) {
            Ok(()) => {
                self.replicated_commit = Some(commit.header_offset);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(error = %error.chain(), "commit not replicated");
                super::last_error::record(&error);
                Err(Code(error.sqlite_code()))
            }
        }
    }

    /// If this write is a frame header, returns it (as a `CommitFrame`, whatever its kind).
    fn frame_header(
        &mut self,
        raw: &RawFile,
        data: &[u8],
        offset: u64,
    ) -> Result<Option<CommitFrame>, Code> {
        let Ok(header) = <[u8; FRAME_HEADER_BYTES]>::try_from(data) else { return Ok(None) };
        if offset < WAL_HEADER_BYTES as u64 {
            return Ok(None);
        }
        let page_size = self.page_size(raw)?;
        if frame_number_at(page_size, offset).is_none() {
            return Ok(None);
        }
        Ok(Some(CommitFrame { header_offset: offset, header, page_size }))
    }

    fn page_size(&mut self, raw: &RawFile) -> Result<u32, Code> {
        if let Some(page_size) = self.page_size {
            return Ok(page_size);
        }
        let mut header = [0u8; WAL_HEADER_BYTES];
        raw.read_exact_at(&mut header, 0)?;
        let page_size = header_page_size(&header);
        self.page_size = Some(page_size);
        Ok(page_size)
    }
}
