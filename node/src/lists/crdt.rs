//! The watchlist CRDT: an add-wins observed-remove set of `(subject, list)` elements with
//! per-entry expiry and tombstones. Pure data, no I/O, no clock: time comes in as arguments.
//!
//! # Operations
//! Every operation travels in one `Kind::Watchlist` entry and is a [`WatchOp`]:
//! - [`WatchOp::AddWithBasis`] puts `(subject, list)` on a list with a reason, who added it,
//!   the authority that ordered it, its legal basis and an expiry. Its **tag** is the
//!   [`EntryId`] `(origin, seq)` of the entry that carries it, so tags are unique without any
//!   coordination. [`WatchOp::Add`] is the same without authority and legal basis, with an
//!   optional expiry: what nodes wrote before entries had to name them, still read and
//!   applied alike.
//! - [`WatchOp::Remove`] takes `(subject, list)` off by naming the add tags its author had seen
//!   (`observed`). It removes exactly those adds and nothing it had not seen.
//!
//! A remove's tags are checked against the adds they name: a tag kills an add only if the add
//! was made before the remove (its stamp at most [`MAX_CLOCK_JUMP_MS`] after the remove's; the
//! remover saw the add, so with hybrid clocks its stamp follows the add's). A remove naming tags
//! that did not exist yet, such as another node's next sequence numbers, so cannot keep future
//! adds off a list: such a tombstone is dropped when the add it named arrives, and until then
//! waits like any remove that overtook its add. Whichever arrives first, the outcome is the
//! same, so it stays a CRDT.
//!
//! # Semantics
//! For each element the state keeps, per origin node, that origin's **latest** add (highest
//! sequence) and the tags removed. An add from an origin replaces that origin's earlier adds of
//! the same element: an origin always sees its own writes (the writer applies each of its adds
//! before making the next), so a later add from the same origin is an edit of the earlier one
//! (new reason, new expiry) and not a concurrent fact. Adds from other origins are independent.
//!
//! An element is **live** at time `t` if some origin's latest add is not removed and has not
//! expired at `t` (`t < expires_ms`). Hence:
//! - **add wins**: a remove that did not observe an add (it was concurrent) leaves that add, so
//!   the element stays listed;
//! - a remove that observed every add takes the element off;
//! - expiry is per add: an element listed by two origins stays live until the later expiry.
//!
//! The entry in force for an element ([`Element::winner`]) is its live-at-any-time add that
//! expires last (never expiring beats any date), ties broken by the later `at_ms`, then origin,
//! then sequence: a deterministic function of the state, so every node publishes the same
//! reason and added_by for a hit.
//!
//! # Merge and convergence
//! [`WatchSet::merge`] joins two states: per origin the add with the higher sequence, and the
//! union of removed tags, then each origin's state is put in canonical form (removed tags below
//! its latest add are dropped: they can never matter again, because an origin's latest sequence
//! only grows). That join is commutative, associative and idempotent, and applying operations one
//! by one in any order, with duplicates, gives the same state as merging their singletons. The
//! proptests in `tests` check all of it against a plain set-based model.
//!
//! # Bounds and tombstones
//! Per element the state holds at most one add per origin that ever added it, plus the removed
//! sequences at or above that add's (normally just the add's own: once removed, only its tag is
//! kept and its strings are dropped). So an element costs `O(origins that listed it)` whatever
//! the number of edits, which is bounded by the size of the mesh. A remove may name at most
//! [`MAX_OBSERVED`] tags.
//!
//! A removed element keeps a tombstone of about 40 bytes plus its key per origin that had
//! listed it. [`WatchSet::collect_garbage`] drops an origin's record for an element, and the
//! element once it has none, only when that is safe: the record is dead (removed, or expired
//! before a floor the caller gives, well in the past) **and** the caller vouches that every
//! watchlist entry of that origin up to and including the record's sequence, and every removed
//! sequence of that origin kept here, has already been applied here (the origin's contiguous
//! delivered prefix, see [`Delivery`]). Then no add that the record supersedes or that a kept
//! tombstone kills can still arrive, so dropping it cannot bring anything back to life; a later
//! add from that origin has a higher sequence and is rightly new. Removed sequences above what
//! has been delivered (a remove that overtook its add) are kept until the add arrives.
//! Collected state differs from uncollected state only in dead records, never in what is live
//! at or after the floor.

