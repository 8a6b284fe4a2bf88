//! Watchlists that converge across the mesh.
//!
//! [`Lists`] is the one owner of this node's watchlist edits. The list in force for ingest is
//! the watchlist file (loaded at start, see [`crate::rules::watchlist`]) with the live entries of
//! an add-wins set CRDT ([`crdt`]) over it, published into the ingest [`WatchlistHandle`].
//!
//! - Every change is one durable `Kind::Watchlist` entry whose payload is a [`WatchOp`],
//!   committed together with its `Kind::Audit` record (who, what, why) in a single
//!   [`Store::commit`], then applied. Only operators may change lists.
//! - At start, [`Lists::open`] replays every stored `Kind::Watchlist` entry of every origin, so a
//!   restart rebuilds the same set. The mesh replicates those entries and hands the ones it made
//!   durable here to [`Lists::apply_replicated`]; any order, duplicates included, converges.
//! - Expiry needs no write: published entries carry their expiry and the index checks it on
//!   every lookup. [`Lists::collect_garbage`] later drops dead records (see [`crdt`] for when
//!   that is safe).
//! - File entries are changed by editing the file. A CRDT remove takes off what the mesh added,
//!   never what the file lists: if both list an element, removing it through the API leaves the
//!   file's entry in force (the API says so), and removing an element only the file lists is
//!   refused.
//! - Lists hold vehicles (plates) and vessels (MMSIs) only: [`Subject`] has no other kind, and
//!   the reason field is for the listing's grounds, never for data about people.
//!
//! Publishing patches two alternating copies of the index (see `index.rs`): a small edit costs
//! a few hash-set operations per touched element, whatever the size of the file.

pub mod crdt;
mod index;

pub use crdt::{AddFields, Delivery, Element, ElementKey, OpError, SetStats, WatchOp, WatchSet, MAX_OBSERVED};
pub use index::PublishStats;

use crate::clock::SharedClock;
use crate::events::Identity;
use crate::ingest::WatchlistHandle;
use crate::records::{self, AuditRecord};
use crate::rules::watchlist::{Subject, Watchlist};
use crate::store::{Op, Store, StoreError};
use crate::workflow::Role;
use index::Publisher;
use proto::{Entry, EntryId, Kind, NodeId};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Adds that expired more than this long ago may be collected (a clock stepped back by less
/// than this cannot revive a collected entry).
pub const GC_GRACE_MS: u64 = 24 * 3_600_000;

/// Largest page [`Lists::page`] returns.
pub const MAX_PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("only operators may change watchlists; a {role} may not")]
    Forbidden { role: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not listed")]
    NotListed(ElementKey),
    #[error("{0} is listed by the watchlist file, not through the mesh; change it by editing the file")]
    FileOnly(ElementKey),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the store belongs to node {store}, not {node}")]
    WrongNode { store: NodeId, node: NodeId },
}

/// An entry to put on a list: every one names who ordered it, under what law, and when it
/// ends.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub subject: &'a Subject,
    pub list: &'a str,
    pub reason: &'a str,
    /// The body that ordered the listing (a court, the port authority, a police bureau).
    pub authority: &'a str,
    /// The law, order or notice it rests on.
    pub legal_basis: &'a str,
    /// Milliseconds since the Unix epoch: in the future, and at most the lists' longest
    /// listing away.
    pub expires_ms: u64,
}

/// The longest a watchlist entry may run unless `[watchlist] max_expiry_days` says otherwise:
/// a year, after which the authority renews it.
pub const DEFAULT_MAX_EXPIRY_DAYS: u32 = 365;

/// What an add made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub key: ElementKey,
    /// The add's tag: the address of its entry.
    pub tag: EntryId,
    pub at_ms: u64,
}

/// What a remove did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub key: ElementKey,
    /// The remove's entry.
    pub tag: EntryId,
    pub at_ms: u64,
    /// Still listed after the remove: by the watchlist file, or by an add the remove had not
    /// seen yet.
    pub still_listed: bool,
}

