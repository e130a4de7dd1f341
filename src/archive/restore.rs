//! Rebuilding a database image from an archive, as of a point in time: the newest base image at
//! or before the target, then the archived transactions after it, in log order, each applied
//! by the state machine's own rule (only if its base is the last applied write), up to the
//! target. Every object's header, length and checksums are checked before any of its pages is
//! written; a damaged object stops the restore with its name.
//!
//! The image is built in a private file beside the database; importing it into the database
//! (as a snapshot install does) is the node layer's part (`node::restore`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::catalog::{Catalog, RestoreTarget};
use super::error::ArchiveError;
use super::format::{self, ObjectKind, HEADER_BYTES, SEGMENT_RAW_BYTES_MAX};
use super::store::{ArchiveTarget, Store};
use crate::error::Error;
use crate::raft::types::LogIndex;

/// Largest base image object a restore downloads (1 TiB, as for snapshots).
const BASE_OBJECT_BYTES_MAX: u64 = 1 << 40;

/// What `ha_restore(url, options)` asks for.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// Where the archive is.
    pub target: ArchiveTarget,
    /// What state to restore.
    pub to: RestoreTarget,
}

impl RestoreRequest {
    /// Parses `ha_restore`'s arguments: the URL and optional JSON options with at most one of
    /// `at` (RFC 3339) and `index`; the other keys are the store's (endpoint, credentials...).
    pub fn parse(url: &str, options: Option<&str>) -> Result<RestoreRequest, Error> {
        let invalid =
            |why: String| Error::InvalidArgument(format!("invalid restore options: {why}"));
        let mut object = super::options_object(options, "restore")?;
        let at = object.remove("at");
        let index = object.remove("index");
        let to = match (at, index) {
            (Some(_), Some(_)) => return Err(invalid("give 'at' or 'index', not both".into())),
            (Some(serde_json::Value::String(at)), None) => {
                RestoreTarget::Time(crate::clock::parse_rfc3339_ms(&at).map_err(invalid)?)
            }
            (Some(_), None) => return Err(invalid("'at' must be an RFC 3339 time string".into())),
            (None, Some(index)) => match index.as_u64().filter(|i| *i >= 1) {
                Some(index) => RestoreTarget::Index(index),
                None => return Err(invalid("'index' must be a positive integer".into())),
            },
            (None, None) => RestoreTarget::Latest,
        };
        let rest = (!object.is_empty()).then(|| serde_json::Value::Object(object).to_string());
        let target = ArchiveTarget::parse(url, rest.as_deref())
            .map_err(|e| Error::from(super::ArchiveError::from(e)))?;
        Ok(RestoreRequest { target, to })
    }
}

/// A database image rebuilt from the archive.
#[derive(Debug)]
pub struct RestoredImage {
    /// The image file (the caller imports it, then removes it).
    pub path: PathBuf,
    /// The log index it is the state of.
    pub index: LogIndex,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
}

/// Builds the image `request` asks for beside the database `db` (files `<db>-restore-*.tmp`,
/// removed on failure).
pub async fn build_image(
    request: &RestoreRequest,
    db: &Path,
) -> Result<RestoredImage, ArchiveError> {
    let started = Instant::now();
    let store = Store::open(&request.target)?;
    let mut names = Vec::new();
    for dir in ["base/", "seg/"] {
        names.extend(store.list(dir).await?.into_iter().map(|entry| entry.name));
    }
    let catalog = Catalog::from_names(names.iter().map(String::as_str));
    let plan = catalog.plan(request.to).map_err(ArchiveError::Unrestorable)?;
    let beside = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (object_path, image_path) = (beside("-restore-object.tmp"), beside("-restore-image.tmp"));
    for path in [&object_path, &image_path] {
        remove_if_exists(path)?;
    }
    let built = async {
        tracing::info!(url = %request.target.display_url(), base = %plan.base.name, segments = plan.segments.len(), "restore: downloading the base image");
        let mut downloaded =
            store.get_to_file(&plan.base.name, &object_path, BASE_OBJECT_BYTES_MAX).await?;
        let (object, name, image) = (object_path.clone(), plan.base.name.clone(), image_path.clone());
        let header = tokio::task::spawn_blocking(move || {
            super::base::open_image(&object, &name, None, &image)
        })
        .await
        .map_err(|e| ArchiveError::io("decompressing the base image", std::io::Error::other(e)))??;
        remove_if_exists(&object_path)?;
        let cluster_id = header.cluster_id;
        let image = File::options()
            .read(true)
            .write(true)
            .open(&image_path)
            .map_err(|e| ArchiveError::io("opening the restored image", e))?;
        let mut applier = Applier { image, last_write_index: header.extra, index: header.last };
        let time_limit = match request.to {
            RestoreTarget::Time(ms) => Some(ms),
            _ => None,
        };
        'segments: for segment in &plan.segments {
            let bytes = store.get(&segment.name, SEGMENT_RAW_BYTES_MAX + HEADER_BYTES as u64).await?;
            downloaded += bytes.len() as u64;
            let (header, raw) = format::open(&segment.name, &bytes, SEGMENT_RAW_BYTES_MAX)?;
            let name_matches = header.kind == ObjectKind::Segment
                && (header.first, header.last) == (segment.first, segment.last);
            if !name_matches {
                return Err(format::FormatError::Damaged {
                    name: segment.name.clone(),
                    reason: "its header does not match its name".into(),
                }
                .into());
            }
            header.check_cluster(&segment.name, &cluster_id)?;
            for record in format::decode_records(&segment.name, &header, &raw)? {
                if record.index <= applier.index {
                    continue;
                }
                if record.index > plan.last
                    || (record.write.is_some() && time_limit.is_some_and(|ms| record.at_ms > ms))
                {
                    break 'segments;
                }
                applier.apply(&record).map_err(|e| ArchiveError::io("writing the restored image", e))?;
            }
            tracing::info!(segment = %segment.name, index = applier.index, "restore: applied");
        }
        applier.image.sync_all().map_err(|e| ArchiveError::io("syncing the restored image", e))?;
        if let RestoreTarget::Index(index) = request.to {
            if applier.index != index {
                return Err(ArchiveError::Unrestorable(format!(
                    "the archive's chain ends at index {} before index {index}",
                    applier.index
                )));
            }
        }
        Ok(RestoredImage { path: image_path.clone(), index: applier.index, downloaded_bytes: downloaded })
    }
    .await;
    if built.is_err() {
        for path in [&object_path, &image_path] {
            let _ = std::fs::remove_file(path);
        }
    }
    if let Ok(image) = &built {
        tracing::info!(
            index = image.index,
            downloaded_bytes = image.downloaded_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restore: image built"
        );
    }
    built
}

/// Applies archived records to the image being rebuilt, by the state machine's rule.
struct Applier {
    image: File,
    last_write_index: LogIndex,
    index: LogIndex,
}

impl Applier {
    fn apply(&mut self, record: &format::Record) -> std::io::Result<()> {
        if let Some(write) = &record.write {
            // A write built on a state that was no longer the latest was refused when it was
            // committed (a conflict), so it is skipped here too.
            if write.base == self.last_write_index {
                let page_size = u64::from(write.pages.page_size);
                for page in &write.pages.pages {
                    self.image
                        .write_all_at(&page.data, (u64::from(page.number) - 1) * page_size)?;
                }
                self.image.set_len(u64::from(write.pages.db_size_pages) * page_size)?;
                self.last_write_index = record.index;
            }
        }
        self.index = record.index;
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> Result<(), ArchiveError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ArchiveError::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