use crate::clock::MAX_CLOCK_JUMP_MS;
use crate::rules::watchlist::{check_field, normalise_plate, EntryError, EntryFields, Subject, Watchlist};
use proto::{EntryId, NodeId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Most add tags one remove may name. A remove names one tag per origin that listed the element,
/// so this is far above any real mesh.
pub const MAX_OBSERVED: usize = 1024;

/// One watchlist change: the payload of a `Kind::Watchlist` entry.
///
/// Encoded with the bincode codec: no serde attributes that it cannot round-trip. New variants
/// may only be appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchOp {
    Add {
        subject: Subject,
        list: String,
        reason: String,
        added_by: String,
        /// Milliseconds since the Unix epoch; `None` never expires.
        expires_ms: Option<u64>,
    },
    Remove {
        subject: Subject,
        list: String,
        /// The add tags the remover had seen for this element.
        observed: Vec<EntryId>,
        reason: String,
        removed_by: String,
    },
    /// An add naming the authority that ordered the listing and its legal basis, with an
    /// expiry it cannot do without: what `Lists::add` writes. [`WatchOp::Add`], which names
    /// neither, is read for entries written before.
    AddWithBasis {
        subject: Subject,
        list: String,
        reason: String,
        added_by: String,
        authority: String,
        legal_basis: String,
        /// Milliseconds since the Unix epoch.
        expires_ms: u64,
    },
}

/// Why an operation was refused (locally before it is written, or when it arrives malformed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Entry(#[from] EntryError),
    #[error("a remove names {0} observed adds; at most {MAX_OBSERVED}")]
    TooManyObserved(usize),
}

impl WatchOp {
    /// Checks the operation as the index would (plate or MMSI valid, list/reason/author
    /// non-empty, short, without control characters) and returns the element it is about, with
    /// the plate normalised.
    pub fn validate(&self) -> Result<ElementKey, OpError> {
        let (subject, list, reason, who) = match self {
            WatchOp::Add { subject, list, reason, added_by, .. } => (subject, list, reason, added_by),
            WatchOp::AddWithBasis { subject, list, reason, added_by, authority, legal_basis, .. } => {
                check_field("authority", authority)?;
                check_field("legal_basis", legal_basis)?;
                (subject, list, reason, added_by)
            }
            WatchOp::Remove { subject, list, observed, reason, removed_by } => {
                if observed.len() > MAX_OBSERVED {
                    return Err(OpError::TooManyObserved(observed.len()));
                }
                (subject, list, reason, removed_by)
            }
        };
        ElementKey::checked(subject, list, reason, who)
    }

    /// The element, unchecked (for logs).
    pub fn subject(&self) -> &Subject {
        match self {
            WatchOp::Add { subject, .. } | WatchOp::Remove { subject, .. } | WatchOp::AddWithBasis { subject, .. } => {
                subject
            }
        }
    }
}

/// A set element: a subject on one list. Plates are held normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ElementKey {
    pub subject: Subject,
    pub list: String,
}

impl ElementKey {
    /// Validates like the index does and normalises the plate.
    pub fn checked(subject: &Subject, list: &str, reason: &str, who: &str) -> Result<ElementKey, OpError> {
        // The index's own checks, so nothing reaches it that it would refuse.
        let mut scratch = Watchlist::new();
        let fields = EntryFields { list, reason, added_by: who, authority: "", legal_basis: "", expires_ms: None };
        scratch.insert(subject, fields)?;
        let subject = match subject {
            Subject::Plate(p) => Subject::Plate(normalise_plate(p).ok_or(EntryError::EmptyPlate)?),
            Subject::Mmsi(m) => Subject::Mmsi(*m),
        };
        Ok(ElementKey { subject, list: list.to_owned() })
    }

