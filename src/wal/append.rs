//! Follower side: appending a replicated [`PageSet`] to this node's WAL exactly as a SQLite
//! writer commits a transaction, then publishing it in the wal-index.
//!
//! Order of effects, as SQLite's own writer does it: (maybe) restart the WAL if a checkpoint
//! copied all of it, write the frames (and a fresh WAL header when the WAL is empty), index
//! them, and only then publish the new wal-index header, so a reader sees all or nothing.
//! Invariants: the caller holds the WAL write lock; a page set that fails validation changes
//! nothing; no fsync here (the Raft log is the durable record; the caller syncs when it
//! records its applied index).

use std::time::{Duration, Instant};

use super::checksum::WordOrder;
use super::file::WalFile;
use super::format::{
    FrameHeader, PageSize, Salts, WalHeader, FRAME_HEADER_BYTES, WAL_HEADER_BYTES,
};
use super::index::header::{
    backfill, read_header, reset_checkpoint_info, restart_lock_range, write_header, IndexHeader,
};
use super::index::{hash, SharedIndex, WRITE_LOCK};
use super::WalError;
use crate::raft::types::PageSet;

/// What [`append_transaction`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendReport {
    /// The transaction's first frame.
    pub first_frame: u32,
    /// Its commit frame (the new wal-index `mxFrame`).
    pub commit_frame: u32,
    /// Whether the WAL was restarted (new salts, writing from frame 1 again).
    pub restarted: bool,
    /// Byte offset just past the commit frame.
    pub wal_end_bytes: u64,
}

/// The WAL write lock (lock slot 0), released on drop.
pub struct WriteLock<'a, S: SharedIndex> {
    shared: &'a S,
}

impl<S: SharedIndex> Drop for WriteLock<'_, S> {
    fn drop(&mut self) {
        if let Err(err) = self.shared.unlock_exclusive(WRITE_LOCK, 1) {
            tracing::warn!(%err, "could not release the WAL write lock");
        }
    }
}

/// Takes the WAL write lock, retrying with short sleeps until `timeout`. Before appending,
/// the caller must also have made sure the wal-index header is valid (for instance by
/// opening a read transaction, which runs SQLite's recovery when needed).
pub fn acquire_write_lock<S: SharedIndex>(
    shared: &S,
    timeout: Duration,
) -> Result<WriteLock<'_, S>, WalError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        if shared.try_lock_exclusive(WRITE_LOCK, 1)? {
            return Ok(WriteLock { shared });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WalError::WriteLockBusy);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Checks what SQLite would never produce: bad page size, no pages, a zero size, pages of the
/// wrong length, unsorted, duplicated, zero or past the committed size.
pub fn validate_page_set(pages: &PageSet) -> Result<PageSize, WalError> {
    let page_size = PageSize::new(pages.page_size)?;
    if pages.pages.is_empty() || pages.db_size_pages == 0 {
        return Err(WalError::EmptyPageSet);
    }
    let mut previous = 0u32;
    for page in &pages.pages {
        if page.number <= previous {
            return Err(WalError::PageOrder { page_number: page.number });
        }
        if page.data.len() != page_size.as_usize() {
            return Err(WalError::PageLength {
                page_number: page.number,
                length_bytes: page.data.len(),
                page_size: pages.page_size,
            });
        }
        if page.number > pages.db_size_pages {
            return Err(WalError::PageBeyondSize {
                page_number: page.number,
                db_size_pages: pages.db_size_pages,
            });
        }
        previous = page.number;
    }
    Ok(page_size)
}

/// Appends `pages` as one committed transaction. The caller holds the WAL write lock and
/// the wal-index header is valid (see [`acquire_write_lock`]).
pub fn append_transaction<F: WalFile, S: SharedIndex>(
    file: &F,
    shared: &S,
    pages: &PageSet,
) -> Result<AppendReport, WalError> {
    let page_size = validate_page_set(pages)?;
    let mut append = Append::begin(file, shared, page_size, pages.pages.len() as u64)?;
    append.frames(pages, true)?;
    Ok(append.publish())
}

