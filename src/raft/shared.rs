//! rmp-serde encoding and decoding that leave page images where they are, so a transaction's
//! pages exist once in a node's memory whatever holds the entry (docs/PERFORMANCE.md, the
//! large transaction).
//!
//! - [`encode`] gives the message as [`Chunks`]: the encoder's own bytes, and each page image
//!   as a reference to the entry's bytes. The log store streams them into its file, the
//!   transport hands them to QUIC; neither builds the whole message in one buffer.
//! - [`decode`] of a received buffer makes page images slices of that buffer. A slice keeps
//!   the whole buffer alive: the entries of one received frame share it until the last of
//!   them is dropped, which is why small buffers are decoded with copies instead.
//!
//! How: while [`encode`] runs, [`PageData`](super::page_data::PageData) offers its bytes to
//! the encoder's writer (a thread-local slot) just before serializing them; the writer takes
//! the offer when the bytes it is asked to write are exactly those (same address and length),
//! and copies anything else. While [`decode`] runs, the buffer being decoded is the
//! thread-local source that page images are sliced from. Both slots are set only for the
//! duration of one synchronous call on this thread and restored after it, panics included;
//! a page image serialized or deserialized any other way is copied, which is always correct.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Range;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes shorter than this are copied even when offered: a reference would cost more.
const SHARE_BYTES_MIN: usize = 256;

/// Buffers shorter than this are not sliced when decoded: their page images are copied, so
/// that a small entry never keeps a larger received buffer alive.
const SOURCE_BYTES_MIN: usize = 1 << 20;

thread_local! {
    /// Whether an [`encode`] is running on this thread.
    static ENCODING: Cell<bool> = const { Cell::new(false) };
    /// The page image about to be written, offered by its serializer.
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// The buffer a [`decode`] on this thread is reading.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// An encoded message as consecutive chunks (page images by reference).
#[derive(Debug, Default)]
pub struct Chunks {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the encoding is empty (never, for a message).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.chunks.iter()
    }

    /// The chunks, for a writer that takes them by value.
    pub fn into_vec(self) -> Vec<Bytes> {
        self.chunks
    }

    /// The whole encoding in one buffer (tests and small messages).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }
}

/// Encodes `msg` as rmp-serde does with `write_named` (structs as maps), page images by
/// reference.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Chunks, rmp_serde::encode::Error> {
    let _scope = EncodeScope::enter();
    let mut writer = ChunkWriter::default();
    rmp_serde::encode::write_named(&mut writer, msg)?;
    Ok(writer.finish())
}

/// Decodes `buf` as rmp-serde does with `from_slice`; page images become slices of `buf`
/// (when it is large enough to be worth keeping, see [`SOURCE_BYTES_MIN`]).
pub fn decode<T: DeserializeOwned>(buf: &Bytes) -> Result<T, rmp_serde::decode::Error> {
    let _scope = (buf.len() >= SOURCE_BYTES_MIN).then(|| SourceScope::enter(buf.clone()));
    rmp_serde::from_slice(buf)
}

/// Called by a page image's serializer with its bytes, before it serializes them.
pub(crate) fn offer(bytes: &Bytes) {
    if ENCODING.with(Cell::get) && bytes.len() >= SHARE_BYTES_MIN {
        OFFERED.with(|slot| *slot.borrow_mut() = Some(bytes.clone()));
    }
}

/// `v` as a slice of the buffer being decoded, if it lies inside it.
pub(crate) fn slice_of_source(v: &[u8]) -> Option<Bytes> {
    SOURCE.with(|source| {
        let source = source.borrow();
        let buf = source.as_ref()?;
        let start = buf.as_ptr() as usize;
        let at = v.as_ptr() as usize;
        let inside = at >= start && at + v.len() <= start + buf.len();
        inside.then(|| buf.slice_ref(v))
    })
}

/// The offered bytes, if they are exactly `buf`.
fn take_offered(buf: &[u8]) -> Option<Bytes> {
    if buf.len() < SHARE_BYTES_MIN {
        return None;
    }
    OFFERED.with(|slot| {
        let mut slot = slot.borrow_mut();
        let matches =
            slot.as_ref().is_some_and(|b| b.as_ptr() == buf.as_ptr() && b.len() == buf.len());
        if matches {
            slot.take()
        } else {
            None
        }
    })
}

/// Sets [`ENCODING`] for its lifetime, restoring the previous state after.
struct EncodeScope {
    was: bool,
}

