//! The node's durable store: sled behind a small interface.
//!
//! One database per node, one tree per entry kind (`entries/<kind>`) plus named state trees.
//! Writes go through a single flusher thread that owns the database's write side: callers hand
//! it a batch of [`Op`]s and are answered once the batch is on disk (group commit: every batch
//! that arrived while the previous flush ran shares the next one). sled 0.34 can deadlock when
//! two tasks flush at once, which is why exactly one thread ever calls `flush`.
//!
//! The flusher also owns this node's sequence counters and its hybrid logical clock: it assigns
//! `(seq, hlc)` to each appended entry in the order batches arrive, so sequences are contiguous
//! in every tree and survive crashes without reuse (see [`keys::HIGH_WATER`]).

mod config;
mod flusher;
pub mod keys;

pub use config::StoreConfig;

use crate::clock::SharedClock;
use crate::metrics::{KindLabels, Metrics};
use proto::{codec, Entry, Hlc, Kind, NodeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One write in a commit.
#[derive(Debug, Clone)]
pub enum Op {
    /// Append an entry of this node's own under the next sequence number of its kind.
    Append { kind: Kind, payload: Vec<u8> },
    /// Set a key in a named state tree (latest vessel positions, tracker state, ...).
    Put { tree: &'static str, key: Vec<u8>, value: Vec<u8> },
    /// Remove a key from a named state tree.
    Remove { tree: &'static str, key: Vec<u8> },
    /// Store an entry another node originated, under its own address. The caller (replication)
    /// has checked it is the next one from its origin.
    Insert(Entry),
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub kind: Kind,
    pub seq: u64,
    pub hlc: Hlc,
}

/// How full the disk budget is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BudgetState {
    Ok = 0,
    /// Past the warning threshold: nothing is refused yet, the metric tells operators.
    Warning = 1,
    /// Past the budget: raw detections are refused, alerts and events still go in, using the
    /// reserve kept above the budget for them.
    RefusingDetections = 2,
    /// Past the budget and its reserve: every write is refused.
    RefusingAll = 3,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(String),
    #[error("disk budget spent: store holds {size} bytes, budget {budget} bytes; {kind} entries are refused until retention frees space or the budget is raised")]
    BudgetExceeded { kind: &'static str, size: u64, budget: u64 },
    #[error("entry cannot be stored: {0}")]
    Codec(String),
    #[error("the store failed earlier and accepts no more writes: {0}")]
    Failed(String),
    #[error("the store is shut down")]
    Closed,
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: String, detail: String },
    #[error("cannot open store at {path}: {detail}")]
    Open { path: String, detail: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

pub(crate) enum Job {
    Commit { ops: Vec<Op>, reply: oneshot::Sender<Result<Vec<Appended>, StoreError>> },
    Sweep { kind: Kind, cutoff_ms: u64, max: usize, reply: oneshot::Sender<Result<SweepOutcome, StoreError>> },
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub deleted: usize,
    /// More expired entries remain; call again.
    pub more: bool,
}

struct Shared {
    db: sled::Db,
    /// Bumped after every flush that stored entries, so replication senders wake up.
    changes: tokio::sync::watch::Receiver<u64>,
    node: NodeId,
    entry_trees: HashMap<Kind, sled::Tree>,
    tx: mpsc::Sender<Job>,
    size_bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    config: StoreConfig,
    metrics: Metrics,
    flusher: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A handle on the store; clones share one database and one flusher.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

pub fn entry_tree_name(kind: Kind) -> String {
    format!("entries/{}", kind.as_str())
}

impl Store {
    /// Open (or create) the store in `dir`.
    pub fn open(
        dir: &Path,
        node: NodeId,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
    ) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_capacity_bytes())
            // Our flusher is the only one: sled's background flusher would be a second.
            .flush_every_ms(None)
            .open()
            .map_err(|e| StoreError::Open { path: dir.display().to_string(), detail: e.to_string() })?;
        Store::with_db(db, node, clock, config, metrics)
    }

    /// Build a store over a database opened by the caller (the simulator uses temporary ones).
    pub fn with_db(
        db: sled::Db,
        node: NodeId,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
    ) -> Result<Store, StoreError> {
        let mut entry_trees = HashMap::new();
        for kind in Kind::ALL {
            entry_trees.insert(kind, db.open_tree(entry_tree_name(kind))?);
        }
        let size_bytes = Arc::new(AtomicU64::new(db.size_on_disk().unwrap_or(0)));
        let failed = Arc::new(AtomicBool::new(false));
        metrics.store_budget_bytes.set(config.disk_budget_bytes());
        metrics.store_size_bytes.set(size_bytes.load(Ordering::Relaxed));
        metrics.store_budget_state.set(config.budget_state(size_bytes.load(Ordering::Relaxed)) as i64);
        let (tx, rx) = mpsc::channel(config.queue_jobs.max(1));
        let (changed, changes) = tokio::sync::watch::channel(0u64);
        let state = flusher::Flusher::recover(
            db.clone(),
            node.clone(),
            entry_trees.clone(),
            clock,
            config.clone(),
            metrics.clone(),
            size_bytes.clone(),
            failed.clone(),
            changed,
        )?;
        let handle = std::thread::Builder::new()
            .name(format!("store-flusher-{node}"))
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError::Sled(format!("cannot start the flusher thread: {e}")))?;
        let shared = Shared {
            db,
            changes,
            node,
            entry_trees,
            tx,
            size_bytes,
            failed,
            config,
            metrics,
            flusher: std::sync::Mutex::new(Some(handle)),
        };
        Ok(Store { shared: Arc::new(shared) })
    }

    pub fn node(&self) -> &NodeId {
        &self.shared.node
    }

    /// Make `ops` durable. Resolves once they are on disk, with the `(seq, hlc)` of each
    /// appended entry in order.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Vec<Appended>, StoreError> {
        self.submit(ops).await?.await
    }

    /// Queue `ops` now and return a future that resolves when they are durable. Commits are made
    /// durable in the order they were queued, so a caller that queues under a lock fixes that
    /// order without holding the lock through the flush (replication uses this to keep each
    /// origin's entries contiguous on disk whichever link delivered them).
    pub async fn submit(
        &self,
        ops: Vec<Op>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<Appended>, StoreError>> + use<>, StoreError> {
        self.admit(&ops)?;
        let (reply, rx) = oneshot::channel();
        self.shared.tx.send(Job::Commit { ops, reply }).await.map_err(|_| StoreError::Closed)?;
        let this = self.clone();
        Ok(async move { rx.await.map_err(|_| this.closed_or_failed())? })
    }

    /// Refuse writes the disk budget cannot take, before they queue.
    fn admit(&self, ops: &[Op]) -> Result<(), StoreError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(self.closed_or_failed());
        }
        let state = self.budget_state();
        let refused = ops.iter().find_map(|op| match (op, state) {
            (Op::Append { kind: Kind::Detection, .. }, BudgetState::RefusingDetections) => {
                Some(Kind::Detection.as_str())
            }
            (Op::Append { kind, .. }, BudgetState::RefusingAll) => Some(kind.as_str()),
            (Op::Put { tree, .. }, BudgetState::RefusingAll) => Some(*tree),
            (Op::Insert(e), BudgetState::RefusingAll) => Some(e.kind.as_str()),
            _ => None,
        });
        match refused {
            None => Ok(()),
            Some(kind) => {
                self.shared.metrics.store_refused.get_or_create(&KindLabels { kind }).inc();
                Err(StoreError::BudgetExceeded {
                    kind,
                    size: self.size_on_disk(),
                    budget: self.shared.config.disk_budget_bytes(),
                })
            }
        }
    }

    fn closed_or_failed(&self) -> StoreError {
        if self.shared.failed.load(Ordering::Relaxed) {
            StoreError::Failed("an earlier flush failed; see the log".into())
        } else {
            StoreError::Closed
        }
    }

    /// A receiver that changes after every flush that stored entries (appended or inserted).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.clone()
    }

    /// For each origin, the highest sequence of `kind` stored. Entries of one origin are stored
    /// in sequence order with nothing skipped (the flusher numbers our own; replication inserts
    /// only the next one of each origin, in order), so this is a version vector. One seek per
    /// origin, however many entries each has.
    pub fn heads(&self, kind: Kind) -> Result<proto::VersionVector, StoreError> {
        let tree = &self.shared.entry_trees[&kind];
        let mut vv = proto::VersionVector::new();
        let mut from: Vec<u8> = vec![1];
        while let Some((key, _)) = tree.range(from.clone()..).next().transpose()? {
            let len = key[0] as usize;
            let Some(origin) =
                key.get(1..1 + len).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| NodeId::new(s).ok())
            else {
                return Err(StoreError::Corrupt { tree: entry_tree_name(kind), detail: format!("bad key {key:?}") });
            };
            let prefix = keys::origin_prefix(&origin);
            if let Some((last, _)) = tree.scan_prefix(&prefix).next_back().transpose()? {
                if let Some(seq) = keys::seq_of(&last) {
                    vv.raise(&origin, seq);
                }
            }
            // The smallest key after every key with this prefix.
            from = prefix;
            from.push(0xff);
            from.extend_from_slice(&[0xff; 8]);
        }
        Ok(vv)
    }

    /// Last measured size on disk (refreshed by the flusher about once a second).
    pub fn size_on_disk(&self) -> u64 {
        self.shared.size_bytes.load(Ordering::Relaxed)
    }

    pub fn budget_state(&self) -> BudgetState {
        self.shared.config.budget_state(self.size_on_disk())
    }

    /// Remove up to `max` of this node's entries of `kind` recorded before `cutoff_ms`.
    pub async fn sweep(&self, kind: Kind, cutoff_ms: u64, max: usize) -> Result<SweepOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.shared.tx.send(Job::Sweep { kind, cutoff_ms, max, reply }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| self.closed_or_failed())?
    }

    /// One entry by address.
    pub fn entry(&self, kind: Kind, origin: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        let tree = &self.shared.entry_trees[&kind];
        tree.get(keys::entry_key(origin, seq))?.map(|v| decode_entry(kind, &v)).transpose()
    }

    /// `origin`'s entries of `kind` with sequence ≥ `from_seq`, in order.
    pub fn entries(
        &self,
        kind: Kind,
        origin: &NodeId,
        from_seq: u64,
    ) -> impl DoubleEndedIterator<Item = Result<Entry, StoreError>> + use<> {
        let tree = &self.shared.entry_trees[&kind];
        let end = keys::entry_key(origin, u64::MAX);
        tree.range(keys::entry_key(origin, from_seq)..=end)
            .map(move |kv| kv.map_err(StoreError::from).and_then(|(_, v)| decode_entry(kind, &v)))
    }

    /// Every stored entry of `kind`, all origins.
    pub fn all_entries(&self, kind: Kind) -> impl Iterator<Item = Result<Entry, StoreError>> + use<> {
        let tree = &self.shared.entry_trees[&kind];
        // Skip the metadata keys, which start with byte 0.
        tree.range(vec![1u8]..).map(move |kv| kv.map_err(StoreError::from).and_then(|(_, v)| decode_entry(kind, &v)))
    }

    /// The highest sequence this node has made durable in `kind` (0 for none).
    pub fn own_head(&self, kind: Kind) -> Result<u64, StoreError> {
        let tree = &self.shared.entry_trees[&kind];
        Ok(tree.get(keys::HIGH_WATER)?.and_then(|v| keys::decode_high_water(&v)).map(|(s, _)| s).unwrap_or(0))
    }

    /// A value from a named state tree.
    pub fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.shared.db.open_tree(tree)?.get(key)?)
    }

    /// The `(key, value)` pairs of a named state tree with keys below `before` (all keys
    /// without it), largest key first: for newest-first pages with a cursor.
    pub fn scan_back(
        &self,
        tree: &'static str,
        before: Option<&[u8]>,
    ) -> Result<impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + use<>, StoreError> {
        let tree = self.shared.db.open_tree(tree)?;
        let iter = match before {
            Some(b) => tree.range(..b.to_vec()),
            None => tree.iter(),
        };
        Ok(iter.rev().map(|kv| kv.map_err(StoreError::from)))
    }

    /// The `(key, value)` pairs of a named state tree under `prefix`, in key order.
    pub fn scan(
        &self,
        tree: &'static str,
        prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + use<>, StoreError> {
        Ok(self.shared.db.open_tree(tree)?.scan_prefix(prefix).map(|kv| kv.map_err(StoreError::from)))
    }

    /// Stop accepting writes, wait for everything queued to be durable, and stop the flusher.
    /// Other clones of this handle get [`StoreError::Closed`] afterwards.
    pub async fn close(self) {
        let shared = self.shared.clone();
        drop(self);
        // The flusher ends when every sender is gone; the handle keeps one, so wait on the
        // thread from a blocking task only once this was the last handle.
        if let Ok(inner) = Arc::try_unwrap(shared) {
            let Shared { tx, flusher, .. } = inner;
            drop(tx);
            if let Some(h) = flusher.lock().ok().and_then(|mut g| g.take()) {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        }
    }
}

fn decode_entry(kind: Kind, bytes: &[u8]) -> Result<Entry, StoreError> {
    codec::decode::<Entry>(bytes)
        .map_err(|e| StoreError::Corrupt { tree: entry_tree_name(kind), detail: e.to_string() })
}

#[cfg(test)]
mod tests;
