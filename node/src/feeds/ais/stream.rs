//! Whole-stream decoding for the `decode-ais` tool: NMEA lines in, one gpsd JSON object per
//! decoded message out, counts back.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Write};

use super::decoder::{AisDecoder, DecoderConfig};
use super::gpsd_json::write_gpsd_json;

/// What [`decode_stream`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines read.
    pub lines: u64,
    /// Messages decoded and printed.
    pub decoded: u64,
    /// Lines that were not AIS sentences, skipped.
    pub skipped_non_ais: u64,
    /// Fragments held for assembly (each multi-part message's non-final lines).
    pub fragments: u64,
    /// Type 24 part A records held for merging.
    pub type24_part_a: u64,
    /// Type 24 part B records without a cached part A, dropped (as gpsd does).
    pub type24_orphan_part_b: u64,
    /// Multi-part messages still incomplete at the end of input.
    pub incomplete_at_end: u64,
    /// Rejected lines by [`AisError::reason`](super::AisError::reason).
    pub errors: BTreeMap<&'static str, u64>,
    /// Decoded messages by type.
    pub by_type: BTreeMap<u8, u64>,
}

impl DecodeStats {
    /// Total rejected lines.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A one-line summary for the tool's stderr, e.g.
/// `lines 1500, decoded 166, non-AIS skipped 1317, ..., errors 0`.
impl fmt::Display for DecodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines {}, decoded {}, non-AIS skipped {}, fragments held {}, \
             type 24 part A held {}, type 24 part B without A {}, incomplete at end {}, errors {}",
            self.lines,
            self.decoded,
            self.skipped_non_ais,
            self.fragments,
            self.type24_part_a,
            self.type24_orphan_part_b,
            self.incomplete_at_end,
            self.error_count()
        )?;
        if !self.errors.is_empty() {
            let list: Vec<String> = self.errors.iter().map(|(r, n)| format!("{r} {n}")).collect();
            write!(f, " ({})", list.join(", "))?;
        }
        if !self.by_type.is_empty() {
            let list: Vec<String> = self.by_type.iter().map(|(t, n)| format!("{t}: {n}")).collect();
            write!(f, "; by type {{{}}}", list.join(", "))?;
        }
        Ok(())
    }
}

/// Decodes every line of `input` with a default [`AisDecoder`], writing one gpsd JSON object
/// per message (one per line) to `out`; `scaled` picks gpsdecode-style scaled output over
/// the daemon's raw units. Errors only show in the returned counts. I/O errors are returned.
///
/// There is no clock in a file, so fragment and type 24 timeouts do not apply; the size caps
/// still bound memory. Lines longer than the decoder's cap are not buffered whole.
pub fn decode_stream<R: BufRead, W: Write>(mut input: R, mut out: W, scaled: bool) -> io::Result<DecodeStats> {
    let mut decoder = AisDecoder::new(DecoderConfig::default());
    let cap = decoder.config().max_line_len;
    let mut stats = DecodeStats::default();
    let mut line = Vec::with_capacity(256);
    let mut json = String::with_capacity(512);
    while read_line_capped(&mut input, &mut line, cap + 1)? {
        stats.lines += 1;
        let text = String::from_utf8_lossy(&line);
        match decoder.push_line("", &text, 0) {
            Ok(Some(msg)) => {
                stats.decoded += 1;
                *stats.by_type.entry(msg.msg_type()).or_default() += 1;
                json.clear();
                write_gpsd_json(&msg, scaled, None, &mut json);
                json.push('\n');
                out.write_all(json.as_bytes())?;
            }
            Ok(None) => {}
            Err(e) => *stats.errors.entry(e.reason()).or_default() += 1,
        }
    }
    out.flush()?;
    let c = decoder.counters();
    stats.skipped_non_ais = c.non_ais;
    stats.fragments = c.fragments_held;
    stats.type24_part_a = c.type24_part_a;
    stats.type24_orphan_part_b = c.type24_orphan_part_b;
    stats.incomplete_at_end = decoder.pending_groups() as u64;
    Ok(stats)
}

/// Reads one line (without its newline) into `buf`, keeping at most `cap` bytes of it and
/// discarding the rest. Returns false at end of input.
fn read_line_capped<R: BufRead>(input: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let content = &chunk[..if done { used - 1 } else { used }];
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&content[..content.len().min(room)]);
        input.consume(used);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reader() {
        let mut r = io::Cursor::new(b"abc\n0123456789\nlast".to_vec());
        let mut buf = Vec::new();
        assert!(read_line_capped(&mut r, &mut buf, 5).unwrap());
        assert_eq!(buf, b"abc");
        assert!(read_line_capped(&mut r, &mut buf, 5).unwrap());
        assert_eq!(buf, b"01234");
        assert!(read_line_capped(&mut r, &mut buf, 5).unwrap());
        assert_eq!(buf, b"last");
        assert!(!read_line_capped(&mut r, &mut buf, 5).unwrap());
    }

    #[test]
    fn stream_counts() {
        let input = "$GPGSA,A,3,11,32,14,28,22,03,10,08,17,,,,2.02,1.03,1.74*00\n\
            !AIVDM,2,1,9,B,55R3Vn82=ILTQ3KKS>1<D60Dq@E918U<F222221J1`?164vc03S1CCAD,0*2A\n\
            !AIVDM,2,2,9,B,`88888888888880,2*76\n\
            !AIVDM,1,1,,B,13aDp<PP000IwSlN?Wm@0?wN2<1T,0*28\n";
        let mut out = Vec::new();
        let stats = decode_stream(input.as_bytes(), &mut out, false).unwrap();
        assert_eq!(stats.lines, 4);
        assert_eq!(stats.decoded, 1);
        assert_eq!(stats.skipped_non_ais, 1);
        assert_eq!(stats.errors.get("checksum"), Some(&1));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"class\":\"AIS\",\"type\":5,\"repeat\":0,\"mmsi\":371255000,\"scaled\":false,"));
        assert!(text.contains("\"shipname\":\"SEA ENTERPRISE\""));
        let summary = stats.to_string();
        assert!(summary.starts_with("lines 4, decoded 1, non-AIS skipped 1,"), "{summary}");
        assert!(summary.contains("errors 1 (checksum 1); by type {5: 1}"), "{summary}");
    }
}
