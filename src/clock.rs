//! Wall-clock time as the cluster records and shows it: seconds or milliseconds since the
//! Unix epoch, printed and parsed as RFC 3339 UTC. Token and certificate expiry go by
//! seconds; commit times (point-in-time restore) by milliseconds.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_s() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time in seconds since the Unix epoch as RFC 3339 UTC (`2026-12-04T09:31:49Z`).
pub fn rfc3339_s(unix_s: u64) -> String {
    rfc3339_ms(unix_s.saturating_mul(1000))
}

/// A time in ms since the Unix epoch as RFC 3339 UTC, with milliseconds when they are not
/// zero (`2026-12-04T09:31:49.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
}

/// Parses an RFC 3339 time (`2026-12-04T09:31:49Z`, fractions and offsets allowed) into ms
/// since the Unix epoch.
pub fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!("'{text}' is not an RFC 3339 time ({e}), e.g. 2026-12-04T09:31:49Z")
    })?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("'{text}' is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: expiry times are exact calendar dates, leap years included, in whole seconds.
    #[test]
    fn seconds_print_as_rfc3339() {
        assert_eq!(rfc3339_s(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_s(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_s(1_796_376_709), "2026-12-04T09:31:49Z");
        assert_eq!(rfc3339_s(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    // Goal: times print and parse back at millisecond precision, offsets honoured.
    #[test]
    fn milliseconds_round_trip() {
        let ms = 1_796_385_109_123;
        assert_eq!(rfc3339_ms(ms), "2026-12-04T11:51:49.123Z");
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)).unwrap(), ms);
        assert_eq!(
            parse_rfc3339_ms("2026-12-04T10:00:00+01:00").unwrap(),
            parse_rfc3339_ms("2026-12-04T09:00:00Z").unwrap()
        );
        assert!(parse_rfc3339_ms("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_rfc3339_ms("1969-12-31T23:59:59Z").is_err());
    }
}
