//! One `!xxVDM` / `!xxVDO` sentence: checksum, fields, fill bits. Nothing here knows about
//! fragments or message layouts.

use super::error::AisError;
use super::tagblock::parse_hex2;

/// The fields of one AIVDM/AIVDO sentence, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sentence<'a> {
    /// Two-letter talker (`AI`, `AB`, `BS`, ...).
    pub talker: [u8; 2],
    /// `VDO` (own ship) rather than `VDM`.
    pub own_ship: bool,
    /// Number of fragments in the message (1..=9).
    pub total: u8,
    /// This fragment's number (1..=total).
    pub number: u8,
    /// Sequential message id tying fragments together, if given.
    pub seq_id: Option<u8>,
    /// Radio channel character (`A`, `B`, `1`, `2`, ...), if given.
    pub channel: Option<u8>,
    /// The armored payload of this fragment (not yet validated).
    pub payload: &'a [u8],
    /// Fill bits at the end of this fragment's payload (0..=5).
    pub fill: u8,
}

/// XOR of the bytes, the NMEA 0183 checksum.
#[inline]
pub(crate) fn nmea_checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, &b| acc ^ b)
}

/// Whether `line` (tag block already removed) is an AIS VDM/VDO sentence at all. Anything
/// else (GPS `$GP...` sentences, comments, blank lines, other encapsulated sentences) is
/// skipped by the caller rather than reported as an error.
#[inline]
pub(crate) fn is_ais_sentence(line: &[u8]) -> bool {
    line.len() >= 6
        && line[0] == b'!'
        && line[1].is_ascii_alphanumeric()
        && line[2].is_ascii_alphanumeric()
        && line[3] == b'V'
        && line[4] == b'D'
        && (line[5] == b'M' || line[5] == b'O')
}

/// Parses a sentence accepted by [`is_ais_sentence`]. Text after the checksum (receiver
/// metadata such as USCG's `,b003669794,1272412827`) is ignored.
pub(crate) fn parse_sentence(line: &[u8]) -> Result<Sentence<'_>, AisError> {
    debug_assert!(is_ais_sentence(line));
    let star = line.iter().position(|&b| b == b'*').ok_or(AisError::MissingChecksum)?;
    let body = &line[1..star];
    let stated = line.get(star + 1..star + 3).and_then(parse_hex2).ok_or(AisError::MissingChecksum)?;
    let computed = nmea_checksum(body);
    if computed != stated {
        return Err(AisError::Checksum { computed, stated });
    }

    // body = "AIVDM,total,number,seq,channel,payload,fill"
    let mut fields = body.split(|&b| b == b',');
    let head = fields.next().unwrap_or_default();
    if head.len() != 5 {
        return Err(AisError::BadField { field: "formatter" });
    }
    let mut next = |field: &'static str| fields.next().ok_or(AisError::BadField { field });
    let total = small_number(next("fragment_count")?, "fragment_count")?;
    let number = small_number(next("fragment_number")?, "fragment_number")?;
    let seq_id = match next("sequence_id")? {
        [] => None,
        s => Some(small_number(s, "sequence_id")?),
    };
    let channel = match next("channel")? {
        [] => None,
        [c] if c.is_ascii_alphanumeric() => Some(*c),
        _ => return Err(AisError::BadField { field: "channel" }),
    };
    let payload = next("payload")?;
    let fill = match next("fill_bits")? {
        // An empty fill field is common from some receivers and means no fill.
        [] => 0,
        [d @ b'0'..=b'5'] => d - b'0',
        _ => return Err(AisError::BadFillBits),
    };
    if fields.next().is_some() {
        return Err(AisError::BadField { field: "extra_field" });
    }
    if total == 0 || number == 0 || number > total {
        return Err(AisError::BadField { field: "fragment_number" });
    }
    Ok(Sentence {
        talker: [line[1], line[2]],
        own_ship: line[5] == b'O',
        total,
        number,
        seq_id,
        channel,
        payload,
        fill,
    })
}

/// A one- or two-digit decimal field.
fn small_number(s: &[u8], field: &'static str) -> Result<u8, AisError> {
    match s {
        [d] if d.is_ascii_digit() => Ok(d - b'0'),
        [t, d] if t.is_ascii_digit() && d.is_ascii_digit() => Ok((t - b'0') * 10 + (d - b'0')),
        _ => Err(AisError::BadField { field }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part() {
        let s = parse_sentence(b"!AIVDM,1,1,,B,13aDp<PP000IwSlN?Wm@0?wN2<1T,0*29").unwrap();
        assert_eq!(s.talker, *b"AI");
        assert!(!s.own_ship);
        assert_eq!((s.total, s.number, s.seq_id, s.channel), (1, 1, None, Some(b'B')));
        assert_eq!(s.payload, b"13aDp<PP000IwSlN?Wm@0?wN2<1T");
        assert_eq!(s.fill, 0);
    }

    #[test]
    fn trailing_metadata_and_errors() {
        let line = b"!AIVDM,1,1,,A,15B4FT5000JRP>PE6E68Nbkl0PS5,0*70,b003669794,1272412827";
        assert!(parse_sentence(line).is_ok());
        let bad = b"!AIVDM,1,1,,A,15B4FT5000JRP>PE6E68Nbkl0PS5,0*71";
        assert_eq!(parse_sentence(bad).unwrap_err().reason(), "checksum");
        assert_eq!(parse_sentence(b"!AIVDM,1,1,,A,15B4FT").unwrap_err().reason(), "no_checksum");
        assert!(is_ais_sentence(b"!BSVDO,1,1"));
        assert!(!is_ais_sentence(b"$GPGGA,1"));
    }
}
