//! Timestamps on the API: RFC 3339 in UTC.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `ms` since the Unix epoch as RFC 3339 (`2026-11-26T08:34:29Z`), to the second.
pub fn rfc3339(ms: u64) -> String {
    let secs = (ms / 1000).min(253_402_300_799) as i64; // 9999-12-31T23:59:59Z at most
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parse an RFC 3339 / W3C date-time (any offset) to ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(1_764_146_069_000), "2025-11-26T08:34:29Z");
        assert_eq!(parse_rfc3339("2025-11-26T08:34:29Z"), Some(1_764_146_069_000));
        assert_eq!(parse_rfc3339("2010-04-14T06:37:38-08:00"), Some(1_271_255_858_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