    /// A URL-safe, opaque cursor (hex) that sorts like the key.
    pub fn cursor(&self) -> String {
        let mut raw = Vec::with_capacity(self.list.len() + 24);
        match &self.subject {
            Subject::Mmsi(m) => raw.extend_from_slice(format!("v{m:09}").as_bytes()),
            Subject::Plate(p) => {
                raw.push(b'p');
                raw.extend_from_slice(p.as_bytes());
            }
        }
        raw.push(0x1f);
        raw.extend_from_slice(self.list.as_bytes());
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a [`ElementKey::cursor`].
    pub fn from_cursor(cursor: &str) -> Option<ElementKey> {
        if cursor.len() % 2 != 0 || cursor.len() > 2 * 1024 {
            return None;
        }
        let raw: Vec<u8> = (0..cursor.len())
            .step_by(2)
            .map(|i| cursor.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<_>>()?;
        let text = String::from_utf8(raw).ok()?;
        let (subject, list) = text.split_once('\u{1f}')?;
        let subject = match subject.as_bytes().first()? {
            b'v' => Subject::Mmsi(subject.get(1..)?.parse().ok()?),
            b'p' => Subject::Plate(subject.get(1..)?.to_owned()),
            _ => return None,
        };
        Some(ElementKey { subject, list: list.to_owned() })
    }
}

impl fmt::Display for ElementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.subject, self.list)
    }
}

impl Ord for ElementKey {
    /// Plates (by normalised text) before MMSIs (by number), then by list.
    fn cmp(&self, other: &Self) -> Ordering {
        let by_subject = match (&self.subject, &other.subject) {
            (Subject::Plate(a), Subject::Plate(b)) => a.cmp(b),
            (Subject::Mmsi(a), Subject::Mmsi(b)) => a.cmp(b),
            (Subject::Plate(_), Subject::Mmsi(_)) => Ordering::Less,
            (Subject::Mmsi(_), Subject::Plate(_)) => Ordering::Greater,
        };
        by_subject.then_with(|| self.list.cmp(&other.list))
    }
}

impl PartialOrd for ElementKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What an add says, beyond its element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AddFields {
    pub reason: String,
    pub added_by: String,
    pub expires_ms: Option<u64>,
    /// When the add was made (its entry's HLC wall time).
    pub at_ms: u64,
    /// Who ordered the listing, and under what law; empty for adds written before entries
    /// named them ([`WatchOp::Add`]).
    pub authority: String,
    pub legal_basis: String,
}

impl AddFields {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// An origin's latest add of an element: its sequence, and its fields unless it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Latest {
    seq: u64,
    fields: Option<AddFields>,
}

/// What one origin contributed to one element, in canonical form: `removed` holds only
/// sequences at or above `latest.seq`, and `latest.fields` is `None` exactly when `latest.seq`
/// is in `removed`. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct OriginState {
    latest: Option<Latest>,
    /// Tombstones: sequences named by removes, each with the latest stamp (ms) of a remove that
    /// named it.
    removed: BTreeMap<u64, u64>,
}

/// Whether a remove made at `removed_ms` takes an add made at `added_ms`: the add must not be
/// younger than the remove, allowing for clocks that disagree by as much as the hybrid clock
/// follows.
fn kills(removed_ms: u64, added_ms: u64) -> bool {
    added_ms <= removed_ms.saturating_add(MAX_CLOCK_JUMP_MS)
}

impl OriginState {
    fn canonicalise(&mut self) {
        if let Some(latest) = &mut self.latest {
            if self.removed.first_key_value().is_some_and(|(&s, _)| s < latest.seq) {
                self.removed = self.removed.split_off(&latest.seq);
            }
            if let Some(&removed_ms) = self.removed.get(&latest.seq) {
                match &latest.fields {
                    // Named before the add was made: a tag that did not exist yet.
                    Some(f) if !kills(removed_ms, f.at_ms) => {
                        self.removed.remove(&latest.seq);
                    }
                    _ => latest.fields = None,
                }
            }
        }
    }

    fn add(&mut self, seq: u64, fields: AddFields) -> bool {
        match &mut self.latest {
            Some(l) if l.seq > seq => return false,
            Some(l) if l.seq == seq => {
                // The same entry again. Two different payloads under one tag can only come
                // from a faulty origin; keep the larger so the outcome is order-independent.
                return match &mut l.fields {
                    Some(f) if fields > *f => {
                        *f = fields;
                        true
                    }
                    _ => false,
                };
            }
            _ => {}
        }
        self.latest = Some(Latest { seq, fields: Some(fields) });
        self.canonicalise();
        true
    }

