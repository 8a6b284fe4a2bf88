//! The node's durable store, behind an interface that knows nothing of the engine under it.
//!
//! One keyspace per node holding named trees: one per entry kind (`entries/<kind>`) plus state
//! trees (`state/...`). Writes go through a single flusher ([`flusher`]) that owns the write
//! side: callers hand it a batch of [`Op`]s and are answered once the batch is durable (group
//! commit: every batch that arrived while the previous flush ran shares the next one). Two
//! engines sit under it ([`engine`]): sled on disk, whose flusher is a thread (sled 0.34 can
//! deadlock when two tasks flush at once, which is why exactly one ever calls `flush`), and the
//! simulator's in-memory disk ([`sim`]), whose flusher is a task taking virtual time and which
//! can lose power.
//!
//! Two rules hold on both engines:
//! - What replication sends, and what a node tells its peers it holds, is what is durable:
//!   [`Store::heads`] are the durable heads, moved by the flusher after the flush, never what
//!   the engine shows after applying a batch.
//! - A commit is atomic across trees: it is applied as part of one engine batch, so after a
//!   crash an alert and its audit record, or a received entry and its summary upsert, are both
//!   there or neither is.
//!
//! The flusher also owns this node's sequence counters and its hybrid logical clock: it assigns
//! `(seq, hlc)` to each appended entry in the order batches arrive, so sequences are contiguous
//! in every tree and survive crashes without reuse (see [`keys::HIGH_WATER`]).

mod config;
pub mod engine;
mod flusher;
pub mod keys;
pub mod sim;
mod sled_engine;

pub use config::StoreConfig;
pub use engine::Tree;
pub use sim::{DiskFaults, DiskStats, PowerCut, SimDisk};
/// The sled tree a store's trees share on disk: for tools and tests that read a stopped
/// store's files directly.
pub use sled_engine::KEYSPACE as SLED_KEYSPACE;

/// An entry's contents as one digest: its stamp and its payload. A site stamps each of its
/// entries with a distinct hybrid time, so equal digests are one entry, and two copies of one
/// `(kind, origin, seq)` with different digests are two entries numbered alike. The
/// simulator's checks and `yiwang-node export` compare copies across nodes with it.
pub fn content_digest(entry: &Entry) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(entry.hlc.to_sortable_bytes());
    h.update(&entry.payload);
    h.finalize().into()
}

use crate::clock::SharedClock;
use crate::metrics::{KindLabels, Metrics};
use engine::{Engine, Kv};
use proto::{codec, Entry, EntryBytes, Hlc, Kind, NodeId, VersionVector};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Add `add` to the counter at `key` in a named state tree (a big-endian `u64`, absent: 0).
    /// The flusher, the one writer, reads and adds, so concurrent writers never lose a count
    /// and a refused commit adds nothing. Read counters with [`decode_count`].
    Count { tree: &'static str, key: Vec<u8>, add: u64 },
    /// Store an entry another node originated, under its own address, as the bytes it came in.
    /// The caller (replication) has checked it is the next one from its origin.
    Insert(EntryBytes),
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
    /// Past the budget: raw detections are refused, and so are entries of other nodes (a flood
    /// from below must not spend the reserve: their senders keep them until there is room);
    /// this node's own alerts, events and audit still go in, using the reserve kept above the
    /// budget for them.
    RefusingDetections = 2,
    /// Past the budget and its reserve: every write is refused.
    RefusingAll = 3,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Engine(String),
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

/// Mechanisms the simulator breaks on purpose, to prove that its crash model and its checkers
/// see what they are meant to see. All off in production (the sled store never takes them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Publish new entries to replication when applied, not when durable.
    pub replicate_before_durable: bool,
    /// Apply each tree of a commit as its own batch, so a power cut can tear a commit.
    pub commit_per_tree: bool,
    /// The mesh leaves out one in [`DROP_ACKED_EVERY`] of the entries it accepts from a peer,
    /// and acknowledges the batch all the same.
    pub drop_acked_entry: bool,
    /// Sanctions entries are taken stream by stream as they arrive, each stream's lists
    /// enforced as soon as it moves, so a lagging stream sets the version back.
    pub list_out_of_order: bool,
}

/// One in this many accepted entries is dropped under [`InjectedBugs::drop_acked_entry`].
pub const DROP_ACKED_EVERY: u64 = 40;

impl InjectedBugs {
    /// The bugs on, by the simulator's names for them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.replicate_before_durable {
            out.push("replicate-before-durable");
        }
        if self.commit_per_tree {
            out.push("commit-per-tree");
        }
        if self.drop_acked_entry {
            out.push("drop-acked-entry");
        }
        if self.list_out_of_order {
            out.push("list-out-of-order");
        }
        out
    }
}