/// Appends one committed transaction that arrives in batches (each a valid page set of the
/// transaction's page size, pages ascending across batches, every batch carrying the final
/// database size), holding one batch in memory at a time: how a whole snapshot image is
/// imported. `frame_count` is the transaction's total number of pages. `next_batch` returns
/// `None` after the last one. Nothing is visible to readers until the last batch is written
/// and the wal-index header published; a failure on the way leaves the WAL as it was for
/// them (frames past the published end are dead).
pub fn append_batches<F: WalFile, S: SharedIndex>(
    file: &F,
    shared: &S,
    page_size: u32,
    frame_count: u64,
    mut next_batch: impl FnMut() -> Result<Option<PageSet>, WalError>,
) -> Result<AppendReport, WalError> {
    let page_size = PageSize::new(page_size)?;
    let mut append = Append::begin(file, shared, page_size, frame_count)?;
    let mut pending = next_batch()?.ok_or(WalError::EmptyPageSet)?;
    let mut last_page = 0;
    loop {
        if validate_page_set(&pending)? != page_size || pending.pages[0].number <= last_page {
            return Err(WalError::PageOrder { page_number: pending.pages[0].number });
        }
        last_page = pending.pages[pending.pages.len() - 1].number;
        let next = next_batch()?;
        append.frames(&pending, next.is_none())?;
        match next {
            Some(batch) => pending = batch,
            None => break,
        }
    }
    if u64::from(append.next_frame - append.first_frame) != frame_count {
        return Err(WalError::TooManyFrames);
    }
    Ok(append.publish())
}

/// One transaction being appended: frames written and indexed, the header not yet published.
struct Append<'a, F: WalFile, S: SharedIndex> {
    file: &'a F,
    shared: &'a S,
    region0: S::Region,
    header: IndexHeader,
    page_size: PageSize,
    restarted: bool,
    committed_max_frame: u32,
    first_frame: u32,
    next_frame: u32,
    running: super::checksum::Checksum,
    wal_end_bytes: u64,
}

impl<'a, F: WalFile, S: SharedIndex> Append<'a, F, S> {
    /// Reads the wal-index header, restarts the WAL if a checkpoint emptied it, and writes a
    /// WAL header if it is empty: ready for `frame_count` frames.
    fn begin(
        file: &'a F,
        shared: &'a S,
        page_size: PageSize,
        frame_count: u64,
    ) -> Result<Self, WalError> {
        let region0 = shared.region(0)?;
        let mut header = read_header(shared, &region0)?;
        if header.max_frame > 0 && header.page_size != page_size.bytes() {
            return Err(WalError::PageSizeMismatch {
                wal_page_size: header.page_size,
                page_set_page_size: page_size.bytes(),
            });
        }
        if u64::from(header.max_frame) + frame_count > u64::from(u32::MAX) {
            return Err(WalError::TooManyFrames);
        }
        let restarted = restart_if_checkpointed(shared, &region0, &mut header)?;
        let committed_max_frame = header.max_frame;
        let running = if committed_max_frame == 0 {
            let wal_header = start_new_wal(file, &mut header, page_size, restarted)?;
            wal_header.checksum
        } else {
            header.frame_checksum
        };
        let first_frame = committed_max_frame + 1;
        let wal_end_bytes = page_size.frame_offset(first_frame);
        Ok(Append {
            file,
            shared,
            region0,
            header,
            page_size,
            restarted,
            committed_max_frame,
            first_frame,
            next_frame: first_frame,
            running,
            wal_end_bytes,
        })
    }

    /// Writes and indexes the frames of `pages`; the last page of the last batch is the
    /// commit frame.
    fn frames(&mut self, pages: &PageSet, last_batch: bool) -> Result<(), WalError> {
        if u64::from(self.next_frame) + pages.pages.len() as u64 > u64::from(u32::MAX) {
            return Err(WalError::TooManyFrames);
        }
        let (running, end) = write_frames(
            self.file,
            self.wal_end_bytes,
            self.header.order(),
            self.running,
            self.header.salts,
            pages,
            last_batch,
        )?;
        for (i, page) in pages.pages.iter().enumerate() {
            hash::append(
                self.shared,
                self.next_frame + i as u32,
                page.number,
                self.committed_max_frame,
            )?;
        }
        self.running = running;
        self.wal_end_bytes = end;
        self.next_frame += pages.pages.len() as u32;
        self.header.db_size_pages = pages.db_size_pages;
        Ok(())
    }