    fn remove(&mut self, seq: u64, at_ms: u64) -> bool {
        if self.latest.as_ref().is_some_and(|l| l.seq > seq) {
            return false; // superseded already
        }
        let before = self.clone();
        let r = self.removed.entry(seq).or_insert(at_ms);
        *r = (*r).max(at_ms);
        self.canonicalise();
        *self != before
    }

    fn merge(&mut self, other: &OriginState) {
        match (&mut self.latest, &other.latest) {
            (_, None) => {}
            (None, Some(o)) => self.latest = Some(o.clone()),
            (Some(m), Some(o)) => match o.seq.cmp(&m.seq) {
                Ordering::Greater => *m = o.clone(),
                Ordering::Equal => {
                    if let (Some(mf), Some(of)) = (&mut m.fields, &o.fields) {
                        if of > mf {
                            *mf = of.clone();
                        }
                    }
                }
                Ordering::Less => {}
            },
        }
        for (&seq, &at_ms) in &other.removed {
            let r = self.removed.entry(seq).or_insert(at_ms);
            *r = (*r).max(at_ms);
        }
        self.canonicalise();
    }

    fn live_fields(&self) -> Option<(u64, &AddFields)> {
        self.latest.as_ref().and_then(|l| l.fields.as_ref().map(|f| (l.seq, f)))
    }

    fn tombstones(&self) -> usize {
        self.removed.len()
    }
}

/// One element's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    origins: BTreeMap<NodeId, OriginState>,
}

impl Element {
    /// Adds not removed, one per origin at most (expired ones included).
    pub fn adds(&self) -> impl Iterator<Item = (EntryId, &AddFields)> + '_ {
        self.origins.iter().filter_map(|(o, s)| s.live_fields().map(|(seq, f)| (EntryId { origin: o.clone(), seq }, f)))
    }

    /// Live at `now_ms`: some add not removed and not expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.adds().any(|(_, f)| f.is_live(now_ms))
    }

    /// The add in force: the one expiring last (see the module docs), expired or not.
    pub fn winner(&self) -> Option<(EntryId, &AddFields)> {
        self.adds().max_by(|(ta, a), (tb, b)| {
            let expiry = |f: &AddFields| f.expires_ms.unwrap_or(u64::MAX);
            expiry(a).cmp(&expiry(b)).then(a.at_ms.cmp(&b.at_ms)).then_with(|| ta.cmp(tb))
        })
    }

    /// The tags a remove issued now must name: every add not yet removed.
    pub fn observed(&self) -> Vec<EntryId> {
        self.adds().map(|(t, _)| t).collect()
    }

    /// Removed tags kept.
    pub fn tombstones(&self) -> usize {
        self.origins.values().map(OriginState::tombstones).sum()
    }
}

/// Counts for metrics and the docs' cost figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetStats {
    pub elements: usize,
    /// Adds not removed (expired or not).
    pub adds: usize,
    pub tombstones: usize,
}

/// The whole set: every element any operation has named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSet {
    elements: BTreeMap<ElementKey, Element>,
}

impl WatchSet {
    pub fn new() -> WatchSet {
        WatchSet::default()
    }

    /// Applies one operation carried by the entry `tag`, made at `at_ms` (the entry's HLC wall
    /// time). Returns the element if its state changed, `None` for a duplicate or an operation
    /// that changes nothing. Idempotent and order-independent.
    pub fn apply(&mut self, tag: &EntryId, at_ms: u64, op: &WatchOp) -> Result<Option<ElementKey>, OpError> {
        let key = op.validate()?;
        let changed = match op {
            WatchOp::Add { reason, added_by, expires_ms, .. } => {
                let fields = AddFields {
                    reason: reason.clone(),
                    added_by: added_by.clone(),
                    expires_ms: *expires_ms,
                    at_ms,
                    authority: String::new(),
                    legal_basis: String::new(),
                };
                let element = self.elements.entry(key.clone()).or_default();
                element.origins.entry(tag.origin.clone()).or_default().add(tag.seq, fields)
            }
            WatchOp::AddWithBasis { reason, added_by, authority, legal_basis, expires_ms, .. } => {
                let fields = AddFields {
                    reason: reason.clone(),
                    added_by: added_by.clone(),
                    expires_ms: Some(*expires_ms),
                    at_ms,
                    authority: authority.clone(),
                    legal_basis: legal_basis.clone(),
                };
                let element = self.elements.entry(key.clone()).or_default();
                element.origins.entry(tag.origin.clone()).or_default().add(tag.seq, fields)
            }
            WatchOp::Remove { observed, .. } => {
                if observed.is_empty() {
                    return Ok(None);
                }
                let element = self.elements.entry(key.clone()).or_default();
                let mut changed = false;
                for t in observed {
                    changed |= element.origins.entry(t.origin.clone()).or_default().remove(t.seq, at_ms);
                }
                changed
            }
        };
        Ok(changed.then_some(key))
    }

