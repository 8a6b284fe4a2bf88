//! Watchlist index: vehicle plates and vessel MMSIs that raise a hit when ingest sees them.
//!
//! Lists hold vehicles, vessels and organisations only, never people and never biometric data;
//! this index holds the two kinds ingest can match on a detection: plates and MMSIs.
//!
//! # Entries
//! An entry is a subject ([`Subject::Plate`] or [`Subject::Mmsi`]), the list it is on, a reason,
//! who added it, the authority that ordered the listing and its legal basis, and an expiry in
//! milliseconds since the Unix epoch. An entry is live while `now_ms < expires_ms`; expired
//! entries never hit and are dropped by [`Watchlist::purge_expired`]. The file requires every
//! field (see below); the index itself also takes entries replicated from before authority,
//! legal basis and expiry were required (the lists' plain `Add`), with those left empty. A subject may be on several lists; `(subject, list)` is the
//! identity, so inserting the same pair again replaces the earlier entry.
//!
//! Plates are compared in normalised form: ASCII letters upper-cased, full-width ASCII folded to
//! ASCII, whitespace and the separators `-` `.` `·` (and the look-alikes `•` `・` `‧`) dropped;
//! every other character is kept as written, so `鲁k 123-45` matches `鲁K12345` and `京K12345`
//! does not. A normalised plate is at most [`MAX_PLATE_BYTES`] bytes of UTF-8.
//!
//! # Lookup cost
//! [`Watchlist::check_plate`] and [`Watchlist::check_mmsi`] do not allocate: the plate is
//! normalised into a 24-byte stack key and looked up in one hash set. Each stored entry is 40
//! bytes (key, a shared pointer to its descriptive strings, expiry); list, reason, added_by,
//! authority and legal basis are interned, because millions of entries share a handful of them.
//!
//! # File format
//! UTF-8 text, one entry per line, fields separated by commas:
//!
//! ```text
//! # kind,subject,list,reason,added_by,expires,authority,legal_basis
//! plate,鲁K12345,stolen-vehicles,reported stolen 2026-11-02,officer-li,2027-05-01,City Public Security Bureau,Road Traffic Safety Law art. 96
//! mmsi,412345678,detained-vessels,port state control detention,officer-wang,1798761600000,Harbour Master,Port State Control Order 2026-41
//! ```
//!
//! - `kind` is `plate` or `mmsi` (ASCII case ignored).
//! - A plate is normalised as above. An MMSI is exactly 9 ASCII digits (leading zeros allowed,
//!   `000000000` refused: transponders send it as a placeholder).
//! - `list`, `reason`, `added_by`, `authority` (who ordered the listing: a court, a police
//!   bureau, the harbour master) and `legal_basis` (the law or order it rests on) are required
//!   and non-empty, at most [`MAX_FIELD_BYTES`] bytes each, without control characters. Fields
//!   cannot contain commas: there is no quoting.
//! - `expires` is required: milliseconds since the Unix epoch (decimal digits), a `YYYY-MM-DD`
//!   date (midnight UTC) or an RFC 3339 time. It may be at most [`LoadLimits::latest_expiry_ms`];
//!   the node sets that from `[watchlist] max_expiry_days`, so no listing outlives the longest
//!   an authority may order without renewing it. An entry already expired loads and never hits.
//! - Whitespace around fields is trimmed. Blank lines and lines starting with `#` are skipped;
//!   a UTF-8 byte-order mark and `\r\n` line ends are accepted.
//! - A later line for the same `(subject, list)` replaces an earlier one.
//! - Limits ([`LoadLimits`]): file size (default 2 GiB), line length (default 1024 bytes).
//!
//! Loading is all or nothing: if any line is bad, [`load_file`] returns [`LoadError::BadLines`]
//! naming the file and the line number and problem of every bad line (the first
//! [`LoadLimits::max_errors`] are listed, the rest counted), so an operator fixes the file and the
//! list in force stays the previous one.

mod load;
mod plate;

pub use load::{load_file, load_reader, LineError, LineErrorKind, LoadError, LoadLimits};
pub use plate::{normalise_plate, MAX_PLATE_BYTES};

use plate::{Key, PlateProblem};
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use thiserror::Error;

