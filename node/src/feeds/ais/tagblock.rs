//! NMEA 4.0 tag blocks: `\s:source,c:1234567890*hh\` in front of a sentence, carrying the
//! receiving station, receive time and line grouping that a network feed adds.

use super::error::AisError;
use super::sentence::nmea_checksum;

/// A parsed tag block. Fields a block does not carry are `None`; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagBlock {
    /// `s:` source or station identifier (e.g. the receiver's name).
    pub source: Option<String>,
    /// `c:` receive time, as the integer the block carried: UNIX seconds by the standard,
    /// though some feeds send milliseconds.
    pub unix_time: Option<u64>,
    /// `d:` destination identifier.
    pub destination: Option<String>,
    /// `g:` sentence grouping (this line's number, the group size, the group id).
    pub group: Option<TagGroup>,
    /// `n:` line count.
    pub line_count: Option<u64>,
    /// `r:` relative time.
    pub relative_time: Option<u64>,
    /// `t:` free text.
    pub text: Option<String>,
}

/// The `g:` field: line `sentence` of `total` in group `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagGroup {
    /// This line's number within the group, from 1.
    pub sentence: u32,
    /// Number of lines in the group.
    pub total: u32,
    /// Group identifier.
    pub id: u32,
}

/// A tag block borrowed from the line, so lines whose messages need no tag data (or fragments
/// that are not first in their group) cost no allocation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TagBlockRef<'a> {
    pub source: Option<&'a str>,
    pub unix_time: Option<u64>,
    pub destination: Option<&'a str>,
    pub group: Option<TagGroup>,
    pub line_count: Option<u64>,
    pub relative_time: Option<u64>,
    pub text: Option<&'a str>,
}

impl TagBlockRef<'_> {
    pub(crate) fn to_owned_block(self) -> TagBlock {
        TagBlock {
            source: self.source.map(str::to_owned),
            unix_time: self.unix_time,
            destination: self.destination.map(str::to_owned),
            group: self.group,
            line_count: self.line_count,
            relative_time: self.relative_time,
            text: self.text.map(str::to_owned),
        }
    }
}

/// Parses the content between the backslashes, `key:value,...*hh`, checksum included.
pub fn parse_tag_block(content: &str) -> Result<TagBlock, AisError> {
    parse_tag_block_ref(content).map(TagBlockRef::to_owned_block)
}

pub(crate) fn parse_tag_block_ref(content: &str) -> Result<TagBlockRef<'_>, AisError> {
    let (body, sum) = content.rsplit_once('*').ok_or(AisError::BadTagBlock)?;
    let stated = parse_hex2(sum.as_bytes()).ok_or(AisError::BadTagBlock)?;
    let computed = nmea_checksum(body.as_bytes());
    if computed != stated {
        return Err(AisError::TagChecksum { computed, stated });
    }
    let mut tag = TagBlockRef::default();
    if body.is_empty() {
        return Ok(tag);
    }
    for field in body.split(',') {
        let (key, value) = field.split_once(':').ok_or(AisError::BadTagBlock)?;
        match key {
            "s" => tag.source = Some(value),
            "c" => tag.unix_time = Some(parse_u64(value)?),
            "d" => tag.destination = Some(value),
            "g" => tag.group = Some(parse_group(value)?),
            "n" => tag.line_count = Some(parse_u64(value)?),
            "r" => tag.relative_time = Some(parse_u64(value)?),
            "t" => tag.text = Some(value),
            // Vendor keys (ORBCOMM's T and q, i, ...) are legal and carry nothing we use.
            _ => {}
        }
    }
    Ok(tag)
}

/// Splits a leading `\...\` tag block off a line. Returns the block (if any) and the rest.
pub(crate) fn split_tag_block(line: &str) -> Result<(Option<TagBlockRef<'_>>, &str), AisError> {
    let Some(rest) = line.strip_prefix('\\') else {
        return Ok((None, line));
    };
    let end = rest.find('\\').ok_or(AisError::BadTagBlock)?;
    let tag = parse_tag_block_ref(&rest[..end])?;
    Ok((Some(tag), &rest[end + 1..]))
}

fn parse_u64(s: &str) -> Result<u64, AisError> {
    // Some feeds write `c:` with a fractional part; keep the integer seconds.
    let int = s.split_once('.').map_or(s, |(i, _)| i);
    if int.is_empty() || int.len() > 19 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AisError::BadTagBlock);
    }
    int.parse().map_err(|_| AisError::BadTagBlock)
}

fn parse_group(s: &str) -> Result<TagGroup, AisError> {
    let mut parts = s.splitn(3, '-');
    let mut next = || -> Result<u32, AisError> {
        let p = parts.next().ok_or(AisError::BadTagBlock)?;
        if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AisError::BadTagBlock);
        }
        p.parse().map_err(|_| AisError::BadTagBlock)
    };
    Ok(TagGroup { sentence: next()?, total: next()?, id: next()? })
}

pub(crate) fn parse_hex2(s: &[u8]) -> Option<u8> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    match s {
        [h, l] => Some(nibble(*h)? << 4 | nibble(*l)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbcomm_block() {
        let t = parse_tag_block("s:rORBCOMM104,q:u,c:1418172113,T:2014-12-10 00.41.53*55").unwrap();
        assert_eq!(t.source.as_deref(), Some("rORBCOMM104"));
        assert_eq!(t.unix_time, Some(1_418_172_113));
        assert_eq!(t.group, None);
    }

    #[test]
    fn group_and_checksum() {
        let t = parse_tag_block("g:1-2-1604,s:rORBCOMM008,c:1418169601,T:2014-12-10 00.00.01*37").unwrap();
        assert_eq!(t.group, Some(TagGroup { sentence: 1, total: 2, id: 1604 }));
        assert_eq!(parse_tag_block("g:1-2-1604,s:rORBCOMM008*00").unwrap_err().reason(), "tag_checksum");
        assert_eq!(parse_tag_block("s:x").unwrap_err().reason(), "bad_tag_block");
    }

    #[test]
    fn split() {
        let (t, rest) = split_tag_block("\\s:a*28\\!AIVDM").unwrap();
        assert_eq!(t.unwrap().source, Some("a"));
        assert_eq!(rest, "!AIVDM");
        assert!(split_tag_block("\\s:a*28").is_err());
        let (t, rest) = split_tag_block("!AIVDM").unwrap();
        assert!(t.is_none());
        assert_eq!(rest, "!AIVDM");
    }
}
