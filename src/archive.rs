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

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time in ms since the Unix epoch as RFC 3339 UTC with milliseconds
/// (`2026-12-04T09:31:49.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
}

/// Parses an RFC 3339 time (`2026-12-04T09:31:49Z`, fractions and offsets allowed) into ms
/// since the Unix epoch.
pub fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("'{text}' is not an RFC 3339 time ({e}), e.g. 2026-12-04T09:31:49Z")
        })?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("'{text}' is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: times print and parse back at millisecond precision, offsets honoured.
    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_796_385_109_123;
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)).unwrap(), ms);
        assert_eq!(
            parse_rfc3339_ms("2026-12-04T10:00:00+01:00").unwrap(),
            parse_rfc3339_ms("2026-12-04T09:00:00Z").unwrap()
        );
        assert!(parse_rfc3339_ms("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_rfc3339_ms("1969-12-31T23:59:59Z").is_err());
    }
}