/// How often the durable heads of each kind have moved: a sender woken by a change looks at
/// the kinds it sends only, and goes back to sleep when none of them moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes([u64; Kind::ALL.len()]);

impl Changes {
    pub fn version(&self, kind: Kind) -> u64 {
        self.0[kind as usize]
    }

    /// Whether any of `kinds` moved since `earlier`.
    pub fn moved_since(&self, earlier: &Changes, kinds: &[Kind]) -> bool {
        kinds.iter().any(|&k| self.version(k) != earlier.version(k))
    }

    fn bump(&mut self, kind: Kind) {
        self.0[kind as usize] += 1;
    }
}

/// What the flusher publishes to every handle.
pub(crate) struct Published {
    /// Per kind and origin, the highest sequence durable here: what replication may send and
    /// what this node may say it holds.
    durable: Mutex<BTreeMap<Kind, Arc<VersionVector>>>,
    /// Bumped whenever the durable heads move, so replication senders wake up.
    changed: tokio::sync::watch::Sender<Changes>,
    size_bytes: AtomicU64,
    failed: AtomicBool,
    /// Woken (all waiters) when `failed` is set.
    failure: tokio::sync::Notify,
    /// Mechanisms broken on purpose (the simulator's stores only).
    bugs: InjectedBugs,
}

