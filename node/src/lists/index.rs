//! Publishing the index ingest reads: the watchlist file's entries with the CRDT's live adds
//! over them, kept in a [`WatchlistHandle`].
//!
//! Readers hold an `Arc<Watchlist>` snapshot for a batch, so the published copy cannot be
//! changed in place. The publisher keeps two copies instead: the one in the handle (`current`)
//! and the previous one (`spare`), which is behind `current` only by the elements of the last
//! publish. An edit brings the spare up to date by copying those few elements from `current`,
//! patches the edited elements into it, and swaps it in; the old `current` becomes the spare.
//! Cost per publish: a handful of hash-set operations per edited element, plus, when a reader
//! still holds the spare from before the previous edit, one full copy of the index (counted in
//! [`PublishStats::copies`]). Memory: two copies of the index.
//!
//! Measured with a 100,000-entry file (release build, `lists::tests::edits_stay_cheap_with_a_large_file`):
//! an edit (apply + publish) takes 4 to 10 µs; an edit that must copy the index because a
//! reader still holds the spare takes 23 to 35 ms; opening (replay, patch, first copy) 30 to
//! 100 ms; one API page of 50 entries about 4 ms (a scan of the index).
//!
//! The publisher must be the only writer of the handle once [`Lists::open`](super::Lists::open)
//! has run: a `replace` from elsewhere would be overwritten by the next publish. Reloading the
//! file at run time would have to go through the lists (rebuild with the new base).
//!
//! File entries are not in the CRDT. For each element the CRDT knows, the file's entry (if any)
//! is captured from the index the first time the element is touched, before anything is patched
//! over it, and kept while the element stays in the CRDT. The entry published for an element is
//! the file's or the CRDT's winner, whichever expires later (the CRDT's on a tie); with neither,
//! nothing. A CRDT remove therefore never takes off what the file lists: file entries change by
//! editing the file.

use super::crdt::{AddFields, ElementKey, WatchSet};
use crate::ingest::WatchlistHandle;
use crate::rules::watchlist::{EntryFields, WatchEntry, Watchlist};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// An entry's descriptive fields, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub reason: String,
    pub added_by: String,
    pub authority: String,
    pub legal_basis: String,
    pub expires_ms: Option<u64>,
}

impl Fields {
    fn of(e: &WatchEntry) -> Fields {
        Fields {
            reason: e.reason().to_owned(),
            added_by: e.added_by().to_owned(),
            authority: e.authority().to_owned(),
            legal_basis: e.legal_basis().to_owned(),
            expires_ms: e.expires_ms(),
        }
    }

    fn on<'a>(&'a self, list: &'a str) -> EntryFields<'a> {
        EntryFields {
            list,
            reason: &self.reason,
            added_by: &self.added_by,
            authority: &self.authority,
            legal_basis: &self.legal_basis,
            expires_ms: self.expires_ms,
        }
    }

    /// Whether the index's entry `e` says what these fields say.
    pub(crate) fn matches(&self, e: &WatchEntry) -> bool {
        self.on(e.list()) == e.fields()
    }
}

impl From<&AddFields> for Fields {
    fn from(f: &AddFields) -> Fields {
        Fields {
            reason: f.reason.clone(),
            added_by: f.added_by.clone(),
            authority: f.authority.clone(),
            legal_basis: f.legal_basis.clone(),
            expires_ms: f.expires_ms,
        }
    }
}

/// How publishing has gone, for tests and the cost figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Publishes that swapped in a new index.
    pub publishes: u64,
    /// Publishes that had to copy the whole index (a reader still held the spare).
    pub copies: u64,
}

pub(crate) struct Publisher {
    handle: WatchlistHandle,
    current: Arc<Watchlist>,
    spare: Option<Arc<Watchlist>>,
    /// Elements where `spare` differs from `current`.
    behind: Vec<ElementKey>,
    /// The file's entry for elements the CRDT holds (absent: the file has none).
    file: HashMap<ElementKey, Fields>,
    stats: PublishStats,
}

/// The entry the index holds for `key`, expired or not.
pub(crate) fn entry_of<'a>(index: &'a Watchlist, key: &ElementKey) -> Option<&'a WatchEntry> {
    // `hits` at time 0 yields every entry with an expiry after the epoch: all of them in practice.
    index.hits(&key.subject, 0).find(|e| e.list() == key.list)
}

