//! The archive's setting, as `ha_archive(url [, options])` makes it: where to archive and how
//! often. It is replicated through Raft (`Command::Archive`), so every node knows it and the
//! leader of the moment uploads; the state machine publishes each change to the node's
//! [`ArchiveView`], which the archiver task watches.
//!
//! The setting may hold credentials (from the options): it lives in the Raft log, the applied
//! state and snapshot files, all 0600 in the node's private state directory, and its `Debug`
//! and `Display` show the URL without them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store::ArchiveTarget;
use crate::error::Error;
use crate::raft::types::LogIndex;

/// Default upload interval: with the upload itself, a commit is archived within about half a
/// second to a second (the recovery point).
pub const INTERVAL_MS_DEFAULT: u64 = 500;
/// A new base image once this much time has passed since the last one...
pub const BASE_INTERVAL_S_DEFAULT: u64 = 24 * 3600;
/// ...or once the segments since it hold this many raw bytes, whichever comes first.
pub const BASE_BYTES_DEFAULT: u64 = 256 << 20;
/// How many base images (with the segments after them) retention keeps.
pub const RETAIN_BASES_DEFAULT: u32 = 2;

/// Where and how the cluster archives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSetting {
    /// The store (URL and its options, credentials included when given).
    pub target: ArchiveTarget,
    /// Upload what was committed at least this often (ms).
    pub interval_ms: u64,
    /// Upload a new base image after this many seconds...
    pub base_interval_s: u64,
    /// ...or after this many bytes of segments.
    pub base_bytes: u64,
    /// Keep this many base images; older bases and the segments only they need are removed.
    pub retain_bases: u32,
    /// Also keep everything needed to restore any moment of the last `retain_s` seconds.
    pub retain_s: Option<u64>,
}

/// The option keys this module reads; the rest are the store's (endpoint, credentials, ...).
const OWN_KEYS: [&str; 5] =
    ["interval_ms", "base_interval_s", "base_bytes", "retain_bases", "retain_s"];

impl ArchiveSetting {
    /// Parses `ha_archive`'s arguments: the URL and the optional JSON options.
    pub fn parse(url: &str, options: Option<&str>) -> Result<ArchiveSetting, Error> {
        let invalid =
            |why: String| Error::InvalidArgument(format!("invalid archive options: {why}"));
        let mut object = super::options_object(options, "archive")?;
        let mut number = |key: &str, min: u64, max: u64| -> Result<Option<u64>, Error> {
            match object.remove(key) {
                None => Ok(None),
                Some(value) => match value.as_u64().filter(|n| (min..=max).contains(n)) {
                    Some(n) => Ok(Some(n)),
                    None => Err(invalid(format!("{key} must be an integer from {min} to {max}"))),
                },
            }
        };
        let interval_ms = number(OWN_KEYS[0], 10, 3_600_000)?.unwrap_or(INTERVAL_MS_DEFAULT);
        let base_interval_s =
            number(OWN_KEYS[1], 60, 365 * 24 * 3600)?.unwrap_or(BASE_INTERVAL_S_DEFAULT);
        let base_bytes = number(OWN_KEYS[2], 1 << 20, 1 << 40)?.unwrap_or(BASE_BYTES_DEFAULT);
        let retain_bases =
            number(OWN_KEYS[3], 1, 10_000)?.map_or(RETAIN_BASES_DEFAULT, |n| n as u32);
        let retain_s = number(OWN_KEYS[4], 1, 100 * 365 * 24 * 3600)?;
        let rest = (!object.is_empty()).then(|| serde_json::Value::Object(object).to_string());
        let target = ArchiveTarget::parse(url, rest.as_deref())
            .map_err(|e| Error::from(super::ArchiveError::from(e)))?;
        Ok(ArchiveSetting {
            target,
            interval_ms,
            base_interval_s,
            base_bytes,
            retain_bases,
            retain_s,
        })
    }

    /// The upload interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

impl fmt::Display for ArchiveSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target.display_url())
    }
}

impl fmt::Debug for ArchiveSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArchiveSetting({}, every {} ms)", self.target.display_url(), self.interval_ms)
    }
}

/// The node's view of the applied archive setting and of how far the archive is known to
/// hold every entry (`Command::Archived`): the state machine publishes, the archiver watches
/// (on a follower, the second is its log's purge floor). Cheap to clone.
#[derive(Clone)]
pub struct ArchiveView {
    sender: Arc<watch::Sender<Option<ArchiveSetting>>>,
    archived_index: Arc<AtomicU64>,
}

impl Default for ArchiveView {
    fn default() -> Self {
        ArchiveView {
            sender: Arc::new(watch::channel(None).0),
            archived_index: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl ArchiveView {
    /// Publishes `setting` (only if it changed, so watchers wake for real changes only).
    pub fn publish(&self, setting: Option<ArchiveSetting>) {
        self.sender.send_if_modified(|current| {
            let changed = *current != setting;
            *current = setting;
            changed
        });
    }

    /// Publishes the replicated archived index (0: not known).
    pub fn publish_archived(&self, index: LogIndex) {
        self.archived_index.store(index, Ordering::Release);
    }

    /// The archive holds every entry up to this index, as the cluster last agreed (0: not
    /// known).
    pub fn archived_index(&self) -> LogIndex {
        self.archived_index.load(Ordering::Acquire)
    }

    /// The setting in force.
    pub fn get(&self) -> Option<ArchiveSetting> {
        self.sender.borrow().clone()
    }

    /// A receiver that wakes at each change.
    pub fn watch(&self) -> watch::Receiver<Option<ArchiveSetting>> {
        self.sender.subscribe()
    }
}

impl fmt::Debug for ArchiveView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArchiveView(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Command;

    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

    // Goal: a setting with credentials prints its URL only, wherever it is printed (a Raft
    // entry in a log line, an admin request in a debug trace).
    #[test]
    fn credentials_never_print() {
        let options = format!(
            r#"{{"endpoint":"http://127.0.0.1:9000","path_style":true,"region":"us-east-1","access_key_id":"AKIDEXAMPLE","secret_access_key":"{SECRET}","interval_ms":250}}"#
        );
        let setting = ArchiveSetting::parse("s3://bucket/prefix", Some(&options)).unwrap();
        assert_eq!(setting.interval_ms, 250);
        let command = Command::Archive(Some(setting.clone()));
        let request = crate::transport::wire::AdminRequest::SetArchive { setting: Some(setting) };
        for text in [format!("{command}"), format!("{command:?}"), format!("{request:?}")] {
            assert!(text.contains("s3://bucket/prefix"), "{text}");
            assert!(!text.contains(SECRET) && !text.contains("AKIDEXAMPLE"), "{text}");
        }
    }

    // Goal: our options are checked by name and range; the rest go to the store, which
    // refuses unknown ones.
    #[test]
    fn options_are_checked() {
        let error = |options: &str| {
            ArchiveSetting::parse("file:///tmp/a", Some(options)).unwrap_err().to_string()
        };
        assert!(error(r#"{"interval_ms":0}"#).contains("interval_ms must be an integer from 10"));
        assert!(error(r#"{"retain_bases":"two"}"#).contains("retain_bases"));
        assert!(error(r#"{"colour":"blue"}"#).contains("colour"));
        assert!(error("[1]").contains("expected a JSON object"));
        let defaults = ArchiveSetting::parse("file:///tmp/a", None).unwrap();
        assert_eq!(
            (defaults.interval_ms, defaults.retain_bases),
            (INTERVAL_MS_DEFAULT, RETAIN_BASES_DEFAULT)
        );
    }
}