/// What one [`Lists::apply_replicated`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicated {
    /// Entries that changed the set.
    pub applied: usize,
    /// Valid entries that changed nothing (duplicates, superseded adds, ...).
    pub unchanged: usize,
    /// Entries ignored: not watchlist entries, undecodable, or refused by validation.
    pub malformed: usize,
}

/// Where the entry in force for an element comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File,
    /// Added through the API on some node: the add, and when it was made.
    Mesh {
        tag: EntryId,
        at_ms: u64,
    },
}

/// One entry in force, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub key: ElementKey,
    pub reason: String,
    pub added_by: String,
    /// Who ordered the listing and under what law; empty only for mesh adds written before
    /// entries named them.
    pub authority: String,
    pub legal_basis: String,
    pub expires_ms: Option<u64>,
    pub source: Source,
}

/// Which entries a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Plate,
    Mmsi,
}

#[derive(Debug, Clone, Default)]
pub struct PageFilter {
    pub kind: Option<SubjectKind>,
    pub list: Option<String>,
}

/// Counts for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListsStats {
    pub set: SetStats,
    pub publish: PublishStats,
    /// Entries skipped as malformed since open (replay included).
    pub malformed: u64,
    /// Entries held above a gap in some origin's sequence.
    pub waiting: usize,
    /// Entries in the published index (file and mesh, live or expired).
    pub index_entries: usize,
}

struct State {
    crdt: WatchSet,
    delivery: Delivery,
    index: Publisher,
}

impl State {
    /// Applies one decoded, validated operation; returns whether it changed the set.
    fn apply(&mut self, tag: &EntryId, at_ms: u64, key: &ElementKey, op: &WatchOp) -> Result<bool, OpError> {
        self.delivery.note(tag);
        if !self.crdt.contains(key) {
            self.index.capture(key);
        }
        Ok(self.crdt.apply(tag, at_ms, op)?.is_some())
    }
}

struct Inner {
    store: Store,
    clock: SharedClock,
    node: NodeId,
    /// Serialises local edits from reading the state to applying the committed entry, so each
    /// of this node's adds has seen its previous ones.
    writer: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    malformed: AtomicU64,
    /// The longest listing an add may ask for, in ms.
    max_expiry_ms: u64,
}

/// The handle on this node's watchlists. Cheap to clone.
#[derive(Clone)]
pub struct Lists {
    inner: Arc<Inner>,
}

fn actor(who: &Identity) -> String {
    format!("{} ({})", who.name, who.role.as_str())
}

fn require_operator(who: &Identity) -> Result<(), ListError> {
    if who.role == Role::Operator {
        Ok(())
    } else {
        Err(ListError::Forbidden { role: who.role.as_str() })
    }
}

