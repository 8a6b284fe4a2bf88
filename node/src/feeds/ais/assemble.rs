//! Multi-part message assembly. Fragments are grouped by (listener source, tag-block source,
//! sequence id, channel); a group lives until its last fragment, its timeout, or eviction
//! when the pending-group cap is reached, so a feed that never completes its messages cannot
//! grow memory.

use super::bits::validate_armor;
use super::error::AisError;
use super::sentence::Sentence;
use super::tagblock::{TagBlock, TagBlockRef};

/// Limits for the assembler (a subset of the decoder's configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssemblyLimits {
    pub max_fragments: u8,
    pub max_payload_chars: usize,
    pub max_pending: usize,
    pub timeout_ms: u64,
}

/// A message whose fragments are (being) collected.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    listener: String,
    tag_source: Option<String>,
    seq_id: Option<u8>,
    channel: Option<u8>,
    total: u8,
    next: u8,
    started_ms: u64,
    /// Concatenated armored payload, validated.
    pub payload: Vec<u8>,
    /// Fill bits of the last fragment.
    pub fill: u8,
    /// Tag block of the first fragment.
    pub tag: Option<Box<TagBlock>>,
}

impl Pending {
    fn matches(&self, listener: &str, tag_source: Option<&str>, s: &Sentence<'_>) -> bool {
        self.seq_id == s.seq_id
            && self.channel == s.channel
            && self.listener == listener
            // A continuation line may carry a tag block without `s:` (or none at all):
            // it then belongs to its listener's group whatever the first line's source.
            && (tag_source.is_none() || self.tag_source.as_deref() == tag_source)
    }
}

/// What happened to groups other than the one a fragment belonged to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Groups replaced by a new first fragment with the same key.
    pub superseded: u64,
    /// Groups evicted because the pending cap was reached.
    pub evicted: u64,
    /// Groups removed because they were older than the timeout.
    pub expired: u64,
}

#[derive(Debug)]
pub(crate) struct Assembler {
    limits: AssemblyLimits,
    groups: Vec<Pending>,
    /// Finished groups kept for reuse, so steady-state assembly does not allocate.
    spare: Vec<Pending>,
    pub dropped: Dropped,
}

impl Assembler {
    pub(crate) fn new(limits: AssemblyLimits) -> Self {
        Assembler { limits, groups: Vec::new(), spare: Vec::new(), dropped: Dropped::default() }
    }

    /// Number of incomplete groups held.
    pub(crate) fn pending(&self) -> usize {
        self.groups.len()
    }

    /// Adds a fragment of a multi-part message (`s.total > 1`). Returns the completed group
    /// when this was its last fragment; hand it back with [`Assembler::recycle`].
    pub(crate) fn push(
        &mut self,
        listener: &str,
        tag: Option<&TagBlockRef<'_>>,
        s: &Sentence<'_>,
        now_ms: u64,
    ) -> Result<Option<Pending>, AisError> {
        if s.total > self.limits.max_fragments {
            return Err(AisError::TooManyFragments { total: s.total, max: self.limits.max_fragments });
        }
        let tag_source = tag.and_then(|t| t.source);
        let found = self.groups.iter().position(|g| g.matches(listener, tag_source, s));

        if s.number == 1 {
            if let Some(i) = found {
                let old = self.groups.swap_remove(i);
                self.recycle(old);
                self.dropped.superseded += 1;
            }
            self.make_room(now_ms);
            let payload_check = self.check_payload(0, s.payload);
            let mut g = self.spare.pop().unwrap_or_default();
            g.listener.clear();
            g.listener.push_str(listener);
            g.tag_source = tag_source.map(str::to_owned);
            g.seq_id = s.seq_id;
            g.channel = s.channel;
            g.total = s.total;
            g.next = 2;
            g.started_ms = now_ms;
            g.payload.clear();
            g.fill = s.fill;
            g.tag = tag.map(|t| Box::new(t.to_owned_block()));
            if let Err(e) = payload_check {
                self.recycle(g);
                return Err(e);
            }
            g.payload.extend_from_slice(s.payload);
            self.groups.push(g);
            return Ok(None);
        }

        let Some(i) = found else {
            return Err(AisError::OrphanFragment { number: s.number, total: s.total });
        };
        let age_ms = now_ms.saturating_sub(self.groups[i].started_ms);
        if age_ms > self.limits.timeout_ms {
            let g = self.groups.swap_remove(i);
            self.recycle(g);
            return Err(AisError::FragmentTimeout { age_ms });
        }
        let (expected, total) = (self.groups[i].next, self.groups[i].total);
        if s.number != expected || s.total != total {
            let g = self.groups.swap_remove(i);
            self.recycle(g);
            return Err(AisError::FragmentOrder { number: s.number, total: s.total, expected });
        }
        if let Err(e) = self.check_payload(self.groups[i].payload.len(), s.payload) {
            let g = self.groups.swap_remove(i);
            self.recycle(g);
            return Err(e);
        }
        let g = &mut self.groups[i];
        g.payload.extend_from_slice(s.payload);
        g.fill = s.fill;
        g.next += 1;
        if s.number < total {
            return Ok(None);
        }
        Ok(Some(self.groups.swap_remove(i)))
    }

    /// Returns a finished group's buffers for reuse.
    pub(crate) fn recycle(&mut self, mut g: Pending) {
        // Keep as many spares as groups may be pending; drop the rest.
        if self.spare.len() < self.limits.max_pending {
            g.tag = None;
            g.tag_source = None;
            self.spare.push(g);
        }
    }

    /// Drops groups older than the timeout; returns how many.
    pub(crate) fn expire(&mut self, now_ms: u64) -> usize {
        let timeout = self.limits.timeout_ms;
        let mut n = 0;
        let mut i = 0;
        while i < self.groups.len() {
            if now_ms.saturating_sub(self.groups[i].started_ms) > timeout {
                let g = self.groups.swap_remove(i);
                self.recycle(g);
                n += 1;
            } else {
                i += 1;
            }
        }
        self.dropped.expired += n as u64;
        n
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.groups.len() < self.limits.max_pending {
            return;
        }
        if self.expire(now_ms) > 0 {
            return;
        }
        if let Some(oldest) = self.groups.iter().enumerate().min_by_key(|(_, g)| g.started_ms).map(|(i, _)| i) {
            let g = self.groups.swap_remove(oldest);
            self.recycle(g);
            self.dropped.evicted += 1;
        }
    }

    fn check_payload(&self, have: usize, more: &[u8]) -> Result<(), AisError> {
        let len = have + more.len();
        if len > self.limits.max_payload_chars {
            return Err(AisError::PayloadTooLong { len, max: self.limits.max_payload_chars });
        }
        validate_armor(more, have)
    }
}