    /// Joins `other` into `self` (union of adds and tombstones).
    pub fn merge(&mut self, other: &WatchSet) {
        for (key, theirs) in &other.elements {
            let mine = self.elements.entry(key.clone()).or_default();
            for (origin, state) in &theirs.origins {
                mine.origins.entry(origin.clone()).or_default().merge(state);
            }
        }
    }

    pub fn element(&self, key: &ElementKey) -> Option<&Element> {
        self.elements.get(key)
    }

    pub fn contains(&self, key: &ElementKey) -> bool {
        self.elements.contains_key(key)
    }

    pub fn is_live(&self, key: &ElementKey, now_ms: u64) -> bool {
        self.elements.get(key).is_some_and(|e| e.is_live(now_ms))
    }

    /// Every element, in key order.
    pub fn elements(&self) -> impl Iterator<Item = (&ElementKey, &Element)> + '_ {
        self.elements.iter()
    }

    /// The elements live at `now_ms`, in key order.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = &ElementKey> + '_ {
        self.elements.iter().filter(move |(_, e)| e.is_live(now_ms)).map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    pub fn stats(&self) -> SetStats {
        let mut s = SetStats { elements: self.elements.len(), ..SetStats::default() };
        for e in self.elements.values() {
            s.adds += e.adds().count();
            s.tombstones += e.tombstones();
        }
        s
    }

    /// Drops dead records whose origin's delivered prefix covers them (see the module docs).
    /// `floor_ms`: adds that expired at or before it count as dead; keep it well in the past
    /// (a clock stepped back must not revive what was dropped). `delivered(origin)`: the highest
    /// sequence such that every watchlist entry of `origin` up to it has been applied here.
    /// Returns the elements whose state changed (dropped ones included).
    pub fn collect_garbage(&mut self, floor_ms: u64, delivered: impl Fn(&NodeId) -> u64) -> Vec<ElementKey> {
        let mut changed = Vec::new();
        self.elements.retain(|key, element| {
            let before = element.origins.len();
            element.origins.retain(|origin, state| {
                let upto = delivered(origin);
                let dead = match &state.latest {
                    None => true,
                    Some(l) => l.seq <= upto && l.fields.as_ref().is_none_or(|f| !f.is_live(floor_ms)),
                };
                let covered = state.removed.last_key_value().is_none_or(|(&s, _)| s <= upto);
                !(dead && covered)
            });
            if element.origins.len() != before {
                changed.push(key.clone());
            }
            !element.origins.is_empty()
        });
        changed
    }
}

/// Which sequences of each origin have been applied, to tell [`WatchSet::collect_garbage`]
/// each origin's contiguous prefix. Sequences start at 1. Memory: one counter per origin plus
/// the sequences received above a gap, until the gap fills.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    origins: BTreeMap<NodeId, Prefix>,
}

#[derive(Debug, Clone, Default)]
struct Prefix {
    contiguous: u64,
    above: BTreeSet<u64>,
}

impl Delivery {
    pub fn note(&mut self, id: &EntryId) {
        let p = self.origins.entry(id.origin.clone()).or_default();
        if id.seq <= p.contiguous {
            return;
        }
        if id.seq == p.contiguous + 1 {
            p.contiguous = id.seq;
            while p.above.remove(&(p.contiguous + 1)) {
                p.contiguous += 1;
            }
        } else {
            p.above.insert(id.seq);
        }
    }

    /// Every sequence of `origin` up to this one has been applied.
    pub fn contiguous(&self, origin: &NodeId) -> u64 {
        self.origins.get(origin).map_or(0, |p| p.contiguous)
    }

    /// Sequences held above a gap, over all origins.
    pub fn waiting(&self) -> usize {
        self.origins.values().map(|p| p.above.len()).sum()
    }
}

#[cfg(test)]
mod tests;