/// Who drives the flusher, to wait for it at close.
enum Driver {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

struct Shared {
    engine: Arc<dyn Engine>,
    node: NodeId,
    tx: mpsc::Sender<Job>,
    published: Arc<Published>,
    config: StoreConfig,
    metrics: Metrics,
    driver: std::sync::Mutex<Option<Driver>>,
}

/// A handle on the store; clones share one database and one flusher.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// The tree holding entries of `kind`.
/// A counter written by [`Op::Count`] (`None`: not a counter).
pub fn decode_count(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

pub fn entry_tree(kind: Kind) -> Tree {
    Tree::Entries(kind)
}

/// The first key after every key starting with `prefix` (`None`: there is none).
fn past_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn published(bugs: InjectedBugs) -> Arc<Published> {
    Arc::new(Published {
        durable: Mutex::new(BTreeMap::new()),
        changed: tokio::sync::watch::channel(Changes::default()).0,
        size_bytes: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        failure: tokio::sync::Notify::new(),
        bugs,
    })
}

impl Store {
    /// Open (or create) the store in `dir`, on sled.
    pub fn open(
        dir: &Path,
        node: NodeId,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
    ) -> Result<Store, StoreError> {
        let engine = Arc::new(sled_engine::SledEngine::open(dir, config.cache_capacity_bytes())?);
        let (flusher, published, tx, rx) =
            Store::recover(engine.clone(), &node, clock, &config, &metrics, InjectedBugs::default())?;
        let handle = std::thread::Builder::new()
            .name(format!("store-flusher-{node}"))
            .spawn(move || flusher::run_on_thread(flusher, rx))
            .map_err(|e| StoreError::Engine(format!("cannot start the flusher thread: {e}")))?;
        Ok(Store::from_parts(engine, node, tx, published, config, metrics, Driver::Thread(handle)))
    }

    /// Open a store on the simulator's `disk`, with its flusher as a task on the current
    /// runtime (no thread). What the disk holds durably is what the store finds.
    pub fn simulated(
        disk: &SimDisk,
        node: NodeId,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
        bugs: InjectedBugs,
    ) -> Result<Store, StoreError> {
        let engine = Arc::new(sim::SimEngine { disk: disk.clone() });
        let (flusher, published, tx, rx) = Store::recover(engine.clone(), &node, clock, &config, &metrics, bugs)?;
        let task = tokio::spawn(flusher::run_on_runtime(flusher, rx, disk.clone()));
        if let Err(e) = disk.attach(task.abort_handle()) {
            task.abort();
            return Err(e);
        }
        Ok(Store::from_parts(engine, node, tx, published, config, metrics, Driver::Task(task)))
    }

    /// What both engines do at open: rebuild the flusher's state from what the engine holds,
    /// and the queue writers hand it their commits on.
    #[allow(clippy::type_complexity)]
    fn recover<E: Engine>(
        engine: Arc<E>,
        node: &NodeId,
        clock: SharedClock,
        config: &StoreConfig,
        metrics: &Metrics,
        bugs: InjectedBugs,
    ) -> Result<(flusher::Flusher<E>, Arc<Published>, mpsc::Sender<Job>, mpsc::Receiver<Job>), StoreError> {
        let published = published(bugs);
        let flusher = flusher::Flusher::recover(
            engine,
            node.clone(),
            clock,
            config.clone(),
            metrics.clone(),
            published.clone(),
            bugs,
        )?;
        let (tx, rx) = mpsc::channel(config.queue_jobs.max(1));
        Ok((flusher, published, tx, rx))
    }

    fn from_parts(
        engine: Arc<dyn Engine>,
        node: NodeId,
        tx: mpsc::Sender<Job>,
        published: Arc<Published>,
        config: StoreConfig,
        metrics: Metrics,
        driver: Driver,
    ) -> Store {
        let shared =
            Shared { engine, node, tx, published, config, metrics, driver: std::sync::Mutex::new(Some(driver)) };
        Store { shared: Arc::new(shared) }
    }

    pub fn node(&self) -> &NodeId {
        &self.shared.node
    }

    /// The mechanisms the simulator broke on purpose in this store's node (none elsewhere).
    pub fn bugs(&self) -> InjectedBugs {
        self.shared.published.bugs
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
        self.shared.tx.send(Job::Commit { ops, reply }).await.map_err(|_| self.closed_or_failed())?;
        let this = self.clone();
        Ok(async move { rx.await.map_err(|_| this.closed_or_failed())? })
    }

    /// Refuse writes the disk budget cannot take, before they queue.
    fn admit(&self, ops: &[Op]) -> Result<(), StoreError> {
        if self.shared.published.failed.load(Ordering::Relaxed) {
            return Err(self.closed_or_failed());
        }
        let state = self.budget_state();
        let refused = ops.iter().find_map(|op| match (op, state) {
            (Op::Append { kind: kind @ (Kind::Detection | Kind::PlateRead), .. }, BudgetState::RefusingDetections) => {
                Some(kind.as_str())
            }
            (Op::Append { kind, .. }, BudgetState::RefusingAll) => Some(kind.as_str()),
            (Op::Put { tree, .. } | Op::Count { tree, .. }, BudgetState::RefusingAll) => Some(*tree),
            (Op::Insert(e), BudgetState::RefusingDetections | BudgetState::RefusingAll) => Some(e.kind().as_str()),
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

    /// Whether a flush or write failed: the store refuses every write from then on, since what
    /// it holds in memory may no longer match the disk. The node stops on it and its supervisor
    /// starts it again on what is durable.
    pub fn has_failed(&self) -> bool {
        self.shared.published.failed.load(Ordering::Relaxed)
    }

    /// Resolves once the store has failed (see [`Store::has_failed`]).
    pub async fn failure(&self) {
        loop {
            let notified = self.shared.published.failure.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_failed() {
                return;
            }
            notified.await;
        }
    }

    fn closed_or_failed(&self) -> StoreError {
        if self.shared.published.failed.load(Ordering::Relaxed) {
            StoreError::Failed("an earlier flush failed; see the log".into())
        } else {
            StoreError::Closed
        }
    }

    /// A receiver that changes whenever the durable heads move (entries appended or inserted
    /// became durable), saying of which kinds.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<Changes> {
        self.shared.published.changed.subscribe()
    }

    /// For each origin, the highest sequence of `kind` durable here. Entries of one origin are
    /// stored in sequence order with nothing skipped (the flusher numbers our own; replication
    /// inserts only the next one of each origin, in order), so this is a version vector. It
    /// moves after the flush: entries the engine shows but has not made durable are not in it.
    /// A snapshot: cheap to take (the flusher copies on write), so a sender can take it for every
    /// batch.
    pub fn heads(&self, kind: Kind) -> Arc<VersionVector> {
        self.shared.published.durable.lock().unwrap_or_else(|p| p.into_inner()).get(&kind).cloned().unwrap_or_default()
    }

    /// Last measured size on disk (refreshed by the flusher about once a second).
    pub fn size_on_disk(&self) -> u64 {
        self.shared.published.size_bytes.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    pub fn budget_state(&self) -> BudgetState {
        self.shared.config.budget_state(self.size_on_disk())
    }

    /// Remove up to `max` of this node's entries of `kind` recorded before `cutoff_ms`.
    pub async fn sweep(&self, kind: Kind, cutoff_ms: u64, max: usize) -> Result<SweepOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.shared.tx.send(Job::Sweep { kind, cutoff_ms, max, reply }).await.map_err(|_| self.closed_or_failed())?;
        rx.await.map_err(|_| self.closed_or_failed())?
    }

    /// One entry by address.
    pub fn entry(&self, kind: Kind, origin: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.shared
            .engine
            .get(entry_tree(kind), &keys::entry_key(origin, seq))?
            .map(|v| decode_entry(kind, &v))
            .transpose()
    }

    /// `origin`'s entries of `kind` with sequence ≥ `from_seq`, in order.
    pub fn entries(
        &self,
        kind: Kind,
        origin: &NodeId,
        from_seq: u64,
    ) -> impl DoubleEndedIterator<Item = Result<Entry, StoreError>> + use<> {
        let from = Bound::Included(keys::entry_key(origin, from_seq));
        let to = Bound::Included(keys::entry_key(origin, u64::MAX));
        self.shared.engine.range(entry_tree(kind), from, to).map(move |kv| kv.and_then(|(_, v)| decode_entry(kind, &v)))
    }

    /// `origin`'s entries of `kind` with sequence ≥ `from_seq`, in order, as they are stored
    /// (each an [`Entry`]'s encoding): what replication sends.
    pub fn stored_entries(
        &self,
        kind: Kind,
        origin: &NodeId,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + use<> {
        let from = Bound::Included(keys::entry_key(origin, from_seq));
        let to = Bound::Included(keys::entry_key(origin, u64::MAX));
        self.shared.engine.range(entry_tree(kind), from, to).map(|kv| kv.map(|(_, value)| value))
    }

    /// Every stored entry of `kind`, all origins.
    pub fn all_entries(&self, kind: Kind) -> impl Iterator<Item = Result<Entry, StoreError>> + use<> {
        // Skip the metadata keys, which start with byte 0.
        self.shared
            .engine
            .range(entry_tree(kind), Bound::Included(vec![1u8]), Bound::Unbounded)
            .map(move |kv| kv.and_then(|(_, v)| decode_entry(kind, &v)))
    }

    /// The highest sequence this node has issued in `kind` (0 for none).
    pub fn own_head(&self, kind: Kind) -> Result<u64, StoreError> {
        let hw = self.shared.engine.get(entry_tree(kind), keys::HIGH_WATER)?;
        Ok(hw.and_then(|v| keys::decode_high_water(&v)).map(|(s, _)| s).unwrap_or(0))
    }

    /// A value from a named state tree.
    pub fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.shared.engine.get(Tree::State(tree), key)
    }

    /// The `(key, value)` pairs of a named state tree with keys below `before` (all keys
    /// without it), largest key first: for newest-first pages with a cursor.
    pub fn scan_back(
        &self,
        tree: &'static str,
        before: Option<&[u8]>,
    ) -> Result<impl Iterator<Item = Result<Kv, StoreError>> + use<>, StoreError> {
        let to = match before {
            Some(b) => Bound::Excluded(b.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(self.shared.engine.range(Tree::State(tree), Bound::Unbounded, to).rev())
    }

    /// The `(key, value)` pairs of a named state tree between two bounds, in key order (from
    /// either end: the iterator is double-ended).
    pub fn range(
        &self,
        tree: &'static str,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
    ) -> impl DoubleEndedIterator<Item = Result<Kv, StoreError>> + use<> {
        self.shared.engine.range(Tree::State(tree), from, to)
    }

    /// The `(key, value)` pairs of a named state tree under `prefix`, in key order.
    pub fn scan(
        &self,
        tree: &'static str,
        prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<Kv, StoreError>> + use<>, StoreError> {
        let to = past_prefix(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self.shared.engine.range(Tree::State(tree), Bound::Included(prefix.to_vec()), to))
    }

    /// Stop accepting writes, wait for everything queued to be durable, and stop the flusher.
    /// Other clones of this handle get [`StoreError::Closed`] afterwards.
    pub async fn close(self) {
        let shared = self.shared.clone();
        drop(self);
        // The flusher ends when every sender is gone; the handle keeps one, so wait for it only
        // once this was the last handle.
        if let Ok(inner) = Arc::try_unwrap(shared) {
            let Shared { tx, driver, .. } = inner;
            drop(tx);
            match driver.lock().ok().and_then(|mut g| g.take()) {
                Some(Driver::Thread(h)) => {
                    let _ = tokio::task::spawn_blocking(move || h.join()).await;
                }
                Some(Driver::Task(t)) => {
                    let _ = t.await;
                }
                None => {}
            }
        }
    }
}

fn decode_entry(kind: Kind, bytes: &[u8]) -> Result<Entry, StoreError> {
    codec::decode::<Entry>(bytes)
        .map_err(|e| StoreError::Corrupt { tree: entry_tree(kind).to_string(), detail: e.to_string() })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod power_cut_tests;
