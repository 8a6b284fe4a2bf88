//! GA/T 1400 times: `yyyyMMddHHmmss`, fourteen digits in the device's local time, with no zone
//! in the string. The feed's `utc_offset` says which zone (China's +08:00 by default).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Milliseconds since the Unix epoch of a fourteen-digit local time; `None` if it is not one.
pub fn parse(s: &str, offset: UtcOffset) -> Option<u64> {
    // Some devices add milliseconds (`yyyyMMddHHmmssSSS`): keep them.
    if !(s.len() == 14 || s.len() == 17) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    let month = Month::try_from(n(4..6)? as u8).ok()?;
    let date = Date::from_calendar_date(n(0..4)? as i32, month, n(6..8)? as u8).ok()?;
    let time = Time::from_hms(n(8..10)? as u8, n(10..12)? as u8, n(12..14)? as u8).ok()?;
    let ms = if s.len() == 17 { n(14..17)? as u64 } else { 0 };
    let secs = PrimitiveDateTime::new(date, time).assume_offset(offset).unix_timestamp();
    u64::try_from(secs).ok().map(|s| s * 1000 + ms)
}

/// The fourteen-digit local time of `ms` since the epoch.
pub fn format(ms: u64, offset: UtcOffset) -> String {
    let t =
        OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(offset);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// `+08:00`, `-03:30` or `Z` as an offset.
pub fn parse_offset(s: &str) -> Option<UtcOffset> {
    if s == "Z" {
        return Some(UtcOffset::UTC);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1i8, &s[1..]),
        b'-' => (-1i8, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_round_trip_in_their_zone() {
        let cst = parse_offset("+08:00").unwrap();
        // 2026-11-30 18:00:00 in Beijing is 10:00:00 UTC.
        let ms = parse("20261130180000", cst).unwrap();
        assert_eq!(ms, 1_796_032_800_000);
        assert_eq!(format(ms, cst), "20261130180000");
        assert_eq!(format(ms, UtcOffset::UTC), "20261130100000");
        assert_eq!(parse("20261130180000123", cst), Some(ms + 123));
    }

    #[test]
    fn bad_times_and_offsets_are_refused() {
        let utc = UtcOffset::UTC;
        for bad in ["", "2026113018000", "20261330180000", "20261130250000", "2026-11-30 18:0", "20260230120000"] {
            assert_eq!(parse(bad, utc), None, "{bad}");
        }
        for bad in ["", "08:00", "+8:00", "+08", "+15:00", "+08:60"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
        assert_eq!(parse_offset("-03:30"), UtcOffset::from_hms(-3, -30, 0).ok());
        assert_eq!(parse_offset("Z"), Some(UtcOffset::UTC));
    }
}
