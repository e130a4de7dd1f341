//! The continuous archive (issue 13): every committed transaction and periodic base images,
//! uploaded by the leader to an object store or a directory, and the point-in-time restore
//! that reads them back. docs/ARCHIVE.md describes it for operators.
//!
//! - `setting`: what `ha_archive(url, options)` configures, replicated through Raft;
//! - `store`: the object store (S3 or a directory) behind one small API;
//! - `format`: the objects' bytes; `base`: streaming base images in and out;
//! - `catalog`: what an archive holds, from a listing, and the plans made from it;
//! - `restore`: `ha_restore`.
//!
//! The uploading task itself is `node/archiving.rs`: it drives the node's Raft log.

pub mod base;
pub mod catalog;
pub mod error;
pub mod format;
pub mod restore;
pub mod setting;
pub mod store;

pub use error::ArchiveError;

/// The options argument of `ha_archive` / `ha_restore` as a JSON object (absent: empty), or an
/// error naming `what` options they are.
pub(crate) fn options_object(
    options: Option<&str>,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, crate::error::Error> {
    let invalid = |why: String| {
        crate::error::Error::InvalidArgument(format!("invalid {what} options: {why}"))
    };
    match options {
        None => Ok(serde_json::Map::new()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(object)) => Ok(object),
            Ok(_) => Err(invalid("expected a JSON object".into())),
            Err(e) => Err(invalid(format!("not JSON ({e})"))),
        },
    }
}