fn invalid(e: OpError) -> ListError {
    ListError::Invalid(e.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ListError> {
    records::encode(value).map_err(|e| ListError::Store(StoreError::Codec(e.to_string())))
}

impl Lists {
    /// Replays every stored watchlist entry (all origins) and publishes `base` (the file's
    /// entries) with the live CRDT entries over it into `handle`. `node` must be the store's.
    pub fn open(
        store: Store,
        base: Watchlist,
        handle: WatchlistHandle,
        node: NodeId,
        clock: SharedClock,
        max_expiry_days: u32,
    ) -> Result<Lists, ListError> {
        if store.node() != &node {
            return Err(ListError::WrongNode { store: store.node().clone(), node });
        }
        let mut crdt = WatchSet::new();
        let mut delivery = Delivery::default();
        let mut malformed = 0u64;
        for entry in store.all_entries(Kind::Watchlist) {
            let entry = entry?;
            delivery.note(&entry.id());
            let applied =
                decode(&entry).and_then(|op| crdt.apply(&entry.id(), entry.hlc.wall_ms, &op).map_err(invalid));
            if let Err(e) = applied {
                tracing::warn!(entry = %entry.id(), error = %e, "stored watchlist entry skipped");
                malformed += 1;
            }
        }
        let stats = crdt.stats();
        let index = Publisher::new(handle, base, &crdt);
        tracing::info!(
            elements = stats.elements,
            adds = stats.adds,
            tombstones = stats.tombstones,
            malformed,
            index_entries = index.current().len(),
            "watchlist changes replayed"
        );
        let inner = Inner {
            store,
            clock,
            node,
            writer: tokio::sync::Mutex::new(()),
            state: Mutex::new(State { crdt, delivery, index }),
            malformed: AtomicU64::new(malformed),
            max_expiry_ms: u64::from(max_expiry_days) * crate::clock::DAY_MS,
        };
        Ok(Lists { inner: Arc::new(inner) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn node(&self) -> &NodeId {
        &self.inner.node
    }

    /// Puts `subject` on `list` (or edits this node's earlier add of it), expiring at
    /// `expires_ms` (ms since the epoch, in the future and at most `[watchlist]
    /// max_expiry_days` away). Operators only; every field required.
    /// Resolves once the entry and its audit record are durable and the index is published.
    pub async fn add(&self, entry: NewEntry<'_>, who: &Identity) -> Result<Added, ListError> {
        require_operator(who)?;
        let NewEntry { subject, list, reason, authority, legal_basis, expires_ms } = entry;
        let now = self.inner.clock.now_ms();
        if expires_ms <= now {
            return Err(ListError::Invalid("the expiry is not in the future".into()));
        }
        let longest = self.inner.max_expiry_ms;
        if expires_ms - now > longest {
            return Err(ListError::Invalid(format!(
                "the expiry is more than {} days away; the longest listing is that, then the authority renews it",
                longest / crate::clock::DAY_MS
            )));
        }
        let op = WatchOp::AddWithBasis {
            subject: subject.clone(),
            list: list.to_owned(),
            reason: reason.to_owned(),
            added_by: who.name.clone(),
            authority: authority.to_owned(),
            legal_basis: legal_basis.to_owned(),
            expires_ms,
        };
        let key = op.validate().map_err(invalid)?;
        let audit = AuditRecord {
            at_ms: now,
            actor: actor(who),
            action: "watchlist_add".into(),
            subject: format!("{key}, until {}", crate::api::time::rfc3339(expires_ms)),
            why: format!("{reason}{}", crate::events::ordered_by(authority, legal_basis)),
        };
        let _writer = self.inner.writer.lock().await;
        let (tag, at_ms) = self.write(&key, &op, &audit).await?;
        Ok(Added { key, tag, at_ms })
    }

    /// Takes `subject` off `list`: removes every add of it this node has seen. Operators only;
    /// `reason` required. [`ListError::NotListed`] if the mesh does not list it live now,
    /// [`ListError::FileOnly`] if only the watchlist file does.
    pub async fn remove(
        &self,
        subject: &Subject,
        list: &str,
        reason: &str,
        who: &Identity,
    ) -> Result<Removed, ListError> {
        require_operator(who)?;
        let key = ElementKey::checked(subject, list, reason, &who.name).map_err(invalid)?;
        let _writer = self.inner.writer.lock().await;
        let now = self.inner.clock.now_ms();
        let observed = {
            let st = self.state();
            match st.crdt.element(&key).filter(|e| e.is_live(now)) {
                Some(e) => e.observed(),
                None => {
                    let in_file = index::entry_of(st.index.current(), &key).is_some_and(|e| e.is_live(now));
                    return Err(if in_file { ListError::FileOnly(key) } else { ListError::NotListed(key) });
                }
            }
        };
        let op = WatchOp::Remove {
            subject: key.subject.clone(),
            list: key.list.clone(),
            observed,
            reason: reason.to_owned(),
            removed_by: who.name.clone(),
        };
        let audit = AuditRecord {
            at_ms: now,
            actor: actor(who),
            action: "watchlist_remove".into(),
            subject: key.to_string(),
            why: reason.to_owned(),
        };
        let (tag, at_ms) = self.write(&key, &op, &audit).await?;
        let still_listed = {
            let st = self.state();
            index::entry_of(st.index.current(), &key).is_some_and(|e| e.is_live(self.inner.clock.now_ms()))
        };
        Ok(Removed { key, tag, at_ms, still_listed })
    }

    /// Commits the operation with its audit record, then applies and publishes it. The caller
    /// holds the writer lock.
    async fn write(&self, key: &ElementKey, op: &WatchOp, audit: &AuditRecord) -> Result<(EntryId, u64), ListError> {
        let ops = vec![
            Op::Append { kind: Kind::Watchlist, payload: encode(op)? },
            Op::Append { kind: Kind::Audit, payload: encode(audit)? },
        ];
        let appended = self.inner.store.commit(ops).await?;
        let Some(entry) = appended.iter().find(|a| a.kind == Kind::Watchlist) else {
            return Err(StoreError::Engine("commit returned no watchlist entry".into()).into());
        };
        let tag = EntryId { origin: self.inner.node.clone(), seq: entry.seq };
        let mut st = self.state();
        if let Err(e) = st.apply(&tag, entry.hlc.wall_ms, key, op) {
            // Validated before it was written; a replay would skip it the same way.
            tracing::error!(entry = %tag, error = %e, "own watchlist entry not applied");
        }
        let State { crdt, index, .. } = &mut *st;
        index.publish([key.clone()], crdt);
        Ok((tag, entry.hlc.wall_ms))
    }

    /// Applies watchlist entries the mesh has made durable here (any origin, any order,
    /// duplicates harmless) and republishes once. Malformed entries are skipped with a warning
    /// and counted; they are skipped the same way at every replay.
    pub fn apply_replicated(&self, entries: &[Entry]) -> Replicated {
        let mut report = Replicated::default();
        let mut touched = Vec::new();
        let mut st = self.state();
        for entry in entries {
            if entry.kind != Kind::Watchlist {
                tracing::warn!(entry = %entry.id(), kind = %entry.kind, "not a watchlist entry; ignored");
                report.malformed += 1;
                continue;
            }
            let op = decode(entry).and_then(|op| Ok((op.validate().map_err(invalid)?, op)));
            let applied = op.and_then(|(key, op)| {
                let changed = st.apply(&entry.id(), entry.hlc.wall_ms, &key, &op).map_err(invalid)?;
                touched.push(key);
                Ok(changed)
            });
            match applied {
                Ok(true) => report.applied += 1,
                Ok(false) => report.unchanged += 1,
                Err(e) => {
                    st.delivery.note(&entry.id());
                    tracing::warn!(entry = %entry.id(), error = %e, "replicated watchlist entry skipped");
                    report.malformed += 1;
                }
            }
        }
        let State { crdt, index, .. } = &mut *st;
        index.publish(touched, crdt);
        drop(st);
        self.inner.malformed.fetch_add(report.malformed as u64, Ordering::Relaxed);
        report
    }

    /// Drops dead CRDT records where that is safe (expired more than [`GC_GRACE_MS`] ago or
    /// removed, and every earlier entry of their origin applied here). Returns how many elements
    /// changed. Call it now and then (every few minutes); it scans every element.
    pub fn collect_garbage(&self) -> usize {
        let floor = self.inner.clock.now_ms().saturating_sub(GC_GRACE_MS);
        let mut st = self.state();
        let State { crdt, delivery, index } = &mut *st;
        let changed = crdt.collect_garbage(floor, |o| delivery.contiguous(o));
        let n = changed.len();
        index.publish(changed, crdt);
        n
    }

    /// Whether `key` is listed at `now_ms` (file or mesh).
    pub fn is_listed(&self, key: &ElementKey, now_ms: u64) -> bool {
        let current = self.state().index.current().clone();
        index::entry_of(&current, key).is_some_and(|e| e.is_live(now_ms))
    }

    /// The entries in force now, by key, after `after`, at most `limit` (1 to [`MAX_PAGE`]).
    /// Returns the page and the key to continue after, if there is more.
    pub fn page(
        &self,
        filter: &PageFilter,
        after: Option<&ElementKey>,
        limit: usize,
    ) -> (Vec<Listing>, Option<ElementKey>) {
        let limit = limit.clamp(1, MAX_PAGE);
        let now = self.inner.clock.now_ms();
        let current = self.state().index.current().clone();
        // The `limit + 1` smallest keys, in a max-heap.
        let mut heap: BinaryHeap<Row<'_>> = BinaryHeap::with_capacity(limit + 2);
        for e in current.iter() {
            let kind_ok = match filter.kind {
                Some(SubjectKind::Plate) => e.plate().is_some(),
                Some(SubjectKind::Mmsi) => e.mmsi().is_some(),
                None => true,
            };
            if !kind_ok || !e.is_live(now) || filter.list.as_deref().is_some_and(|l| l != e.list()) {
                continue;
            }
            let key = ElementKey { subject: e.subject(), list: e.list().to_owned() };
            if after.is_some_and(|a| &key <= a) || (heap.len() > limit && heap.peek().is_some_and(|top| key >= top.0)) {
                continue;
            }
            heap.push(Row(key, e));
            if heap.len() > limit + 1 {
                heap.pop();
            }
        }
        let mut rows = heap.into_sorted_vec();
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.0.clone())
        } else {
            None
        };
        let st = self.state();
        let page = rows
            .into_iter()
            .map(|Row(key, e)| {
                let mesh = st
                    .crdt
                    .element(&key)
                    .and_then(|el| el.winner())
                    .filter(|(_, f)| index::Fields::from(*f).matches(e));
                let source = match mesh {
                    Some((tag, f)) => Source::Mesh { tag, at_ms: f.at_ms },
                    None => Source::File,
                };
                Listing {
                    reason: e.reason().to_owned(),
                    added_by: e.added_by().to_owned(),
                    authority: e.authority().to_owned(),
                    legal_basis: e.legal_basis().to_owned(),
                    expires_ms: e.expires_ms(),
                    source,
                    key,
                }
            })
            .collect();
        (page, next)
    }

    /// The file's entry for an element the mesh also lists, if any (for tests and views).
    pub fn file_entry(&self, key: &ElementKey) -> Option<(String, String, Option<u64>)> {
        self.state().index.file_entry(key).map(|f| (f.reason.clone(), f.added_by.clone(), f.expires_ms))
    }

    /// A copy of the CRDT state (for tests, diagnostics and comparing replicas).
    pub fn snapshot(&self) -> WatchSet {
        self.state().crdt.clone()
    }

    /// Entries in force (file and mesh), for the metric: cheap, unlike [`Lists::stats`], which
    /// walks every element.
    pub fn index_entries(&self) -> usize {
        self.state().index.current().len()
    }

    pub fn stats(&self) -> ListsStats {
        let st = self.state();
        ListsStats {
            set: st.crdt.stats(),
            publish: st.index.stats(),
            malformed: self.inner.malformed.load(Ordering::Relaxed),
            waiting: st.delivery.waiting(),
            index_entries: st.index.current().len(),
        }
    }
}

fn decode(entry: &Entry) -> Result<WatchOp, ListError> {
    records::decode::<WatchOp>(&entry.payload).map_err(|e| ListError::Invalid(format!("undecodable: {e}")))
}

/// A page row, ordered by key only.
struct Row<'a>(ElementKey, &'a crate::rules::watchlist::WatchEntry);

impl PartialEq for Row<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Row<'_> {}
impl PartialOrd for Row<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Row<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests;