/// Longest list name, reason or added_by accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Largest valid MMSI (nine digits).
const MAX_MMSI: u32 = 999_999_999;

/// Stored for "never expires", so the live test is a single compare.
const NEVER: u64 = u64::MAX;

/// What an entry is about. Plates are given as read; the index normalises them. Also what an
/// alert says was matched, so it is serialisable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Subject {
    Plate(String),
    Mmsi(u32),
}

impl Subject {
    /// `plate` or `mmsi`, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Plate(_) => "plate",
            Subject::Mmsi(_) => "mmsi",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Plate(p) => write!(f, "plate {p}"),
            Subject::Mmsi(m) => write!(f, "MMSI {m}"),
        }
    }
}

/// The descriptive fields of an entry, borrowed, for [`Watchlist::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFields<'a> {
    pub list: &'a str,
    pub reason: &'a str,
    pub added_by: &'a str,
    /// Who ordered the listing. Empty only for entries replicated from before it was required.
    pub authority: &'a str,
    /// The law or order the listing rests on; empty as `authority` is.
    pub legal_basis: &'a str,
    /// Milliseconds since the Unix epoch; `None` never expires.
    pub expires_ms: Option<u64>,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    #[error("plate is empty once spaces and separators are removed")]
    EmptyPlate,
    #[error("plate is longer than {MAX_PLATE_BYTES} bytes once normalised")]
    PlateTooLong,
    #[error("plate contains control character U+{0:04X}")]
    PlateControl(u32),
    #[error("MMSI {0} is not a nine-digit number (000000000 is refused)")]
    BadMmsi(u32),
    #[error("{0} is empty")]
    EmptyField(&'static str),
    #[error("{0} is longer than {MAX_FIELD_BYTES} bytes")]
    FieldTooLong(&'static str),
    #[error("{0} contains a control character")]
    FieldControl(&'static str),
}

impl From<PlateProblem> for EntryError {
    fn from(p: PlateProblem) -> Self {
        match p {
            PlateProblem::Empty => EntryError::EmptyPlate,
            PlateProblem::TooLong => EntryError::PlateTooLong,
            PlateProblem::Control(c) => EntryError::PlateControl(u32::from(c)),
        }
    }
}

/// The strings an entry shares with many others; interned once per distinct set.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Meta {
    list: Arc<str>,
    reason: Arc<str>,
    added_by: Arc<str>,
    authority: Arc<str>,
    legal_basis: Arc<str>,
}

impl Meta {
    fn is(&self, f: &EntryFields<'_>) -> bool {
        *self.list == *f.list
            && *self.reason == *f.reason
            && *self.added_by == *f.added_by
            && *self.authority == *f.authority
            && *self.legal_basis == *f.legal_basis
    }
}

/// One watchlist entry as stored. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct WatchEntry {
    key: Key,
    meta: Arc<Meta>,
    expires_ms: u64,
}

impl WatchEntry {
    /// The subject (allocates for a plate; meant for the hit path, not every lookup).
    pub fn subject(&self) -> Subject {
        match (self.key.as_plate(), self.key.as_mmsi()) {
            (Some(p), _) => Subject::Plate(p.to_owned()),
            (None, Some(m)) => Subject::Mmsi(m),
            // Keys are only ever built as one of the two kinds.
            (None, None) => Subject::Plate(String::new()),
        }
    }
    /// The normalised plate, if this entry is for a plate.
    pub fn plate(&self) -> Option<&str> {
        self.key.as_plate()
    }
    pub fn mmsi(&self) -> Option<u32> {
        self.key.as_mmsi()
    }
    pub fn list(&self) -> &str {
        &self.meta.list
    }
    pub fn reason(&self) -> &str {
        &self.meta.reason
    }
    pub fn added_by(&self) -> &str {
        &self.meta.added_by
    }
    /// Who ordered the listing (empty for an entry replicated from before it was required).
    pub fn authority(&self) -> &str {
        &self.meta.authority
    }
    /// The law or order the listing rests on (empty as [`WatchEntry::authority`] is).
    pub fn legal_basis(&self) -> &str {
        &self.meta.legal_basis
    }
    /// The entry's descriptive fields, borrowed: what [`Watchlist::insert`] takes.
    pub fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            list: self.list(),
            reason: self.reason(),
            added_by: self.added_by(),
            authority: self.authority(),
            legal_basis: self.legal_basis(),
            expires_ms: self.expires_ms(),
        }
    }
    pub fn expires_ms(&self) -> Option<u64> {
        (self.expires_ms != NEVER).then_some(self.expires_ms)
    }
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