    /// Publishes the new wal-index header: readers see the transaction from now on.
    fn publish(mut self) -> AppendReport {
        let commit_frame = self.next_frame - 1;
        self.header.max_frame = commit_frame;
        self.header.frame_checksum = self.running;
        self.header.page_size = self.page_size.bytes();
        self.header.change_counter = self.header.change_counter.wrapping_add(1);
        write_header(self.shared, &self.region0, &self.header);
        AppendReport {
            first_frame: self.first_frame,
            commit_frame,
            restarted: self.restarted,
            wal_end_bytes: self.wal_end_bytes,
        }
    }
}

/// When a checkpoint has copied the whole WAL into the database, SQLite's next writer starts
/// the WAL over from frame 1 — but only if no reader may still be using WAL frames (it must
/// get every read lock but reader 0's). Returns whether it restarted.
fn restart_if_checkpointed<S: SharedIndex>(
    shared: &S,
    region0: &S::Region,
    header: &mut IndexHeader,
) -> Result<bool, WalError> {
    if header.max_frame == 0 || backfill(region0) != header.max_frame {
        return Ok(false);
    }
    let (first_slot, count) = restart_lock_range();
    if !shared.try_lock_exclusive(first_slot, count)? {
        return Ok(false);
    }
    header.max_frame = 0;
    // salt1 counts generations; salt2 makes stale frames of older ones unverifiable.
    header.salts = Salts { salt1: header.salts.salt1.wrapping_add(1), salt2: rand::random() };
    write_header(shared, region0, header);
    reset_checkpoint_info(region0, 0, 0);
    shared.unlock_exclusive(first_slot, count)?;
    Ok(true)
}

/// Writes a fresh WAL header for an empty WAL and records its salts and order in `header`.
/// Salts come from a restart just done; otherwise they are new, so that frames an earlier
/// writer left in the file can never verify against them.
fn start_new_wal<F: WalFile>(
    file: &F,
    header: &mut IndexHeader,
    page_size: PageSize,
    restarted: bool,
) -> Result<WalHeader, WalError> {
    if !restarted {
        let salt1 =
            if header.salts == Salts::default() { rand::random() } else { header.salts.salt1 };
        header.salts = Salts { salt1: salt1.wrapping_add(1), salt2: rand::random() };
    }
    let order = WordOrder::native();
    let checkpoint_seq = previous_checkpoint_seq(file)?.map_or(0, |seq| seq.wrapping_add(1));
    let wal_header = WalHeader::new(order, page_size, checkpoint_seq, header.salts);
    file.write_all_at(&wal_header.encode(), 0)?;
    header.big_endian_checksum = order.is_big();
    Ok(wal_header)
}

/// The checkpoint sequence of the WAL header already in the file, if it has a valid one.
fn previous_checkpoint_seq<F: WalFile>(file: &F) -> Result<Option<u32>, WalError> {
    if file.size_bytes()? < WAL_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let mut bytes = [0u8; WAL_HEADER_BYTES];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(WalHeader::decode(&bytes).ok().map(|h| h.checkpoint_seq))
}

