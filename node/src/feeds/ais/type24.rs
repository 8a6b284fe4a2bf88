//! Type 24 part A cache. Class B units send their name (part A) and their type, call sign
//! and dimensions (part B) as two separate messages; like gpsd we hold part A until part B
//! arrives and emit one merged vessel record. The cache is bounded in size and age.

use super::bits::AisText;
use super::messages::{StaticDataReport, Type24Part};

#[derive(Debug, Clone, Copy)]
struct Entry {
    mmsi: u32,
    shipname: AisText<20>,
    stored_ms: u64,
}

#[derive(Debug)]
pub(crate) struct PartACache {
    entries: Vec<Entry>,
    capacity: usize,
    max_age_ms: u64,
}

impl PartACache {
    pub(crate) fn new(capacity: usize, max_age_ms: u64) -> Self {
        PartACache { entries: Vec::new(), capacity: capacity.max(1), max_age_ms }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers a part A, replacing an older one from the same MMSI, else the oldest entry
    /// when full.
    pub(crate) fn insert(&mut self, mmsi: u32, shipname: AisText<20>, now_ms: u64) {
        let entry = Entry { mmsi, shipname, stored_ms: now_ms };
        if let Some(e) = self.entries.iter_mut().find(|e| e.mmsi == mmsi) {
            *e = entry;
        } else if self.entries.len() < self.capacity {
            self.entries.push(entry);
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.stored_ms) {
            *oldest = entry;
        }
    }

    /// Merges a part B with the cached part A of the same MMSI, consuming the entry so a
    /// repeated part B does not match twice. Returns false when there is no (fresh) part A.
    pub(crate) fn merge(&mut self, part_b: &mut StaticDataReport, now_ms: u64) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.mmsi == part_b.mmsi) else {
            return false;
        };
        let e = self.entries.swap_remove(i);
        if now_ms.saturating_sub(e.stored_ms) > self.max_age_ms {
            return false;
        }
        part_b.shipname = e.shipname;
        part_b.part = Type24Part::Both;
        true
    }
}