impl fmt::Debug for WatchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchEntry")
            .field("subject", &self.subject())
            .field("list", &self.list())
            .field("reason", &self.reason())
            .field("added_by", &self.added_by())
            .field("authority", &self.authority())
            .field("legal_basis", &self.legal_basis())
            .field("expires_ms", &self.expires_ms())
            .finish()
    }
}

impl PartialEq for WatchEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.meta == other.meta && self.expires_ms == other.expires_ms
    }
}

/// A set element that hashes and compares by key only, so the set can be probed with a bare
/// `Key` and hand back the whole entry.
struct Slot(WatchEntry);

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}
impl Eq for Slot {}
impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state)
    }
}
impl Borrow<Key> for Slot {
    fn borrow(&self) -> &Key {
        &self.0.key
    }
}

/// Interns strings and the sets of descriptive strings entries share.
#[derive(Default)]
struct Interner {
    strings: HashSet<Arc<str>>,
    metas: HashSet<Arc<Meta>>,
    /// Recently used sets, checked before the hash sets: bulk loads repeat a few sets line
    /// after line, and this saves six hash lookups per line.
    recent: [Option<Arc<Meta>>; RECENT],
    next_recent: usize,
}

const RECENT: usize = 8;

impl Interner {
    fn string(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }

    fn meta(&mut self, f: &EntryFields<'_>) -> Arc<Meta> {
        if let Some(m) = self.recent.iter().flatten().find(|m| m.is(f)) {
            return m.clone();
        }
        let probe = Meta {
            list: self.string(f.list),
            reason: self.string(f.reason),
            added_by: self.string(f.added_by),
            authority: self.string(f.authority),
            legal_basis: self.string(f.legal_basis),
        };
        let meta = match self.metas.get(&probe) {
            Some(found) => found.clone(),
            None => {
                let new = Arc::new(probe);
                self.metas.insert(new.clone());
                new
            }
        };
        self.recent[self.next_recent] = Some(meta.clone());
        self.next_recent = (self.next_recent + 1) % RECENT;
        meta
    }

    /// Drops sets and strings no entry uses any more.
    fn collect(&mut self) {
        self.recent = Default::default();
        self.metas.retain(|m| Arc::strong_count(m) > 1);
        self.metas.shrink_to_fit();
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.strings.shrink_to_fit();
    }

    fn approx_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Arc<Meta>>() + 1;
        let metas = self.metas.capacity() * slot + self.metas.len() * (std::mem::size_of::<Meta>() + 16);
        let strings = self.strings.capacity() * (std::mem::size_of::<Arc<str>>() + 1)
            + self.strings.iter().map(|s| s.len() + 16).sum::<usize>();
        metas + strings
    }
}

/// The index. One owner (the rules task); replication applies changes through
/// [`Watchlist::insert`] and [`Watchlist::remove`].
#[derive(Default)]
pub struct Watchlist {
    /// One entry per subject: the common case, probed on every detection.
    primary: HashSet<Slot>,
    /// Further entries for subjects on more than one list (rare). A key is here only if it is
    /// also in `primary`.
    extra: HashMap<Key, Vec<WatchEntry>>,
    interner: Interner,
    len: usize,
    removed_since_collect: usize,
}