impl EncodeScope {
    fn enter() -> Self {
        EncodeScope { was: ENCODING.with(|e| e.replace(true)) }
    }
}

impl Drop for EncodeScope {
    fn drop(&mut self) {
        ENCODING.with(|e| e.set(self.was));
        OFFERED.with(|slot| slot.borrow_mut().take());
    }
}

/// Sets [`SOURCE`] for its lifetime, restoring the previous one after.
struct SourceScope {
    was: Option<Bytes>,
}

impl SourceScope {
    fn enter(buf: Bytes) -> Self {
        SourceScope { was: SOURCE.with(|s| s.borrow_mut().replace(buf)) }
    }
}

impl Drop for SourceScope {
    fn drop(&mut self) {
        let was = self.was.take();
        SOURCE.with(|s| *s.borrow_mut() = was);
    }
}

/// One piece of the encoding: a range of the writer's own bytes, or a shared image.
enum Piece {
    Own(Range<usize>),
    Shared(Bytes),
}

/// The `io::Write` the encoder writes into.
#[derive(Default)]
struct ChunkWriter {
    own: Vec<u8>,
    /// Start of the own bytes not yet in a piece.
    own_from: usize,
    pieces: Vec<Piece>,
    len: usize,
}

impl ChunkWriter {
    fn close_own(&mut self) {
        if self.own_from < self.own.len() {
            self.pieces.push(Piece::Own(self.own_from..self.own.len()));
            self.own_from = self.own.len();
        }
    }

    fn finish(mut self) -> Chunks {
        self.close_own();
        let own = Bytes::from(std::mem::take(&mut self.own));
        let chunks = self
            .pieces
            .into_iter()
            .map(|piece| match piece {
                Piece::Own(range) => own.slice(range),
                Piece::Shared(bytes) => bytes,
            })
            .collect();
        Chunks { chunks, len: self.len }
    }
}

impl io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match take_offered(buf) {
            Some(shared) => {
                self.close_own();
                self.pieces.push(Piece::Shared(shared));
            }
            None => self.own.extend_from_slice(buf),
        }
        self.len += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::raft::page_data::PageData;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Message {
        name: String,
        pages: Vec<PageData>,
    }

    fn message() -> Message {
        let pages = (0..3u8).map(|i| PageData::from(vec![i; 4096])).collect();
        Message { name: "m".into(), pages }
    }

    // Goal: the chunked encoding is byte for byte what rmp-serde writes, and its page images
    // are the entry's own bytes, not copies.
    #[test]
    fn encoding_is_rmp_serde_and_shares_page_images() {
        let msg = message();
        let chunks = encode(&msg).unwrap();
        assert_eq!(chunks.to_vec(), rmp_serde::to_vec_named(&msg).unwrap());
        assert_eq!(chunks.len(), chunks.to_vec().len());
        let shared: Vec<_> = chunks.iter().filter(|c| c.len() == 4096).collect();
        assert_eq!(shared.len(), 3);
        for (chunk, page) in shared.iter().zip(&msg.pages) {
            assert_eq!(chunk.as_ptr(), page.as_slice().as_ptr());
        }
        // Outside `encode` nothing is offered or kept.
        assert!(OFFERED.with(|slot| slot.borrow().is_none()));
        assert!(!ENCODING.with(Cell::get));
    }

    // Goal: decoding a large buffer slices page images out of it; a small one, or a plain
    // rmp-serde decode, copies them; every way gives the same value.
    #[test]
    fn decoding_slices_large_buffers_and_copies_otherwise() {
        let mut msg = message();
        msg.pages.push(PageData::from(vec![9u8; SOURCE_BYTES_MIN]));
        let buf = Bytes::from(encode(&msg).unwrap().to_vec());
        let back: Message = decode(&buf).unwrap();
        assert_eq!(back, msg);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        assert!(back.pages.iter().all(|p| range.contains(&(p.as_slice().as_ptr() as usize))));
        assert!(SOURCE.with(|s| s.borrow().is_none()));

        let small = Bytes::from(encode(&message()).unwrap().to_vec());
        let back: Message = decode(&small).unwrap();
        let range = small.as_ptr() as usize..small.as_ptr() as usize + small.len();
        assert!(back.pages.iter().all(|p| !range.contains(&(p.as_slice().as_ptr() as usize))));
        assert_eq!(rmp_serde::from_slice::<Message>(&buf).unwrap(), msg);
    }
}