/// Frames are written in batches of about this many bytes: a small transaction is still one
/// write, and a large one is never copied whole into a second buffer.
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// Writes frames for `pages` from `first_offset` on (the last one a commit frame if
/// `commits`); returns the final running checksum and where the frames end. Nothing is visible
/// to readers until the caller publishes the wal-index header, so the order and number of
/// writes do not matter to them.
fn write_frames<F: WalFile>(
    file: &F,
    first_offset: u64,
    order: WordOrder,
    mut running: super::checksum::Checksum,
    salts: Salts,
    pages: &PageSet,
    commits: bool,
) -> Result<(super::checksum::Checksum, u64), WalError> {
    let frame_bytes = FRAME_HEADER_BYTES + pages.page_size as usize;
    let mut batch =
        Vec::with_capacity((frame_bytes * pages.pages.len()).min(WRITE_BATCH_BYTES + frame_bytes));
    let mut offset = first_offset;
    let last = pages.pages.len() - 1;
    for (i, page) in pages.pages.iter().enumerate() {
        let commit = if commits && i == last { pages.db_size_pages } else { 0 };
        let frame = FrameHeader::seal(order, running, page.number, commit, salts, &page.data);
        running = frame.checksum;
        batch.extend_from_slice(&frame.encode());
        batch.extend_from_slice(&page.data);
        if batch.len() >= WRITE_BATCH_BYTES || i == last {
            file.write_all_at(&batch, offset)?;
            offset += batch.len() as u64;
            batch.clear();
        }
    }
    Ok((running, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Page;
    use crate::wal::index::header::{read_mark, READ_MARK_UNUSED};
    use crate::wal::index::memory::MemoryIndex;
    use crate::wal::index::{read_lock, IndexRegion};
    use crate::wal::scan::{rebuild_index, scan};
    use crate::wal::testutil::open_rw;

    fn page_set(page_size: u32, db_size_pages: u32, numbers: &[u32]) -> PageSet {
        let pages = numbers
            .iter()
            .map(|n| Page { number: *n, data: vec![*n as u8; page_size as usize].into() })
            .collect();
        PageSet { page_size, db_size_pages, pages }
    }

    /// An empty WAL file and a wal-index recovered from it.
    fn empty_wal(dir: &tempfile::TempDir) -> (std::fs::File, MemoryIndex) {
        let wal = open_rw(&dir.path().join("w"));
        let index = MemoryIndex::new();
        rebuild_index(&index, &scan(&wal).unwrap()).unwrap();
        (wal, index)
    }

    fn header(index: &MemoryIndex) -> IndexHeader {
        read_header(index, &index.region(0).unwrap()).unwrap()
    }

    // Goal: two appends produce a WAL that scans as two commits, indexed and published.
    #[test]
    fn appends_chain_and_publish() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, index) = empty_wal(&dir);
        let first = append_transaction(&wal, &index, &page_set(512, 2, &[1, 2])).unwrap();
        assert_eq!((first.first_frame, first.commit_frame, first.restarted), (1, 2, false));
        let second = append_transaction(&wal, &index, &page_set(512, 3, &[2, 3])).unwrap();
        assert_eq!((second.first_frame, second.commit_frame), (3, 4));
        assert_eq!(second.wal_end_bytes, wal.size_bytes().unwrap());
        let found = scan(&wal).unwrap();
        assert_eq!(found.commit_frames, vec![2, 4]);
        assert_eq!(found.page_numbers, vec![1, 2, 2, 3]);
        let published = header(&index);
        assert_eq!((published.max_frame, published.db_size_pages), (4, 3));
        assert_eq!(published.frame_checksum, found.checksum);
        assert_eq!(published.salts, found.header.unwrap().salts);
        // Recovery set it to 1; each commit adds one, so readers notice the change.
        assert_eq!(published.change_counter, 3);
        assert_eq!(hash::lookup(&index, 2, 4).unwrap(), Some(3));
        assert_eq!(hash::lookup(&index, 1, 4).unwrap(), Some(1));
    }

    // Goal: a transaction appended in batches (a snapshot import) is one commit, exactly as if
    // appended whole: only its last frame commits, all frames are indexed, one header publish.
    #[test]
    fn batches_append_as_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, index) = empty_wal(&dir);
        let mut batches =
            vec![page_set(512, 5, &[1, 2]), page_set(512, 5, &[3, 4]), page_set(512, 5, &[5])]
                .into_iter();
        let report = append_batches(&wal, &index, 512, 5, || Ok(batches.next())).unwrap();
        assert_eq!((report.first_frame, report.commit_frame), (1, 5));
        let found = scan(&wal).unwrap();
        assert_eq!(found.commit_frames, vec![5]);
        assert_eq!(found.page_numbers, vec![1, 2, 3, 4, 5]);
        let published = header(&index);
        assert_eq!(
            (published.max_frame, published.db_size_pages, published.change_counter),
            (5, 5, 2)
        );
        assert_eq!(published.frame_checksum, found.checksum);
        assert_eq!(hash::lookup(&index, 4, 5).unwrap(), Some(4));

        // Out-of-order batches, or more pages than announced, publish nothing.
        let mut unordered = vec![page_set(512, 9, &[6, 7]), page_set(512, 9, &[7])].into_iter();
        assert!(append_batches(&wal, &index, 512, 3, || Ok(unordered.next())).is_err());
        let mut too_many = vec![page_set(512, 9, &[6, 7])].into_iter();
        assert!(append_batches(&wal, &index, 512, 1, || Ok(too_many.next())).is_err());
        assert_eq!(header(&index).max_frame, 5);
    }

    // Goal: after a full checkpoint the WAL restarts like SQLite's: salt1 + 1, frame 1 again,
    // checkpoint info reset.
    #[test]
    fn restart_after_full_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, index) = empty_wal(&dir);
        append_transaction(&wal, &index, &page_set(512, 2, &[1, 2])).unwrap();
        let old = header(&index);
        let region0 = index.region(0).unwrap();
        region0.store_u32(96, old.max_frame); // a checkpoint copied every frame
        region0.store_u32(108, 2); // a reader mark from before
        let report = append_transaction(&wal, &index, &page_set(512, 3, &[3])).unwrap();
        assert_eq!((report.first_frame, report.commit_frame, report.restarted), (1, 1, true));
        let found = scan(&wal).unwrap();
        assert_eq!(found.header.unwrap().salts.salt1, old.salts.salt1.wrapping_add(1));
        assert_eq!(found.commit_frames, vec![1]);
        assert_eq!(backfill(&region0), 0);
        assert_eq!(read_mark(&region0, 1), 0);
        assert_eq!(read_mark(&region0, 2), READ_MARK_UNUSED);
        assert_eq!(hash::lookup(&index, 2, 1).unwrap(), None);
        assert_eq!(header(&index).salts, found.header.unwrap().salts);
    }

    // Goal: a reader holding a read lock prevents the restart; frames go after the old ones.
    #[test]
    fn no_restart_while_a_reader_uses_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, index) = empty_wal(&dir);
        append_transaction(&wal, &index, &page_set(512, 2, &[1, 2])).unwrap();
        index.region(0).unwrap().store_u32(96, 2);
        assert!(index.try_lock_exclusive(read_lock(3), 1).unwrap());
        let report = append_transaction(&wal, &index, &page_set(512, 3, &[3])).unwrap();
        assert_eq!((report.first_frame, report.restarted), (3, false));
        assert_eq!(scan(&wal).unwrap().commit_frames, vec![2, 3]);
    }

    type IsExpected = fn(&WalError) -> bool;

    // Goal: every malformed page set is refused with its error, and nothing is written.
    #[test]
    fn bad_page_sets_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, index) = empty_wal(&dir);
        append_transaction(&wal, &index, &page_set(512, 2, &[1, 2])).unwrap();
        let wal_before = std::fs::read(dir.path().join("w")).unwrap();
        let index_before = index.to_bytes();
        let mut short = page_set(512, 2, &[1, 2]);
        short.pages[1].data = vec![1u8; 511].into();
        let cases: Vec<(PageSet, IsExpected)> = vec![
            (page_set(1024, 2, &[1]), |e| matches!(e, WalError::PageSizeMismatch { .. })),
            (page_set(500, 2, &[1]), |e| matches!(e, WalError::InvalidPageSize { .. })),
            (page_set(512, 3, &[2, 1]), |e| matches!(e, WalError::PageOrder { page_number: 1 })),
            (page_set(512, 3, &[2, 2]), |e| matches!(e, WalError::PageOrder { page_number: 2 })),
            (page_set(512, 3, &[0]), |e| matches!(e, WalError::PageOrder { page_number: 0 })),
            (page_set(512, 2, &[3]), |e| matches!(e, WalError::PageBeyondSize { .. })),
            (page_set(512, 2, &[]), |e| matches!(e, WalError::EmptyPageSet)),
            (page_set(512, 0, &[1]), |e| matches!(e, WalError::EmptyPageSet)),
            (short, |e| matches!(e, WalError::PageLength { page_number: 2, .. })),
        ];
        for (pages, expected) in cases {
            let err = append_transaction(&wal, &index, &pages).unwrap_err();
            assert!(expected(&err), "{pages:?}: {err}");
        }
        assert_eq!(std::fs::read(dir.path().join("w")).unwrap(), wal_before);
        assert_eq!(index.to_bytes(), index_before);
    }

    // Goal: an uninitialised or torn wal-index header is refused before any write.
    #[test]
    fn invalid_index_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = open_rw(&dir.path().join("w"));
        let index = MemoryIndex::new();
        let err = append_transaction(&wal, &index, &page_set(512, 1, &[1])).unwrap_err();
        assert!(matches!(err, WalError::IndexHeader { .. }));
        assert_eq!(wal.size_bytes().unwrap(), 0);
    }

    // Goal: the write lock helper gives up at its deadline and releases on drop.
    #[test]
    fn write_lock_helper() {
        let index = MemoryIndex::new();
        let held = acquire_write_lock(&index, Duration::from_millis(5)).unwrap();
        let err = acquire_write_lock(&index, Duration::from_millis(5)).err().unwrap();
        assert!(matches!(err, WalError::WriteLockBusy));
        drop(held);
        assert!(acquire_write_lock(&index, Duration::from_millis(5)).is_ok());
    }
}