impl Watchlist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries, live or expired.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A live entry for this plate (as read; normalised here), if any. No allocation.
    pub fn check_plate(&self, plate: &str, now_ms: u64) -> Option<&WatchEntry> {
        self.check_key(&Key::plate_lookup(plate)?, now_ms)
    }

    /// A live entry for this MMSI, if any. No allocation.
    pub fn check_mmsi(&self, mmsi: u32, now_ms: u64) -> Option<&WatchEntry> {
        self.check_key(&Key::mmsi(mmsi), now_ms)
    }

    fn check_key(&self, key: &Key, now_ms: u64) -> Option<&WatchEntry> {
        let first = &self.primary.get(key)?.0;
        if first.is_live(now_ms) {
            return Some(first);
        }
        self.extra.get(key)?.iter().find(|e| e.is_live(now_ms))
    }

    /// Every live entry for this subject (one per list), for raising one hit per list.
    pub fn hits(&self, subject: &Subject, now_ms: u64) -> Hits<'_> {
        match subject {
            Subject::Plate(p) => self.plate_hits(p, now_ms),
            Subject::Mmsi(m) => self.mmsi_hits(*m, now_ms),
        }
    }

    /// Every live entry for this plate (as read), one per list. No allocation.
    pub fn plate_hits(&self, plate: &str, now_ms: u64) -> Hits<'_> {
        self.key_hits(Key::plate_lookup(plate), now_ms)
    }

    /// Every live entry for this MMSI, one per list. No allocation.
    pub fn mmsi_hits(&self, mmsi: u32, now_ms: u64) -> Hits<'_> {
        self.key_hits(Some(Key::mmsi(mmsi)), now_ms)
    }

    fn key_hits(&self, key: Option<Key>, now_ms: u64) -> Hits<'_> {
        let first = key.and_then(|k| self.primary.get(&k)).map(|s| &s.0);
        let rest = match (first, key) {
            (Some(_), Some(k)) => self.extra.get(&k).map_or(&[][..], Vec::as_slice),
            _ => &[][..],
        };
        Hits { first, rest: rest.iter(), now_ms }
    }

    /// Adds or replaces the entry for `(subject, fields.list)`; returns the one it replaced.
    pub fn insert(&mut self, subject: &Subject, fields: EntryFields<'_>) -> Result<Option<WatchEntry>, EntryError> {
        let key = match subject {
            Subject::Plate(p) => Key::plate(p)?,
            Subject::Mmsi(m) => mmsi_key(*m)?,
        };
        check_fields(&fields)?;
        Ok(self.insert_checked(key, fields))
    }

    /// Inserts fields already passed through [`check_fields`].
    fn insert_checked(&mut self, key: Key, fields: EntryFields<'_>) -> Option<WatchEntry> {
        let meta = self.interner.meta(&fields);
        self.upsert(WatchEntry { key, meta, expires_ms: fields.expires_ms.unwrap_or(NEVER) })
    }

    fn upsert(&mut self, entry: WatchEntry) -> Option<WatchEntry> {
        // One probe in the common case (a subject not yet present, or on the same list).
        let Some(Slot(old)) = self.primary.replace(Slot(entry)) else {
            self.len += 1;
            return None;
        };
        let Some(new) = self.primary.get(&old.key).map(|s| &s.0) else {
            return Some(old);
        };
        if new.meta.list == old.meta.list {
            return Some(old);
        }
        // A second list for this subject: the old entry goes back as primary, the new one
        // joins (or replaces its list's entry in) the extras.
        let Slot(new) = self.primary.replace(Slot(old))?;
        let extras = self.extra.entry(new.key).or_default();
        match extras.iter_mut().find(|e| e.meta.list == new.meta.list) {
            Some(same_list) => Some(std::mem::replace(same_list, new)),
            None => {
                extras.push(new);
                self.len += 1;
                None
            }
        }
    }

    /// Removes the entry for `(subject, list)`; returns it if there was one.
    pub fn remove(&mut self, subject: &Subject, list: &str) -> Option<WatchEntry> {
        let key = match subject {
            Subject::Plate(p) => Key::plate_lookup(p)?,
            Subject::Mmsi(m) => Key::mmsi(*m),
        };
        let primary_is_it = &*self.primary.get(&key)?.0.meta.list == list;
        let removed = if primary_is_it {
            let removed = self.primary.take(&key)?.0;
            if let Some(promoted) = self.pop_extra(&key) {
                self.primary.insert(Slot(promoted));
            }
            removed
        } else {
            let extras = self.extra.get_mut(&key)?;
            let pos = extras.iter().position(|e| &*e.meta.list == list)?;
            let removed = extras.swap_remove(pos);
            if extras.is_empty() {
                self.extra.remove(&key);
            }
            removed
        };
        self.len -= 1;
        self.note_removed(1);
        Some(removed)
    }

    fn pop_extra(&mut self, key: &Key) -> Option<WatchEntry> {
        let extras = self.extra.get_mut(key)?;
        let e = extras.pop();
        if extras.is_empty() {
            self.extra.remove(key);
        }
        e
    }

    /// Drops every entry expired at `now_ms`; returns how many.
    pub fn purge_expired(&mut self, now_ms: u64) -> usize {
        let mut removed = 0usize;
        self.extra.retain(|_, extras| {
            let before = extras.len();
            extras.retain(|e| e.is_live(now_ms));
            removed += before - extras.len();
            !extras.is_empty()
        });
        let mut promote = Vec::new();
        let extra = &self.extra;
        self.primary.retain(|slot| {
            if slot.0.is_live(now_ms) {
                return true;
            }
            removed += 1;
            if extra.contains_key(&slot.0.key) {
                promote.push(slot.0.key);
            }
            false
        });
        for key in promote {
            if let Some(e) = self.pop_extra(&key) {
                self.primary.insert(Slot(e));
            }
        }
        self.len -= removed;
        self.note_removed(removed);
        removed
    }

    /// Interned strings outlive their entries until collected; collect once removals reach
    /// half the size of the index, so the cost is amortised and garbage stays bounded.
    fn note_removed(&mut self, n: usize) {
        self.removed_since_collect += n;
        if self.removed_since_collect > 1024.max(self.len / 2) {
            self.interner.collect();
            self.removed_since_collect = 0;
        }
    }

    /// Every entry, live or expired, in no particular order (for snapshots and replication).
    pub fn iter(&self) -> impl Iterator<Item = &WatchEntry> + '_ {
        self.primary.iter().map(|s| &s.0).chain(self.extra.values().flatten())
    }

    /// Makes room for `additional` more entries without rehashing (before a bulk load).
    pub fn reserve(&mut self, additional: usize) {
        self.primary.reserve(additional);
    }

    /// Releases spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.primary.shrink_to_fit();
        self.extra.shrink_to_fit();
        self.interner.collect();
    }

    /// Rough heap footprint in bytes: tables at their capacity plus interned strings.
    pub fn approx_heap_bytes(&self) -> usize {
        let primary = self.primary.capacity() * (std::mem::size_of::<Slot>() + 1);
        let extra = self.extra.capacity() * (std::mem::size_of::<(Key, Vec<WatchEntry>)>() + 1)
            + self.extra.values().map(|v| v.capacity() * std::mem::size_of::<WatchEntry>()).sum::<usize>();
        primary + extra + self.interner.approx_bytes()
    }
}