fn patch(index: &mut Watchlist, key: &ElementKey, want: Option<&Fields>) {
    match want {
        Some(f) => {
            if let Err(e) = index.insert(&key.subject, f.on(&key.list)) {
                // Unreachable: CRDT operations are validated with the index's own checks, and
                // file entries came out of the index.
                tracing::error!(element = %key, error = %e, "watchlist entry refused by the index");
            }
        }
        None => {
            index.remove(&key.subject, &key.list);
        }
    }
}

/// A fresh index with the same entries.
fn copy(index: &Watchlist) -> Watchlist {
    let mut out = Watchlist::new();
    out.reserve(index.len());
    for e in index.iter() {
        if let Err(err) = out.insert(&e.subject(), e.fields()) {
            tracing::error!(error = %err, "watchlist entry not copied");
        }
    }
    out
}

impl Publisher {
    /// Publishes `base` (the file's index) with every element of `crdt` patched over it.
    pub(crate) fn new(handle: WatchlistHandle, mut base: Watchlist, crdt: &WatchSet) -> Publisher {
        let mut file = HashMap::new();
        for (key, _) in crdt.elements() {
            if let Some(e) = entry_of(&base, key) {
                file.insert(key.clone(), Fields::of(e));
            }
        }
        let mut p = Publisher {
            handle,
            current: Arc::new(Watchlist::new()),
            spare: None,
            behind: Vec::new(),
            file,
            stats: PublishStats::default(),
        };
        for (key, _) in crdt.elements() {
            patch(&mut base, key, p.desired(key, crdt).as_ref());
        }
        let spare = copy(&base);
        p.handle.replace(base);
        p.current = p.handle.current();
        p.spare = Some(Arc::new(spare));
        p
    }

    pub(crate) fn current(&self) -> &Arc<Watchlist> {
        &self.current
    }

    pub(crate) fn stats(&self) -> PublishStats {
        self.stats
    }

    /// To call before the CRDT first holds `key` (again): remembers the file's entry for it.
    pub(crate) fn capture(&mut self, key: &ElementKey) {
        match entry_of(&self.current, key) {
            Some(e) => {
                self.file.insert(key.clone(), Fields::of(e));
            }
            None => {
                self.file.remove(key);
            }
        }
    }

    /// The file's entry for a key the CRDT holds.
    pub(crate) fn file_entry(&self, key: &ElementKey) -> Option<&Fields> {
        self.file.get(key)
    }

    fn desired(&self, key: &ElementKey, crdt: &WatchSet) -> Option<Fields> {
        let mesh = crdt.element(key).and_then(|e| e.winner()).map(|(_, f)| Fields::from(f));
        match (self.file.get(key), mesh) {
            (Some(file), Some(mesh)) => {
                let expiry = |f: &Fields| f.expires_ms.unwrap_or(u64::MAX);
                Some(if expiry(file) > expiry(&mesh) { file.clone() } else { mesh })
            }
            (Some(file), None) => Some(file.clone()),
            (None, mesh) => mesh,
        }
    }

    /// Brings the published index in line with `crdt` for `keys`; swaps in a new copy only if
    /// an entry actually changes. Keys the CRDT no longer holds (collected) fall back to the
    /// file's entry, which is then forgotten.
    pub(crate) fn publish(&mut self, keys: impl IntoIterator<Item = ElementKey>, crdt: &WatchSet) {
        let keys: BTreeSet<ElementKey> = keys.into_iter().collect();
        let mut changes = Vec::new();
        for key in &keys {
            let want = self.desired(key, crdt);
            let same = match (entry_of(&self.current, key), &want) {
                (Some(e), Some(w)) => w.matches(e),
                (None, None) => true,
                _ => false,
            };
            if !same {
                changes.push((key.clone(), want));
            }
        }
        for key in &keys {
            if !crdt.contains(key) {
                self.file.remove(key);
            }
        }
        if changes.is_empty() {
            return;
        }
        let mut next = match self.spare.take().map(Arc::try_unwrap) {
            Some(Ok(mut spare)) => {
                for key in self.behind.drain(..) {
                    let want = entry_of(&self.current, &key).map(Fields::of);
                    patch(&mut spare, &key, want.as_ref());
                }
                spare
            }
            _ => {
                // A reader still holds the spare (or there is none): copy the index in force.
                self.stats.copies += 1;
                self.behind.clear();
                copy(&self.current)
            }
        };
        for (key, want) in &changes {
            patch(&mut next, key, want.as_ref());
        }
        self.handle.replace(next);
        let published = self.handle.current();
        self.spare = Some(std::mem::replace(&mut self.current, published));
        self.behind = changes.into_iter().map(|(k, _)| k).collect();
        self.stats.publishes += 1;
    }
}
