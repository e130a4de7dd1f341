//! One page image, shared rather than copied: the Raft entry, the log store's recent entries,
//! openraft's in-flight requests and the network all hold the same bytes.
//!
//! On the wire and on disk it is a MessagePack `bin`, exactly as `serde_bytes` writes a
//! `Vec<u8>`, so the formats do not depend on how the bytes are held in memory. Encoding with
//! [`shared::encode`](super::shared::encode) references the image instead of copying it;
//! decoding with [`shared::decode`](super::shared::decode) makes it a slice of the received
//! buffer. Any other serializer or deserializer copies, which is always correct.

use std::fmt;

use bytes::Bytes;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::shared;

/// The bytes of one page image. Cloning shares them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PageData(Bytes);

impl PageData {
    /// The image's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no bytes (never the case in a valid page set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for PageData {
    fn from(bytes: Vec<u8>) -> Self {
        PageData(Bytes::from(bytes))
    }
}

impl From<Bytes> for PageData {
    fn from(bytes: Bytes) -> Self {
        PageData(bytes)
    }
}

impl std::ops::Deref for PageData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

impl Serialize for PageData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        shared::offer(&self.0);
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for PageData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(PageDataVisitor)
    }
}

struct PageDataVisitor;

impl<'de> Visitor<'de> for PageDataVisitor {
    type Value = PageData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page image as a byte string")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<PageData, E> {
        Ok(PageData(shared::slice_of_source(v).unwrap_or_else(|| Bytes::copy_from_slice(v))))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<PageData, E> {
        Ok(PageData(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<PageData, E> {
        Ok(PageData(Bytes::from(v)))
    }
}