fn mmsi_key(mmsi: u32) -> Result<Key, EntryError> {
    if mmsi == 0 || mmsi > MAX_MMSI {
        return Err(EntryError::BadMmsi(mmsi));
    }
    Ok(Key::mmsi(mmsi))
}

/// The checks every entry passes. Authority and legal basis may be empty here (entries
/// replicated from before they were required); the file and new adds require them.
fn check_fields(fields: &EntryFields<'_>) -> Result<(), EntryError> {
    check_field("list", fields.list)?;
    check_field("reason", fields.reason)?;
    check_field("added_by", fields.added_by)?;
    for (name, value) in [("authority", fields.authority), ("legal_basis", fields.legal_basis)] {
        if !value.is_empty() {
            check_field(name, value)?;
        }
    }
    Ok(())
}

pub(crate) fn check_field(name: &'static str, value: &str) -> Result<(), EntryError> {
    if value.trim().is_empty() {
        return Err(EntryError::EmptyField(name));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(EntryError::FieldTooLong(name));
    }
    if value.chars().any(char::is_control) {
        return Err(EntryError::FieldControl(name));
    }
    Ok(())
}

/// Live entries for one subject; see [`Watchlist::hits`].
pub struct Hits<'a> {
    first: Option<&'a WatchEntry>,
    rest: std::slice::Iter<'a, WatchEntry>,
    now_ms: u64,
}

impl<'a> Iterator for Hits<'a> {
    type Item = &'a WatchEntry;
    fn next(&mut self) -> Option<&'a WatchEntry> {
        if let Some(first) = self.first.take() {
            if first.is_live(self.now_ms) {
                return Some(first);
            }
        }
        let now_ms = self.now_ms;
        self.rest.by_ref().find(|e| e.is_live(now_ms))
    }
}

#[cfg(test)]
mod tests;
