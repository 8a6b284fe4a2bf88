//! The streaming decoder the feed listeners drive: one line in, at most one message out.
//! Sans-IO: the caller supplies the time, so tests and the simulator control the clock.

use super::assemble::{Assembler, AssemblyLimits};
use super::bits::{validate_armor, Bits};
use super::decode::decode_report;
use super::error::AisError;
use super::messages::{AisMessage, Report, Type24Part};
use super::sentence::{is_ais_sentence, parse_sentence};
use super::tagblock::{split_tag_block, TagBlock};
use super::type24::PartACache;

/// Limits and behaviour of an [`AisDecoder`]. Every buffer the decoder keeps is bounded by
/// one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Longest accepted line in bytes, tag block included.
    pub max_line_len: usize,
    /// Longest accepted (assembled) payload in characters. 168 characters carry the 1008
    /// bits of the longest (five-slot) AIS message.
    pub max_payload_chars: usize,
    /// Most fragments a message may announce.
    pub max_fragments: u8,
    /// Most incomplete multi-part messages held at once; the oldest is dropped beyond it.
    pub max_pending_groups: usize,
    /// How long a multi-part message may take to complete.
    pub fragment_timeout_ms: u64,
    /// Most type 24 part A records held waiting for their part B.
    pub type24_cache_size: usize,
    /// How long a part A may wait for its part B.
    pub type24_max_age_ms: u64,
    /// Emit type 24 parts A and B separately as well (gpsdecode's `-s`): part A alone, and
    /// part B alone when no part A is cached. Off by default: only merged records.
    pub split_type24: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_line_len: 1024,
            max_payload_chars: 168,
            max_fragments: 5,
            max_pending_groups: 256,
            fragment_timeout_ms: 10_000,
            type24_cache_size: 1024,
            type24_max_age_ms: 10 * 60 * 1000,
            split_type24: false,
        }
    }
}

/// What the decoder has seen besides messages and errors (which it returns).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecoderCounters {
    /// Lines pushed.
    pub lines: u64,
    /// Lines that were not AIS sentences (GPS sentences, comments, blank lines): skipped.
    pub non_ais: u64,
    /// Fragments stored to wait for the rest of their message.
    pub fragments_held: u64,
    /// Messages returned.
    pub messages: u64,
    /// Type 24 part A records cached (not emitted on their own).
    pub type24_part_a: u64,
    /// Type 24 part B records dropped because no part A was cached (as gpsd does).
    pub type24_orphan_part_b: u64,
    /// Incomplete groups replaced by a new first fragment with the same key.
    pub groups_superseded: u64,
    /// Incomplete groups evicted because the pending cap was reached.
    pub groups_evicted: u64,
    /// Incomplete groups dropped by [`AisDecoder::expire`] or eviction after their timeout.
    pub groups_expired: u64,
}

/// Streaming AIS decoder: NMEA lines in, [`AisMessage`]s out.
#[derive(Debug)]
pub struct AisDecoder {
    config: DecoderConfig,
    assembler: Assembler,
    type24: PartACache,
    counters: DecoderCounters,
}

impl Default for AisDecoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl AisDecoder {
    /// A decoder with the given limits (zero caps are raised to one).
    pub fn new(mut config: DecoderConfig) -> Self {
        config.max_fragments = config.max_fragments.max(1);
        config.max_pending_groups = config.max_pending_groups.max(1);
        config.type24_cache_size = config.type24_cache_size.max(1);
        let assembler = Assembler::new(AssemblyLimits {
            max_fragments: config.max_fragments,
            max_payload_chars: config.max_payload_chars,
            max_pending: config.max_pending_groups,
            timeout_ms: config.fragment_timeout_ms,
        });
        let type24 = PartACache::new(config.type24_cache_size, config.type24_max_age_ms);
        AisDecoder { config, assembler, type24, counters: DecoderCounters::default() }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Counters so far.
    pub fn counters(&self) -> DecoderCounters {
        let mut c = self.counters;
        c.groups_superseded = self.assembler.dropped.superseded;
        c.groups_evicted = self.assembler.dropped.evicted;
        c.groups_expired = self.assembler.dropped.expired;
        c
    }

    /// Incomplete multi-part messages currently held.
    pub fn pending_groups(&self) -> usize {
        self.assembler.pending()
    }

    /// Type 24 part A records currently cached.
    pub fn cached_type24(&self) -> usize {
        self.type24.len()
    }

    /// Drops incomplete messages older than the fragment timeout; returns how many. Call it
    /// from a timer if a feed may go quiet mid-message (otherwise stale groups are only
    /// reclaimed when they are looked up or the cap is reached).
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.assembler.expire(now_ms)
    }

    /// Feeds one line. `source` names where it came from (the listener); fragments are only
    /// assembled with fragments from the same source (and the same tag-block `s:` station,
    /// sequence id and channel). `now_ms` is any monotonic clock in milliseconds.
    ///
    /// Returns `Ok(Some(message))` when the line completed a message, `Ok(None)` when it was
    /// consumed without completing one (a fragment, a cached type 24 part A, a dropped
    /// orphan part B, or a non-AIS line, which is counted in [`DecoderCounters::non_ais`]),
    /// and `Err` when it was rejected.
    pub fn push_line(&mut self, source: &str, line: &str, now_ms: u64) -> Result<Option<AisMessage>, AisError> {
        self.counters.lines += 1;
        if line.len() > self.config.max_line_len {
            return Err(AisError::TooLong { len: line.len(), max: self.config.max_line_len });
        }
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        let (tag, rest) = split_tag_block(line)?;
        let bytes = rest.as_bytes();
        if !is_ais_sentence(bytes) {
            self.counters.non_ais += 1;
            return Ok(None);
        }
        let s = parse_sentence(bytes)?;
        let channel = s.channel.map(char::from);

        let (report, tag_block) = if s.total == 1 {
            if s.payload.len() > self.config.max_payload_chars {
                return Err(AisError::PayloadTooLong { len: s.payload.len(), max: self.config.max_payload_chars });
            }
            validate_armor(s.payload, 0)?;
            let report = decode_report(&Bits::new(s.payload, s.fill))?;
            (report, tag.map(|t| Box::new(t.to_owned_block())))
        } else {
            let Some(mut group) = self.assembler.push(source, tag.as_ref(), &s, now_ms)? else {
                self.counters.fragments_held += 1;
                return Ok(None);
            };
            let decoded = decode_report(&Bits::new(&group.payload, group.fill));
            let tag_block: Option<Box<TagBlock>> = group.tag.take();
            self.assembler.recycle(group);
            (decoded?, tag_block)
        };

        let Some(report) = self.merge_type24(report, now_ms) else {
            return Ok(None);
        };
        self.counters.messages += 1;
        Ok(Some(AisMessage { report, channel, own_ship: s.own_ship, tag_block }))
    }

    /// Type 24 handling: cache part A, merge part B with it; in the default (merged) mode
    /// neither half is emitted alone.
    fn merge_type24(&mut self, report: Report, now_ms: u64) -> Option<Report> {
        let Report::StaticDataB(mut r) = report else {
            return Some(report);
        };
        let split = self.config.split_type24;
        match r.part {
            Type24Part::A => {
                self.type24.insert(r.mmsi, r.shipname, now_ms);
                self.counters.type24_part_a += 1;
                split.then_some(Report::StaticDataB(r))
            }
            _ => {
                if self.type24.merge(&mut r, now_ms) || split {
                    Some(Report::StaticDataB(r))
                } else {
                    self.counters.type24_orphan_part_b += 1;
                    None
                }
            }
        }
    }
}
