//! The simulator's disk: the store's engine in memory, made durable in virtual time, and cut
//! off the way a power failure cuts a real one.
//!
//! A [`SimDisk`] outlives the stores opened on it, as a disk outlives a crashed process: a node
//! restarted by the simulator opens a new [`super::Store`] on the same disk and finds what was
//! durable. Writes are visible as soon as they are applied (as sled shows a batch once
//! `apply_batch` returns) and durable only when the flush that follows completes; a flush takes
//! a seeded, virtual amount of time, and runs as a task on the runtime, with no thread.
//!
//! [`SimDisk::power_cut`] stops the store's flusher where it stands and forgets every batch
//! not yet durable. A power cut during a flush may keep a seeded prefix of the batches being
//! flushed, never all of them (a log-structured engine like sled persists its log in order, and
//! the flush is complete only when its last write is), so a commit that the store wrote as
//! several batches can come back torn; one written as one batch comes back whole or not at all.
//!
//! Fault hooks ([`DiskFaults`]): flush latency (slow disks), failing flushes (I/O errors), and
//! a capacity past which writes fail as on a full disk.

use super::engine::{full_bounds, full_key, Engine, Kv, KvIter, Tree, WriteBatch};
use super::StoreError;
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// What the disk does wrong, and how slow it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFaults {
    /// Each flush takes a time drawn uniformly from this range (virtual time).
    pub flush_latency: (Duration, Duration),
    /// Every flush fails with an I/O error while set.
    pub fail_flushes: bool,
    /// Bytes the disk holds (keys and values); a batch that would pass it fails, as on a full
    /// disk. `None`: unlimited.
    pub capacity: Option<u64>,
}

impl Default for DiskFaults {
    fn default() -> Self {
        // About what an SSD's fsync takes on a site box.
        DiskFaults {
            flush_latency: (Duration::from_millis(1), Duration::from_millis(10)),
            fail_flushes: false,
            capacity: None,
        }
    }
}

/// Counters of what happened on a disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub flushes: u64,
    pub failed_flushes: u64,
    pub power_cuts: u64,
    /// Batches a power cut caught in a flush and kept anyway.
    pub batches_kept_by_cuts: u64,
    /// Batches a power cut lost.
    pub batches_lost_by_cuts: u64,
    /// Batches refused because the disk was full.
    pub full_disk_refusals: u64,
}

/// What a power cut did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerCut {
    /// A flush was under way.
    pub during_flush: bool,
    pub batches_kept: usize,
    pub batches_lost: usize,
}

/// Called for every write that becomes durable, in order: the key in the disk's keyspace, and
/// the value (`None` for a removal). The simulator hashes these into its trace.
pub type DurableObserver = Box<dyn FnMut(&[u8], Option<&[u8]>) + Send>;

/// One write of an applied batch: the key, the value before it and the value after it (`None`:
/// absent), so a power cut can undo it.
type Undoable = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// One applied batch not yet durable.
struct Applied {
    writes: Vec<Undoable>,
}

struct DiskState {
    /// What readers see: the durable state with every pending batch applied over it.
    visible: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Batches applied since the last flush completed, oldest first.
    pending: Vec<Applied>,
    /// The flush under way: when it began and when it completes.
    flushing: Option<(Instant, Instant)>,
    bytes: u64,
    faults: DiskFaults,
    rng: Rng,
    /// The flusher task of the store open on this disk, stopped by a power cut.
    flusher: Option<tokio::task::AbortHandle>,
    observer: Option<DurableObserver>,
    stats: DiskStats,
}

/// A disk in memory. Cheap to clone; every clone is the same disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    flush_began: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("SimDisk").field("keys", &st.visible.len()).field("pending", &st.pending.len()).finish()
    }
}

fn pair_bytes(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl SimDisk {
    /// An empty disk whose random choices (flush latencies, where a power cut tears) follow
    /// `seed`.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                visible: BTreeMap::new(),
                pending: Vec::new(),
                flushing: None,
                bytes: 0,
                faults: DiskFaults::default(),
                rng: Rng::new(seed),
                flusher: None,
                observer: None,
                stats: DiskStats::default(),
            })),
            flush_began: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn faults(&self) -> DiskFaults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, faults: DiskFaults) {
        assert!(faults.flush_latency.0 <= faults.flush_latency.1, "flush latency range is reversed");
        self.lock().faults = faults;
    }

    /// Change the faults in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut DiskFaults)) {
        let mut faults = self.faults();
        f(&mut faults);
        self.set_faults(faults);
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Bytes held (keys and values), durable or not.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Watch every write that becomes durable from now on.
    pub fn set_observer(&self, observer: DurableObserver) {
        self.lock().observer = Some(observer);
    }

    /// The flush under way, as (began, completes), if any.
    pub fn flush_window(&self) -> Option<(Instant, Instant)> {
        self.lock().flushing
    }

    /// Notified (all waiters) whenever a flush begins.
    pub fn flush_began(&self) -> Arc<tokio::sync::Notify> {
        self.flush_began.clone()
    }

    /// Cut the power: the open store's flusher stops where it stands (its writers get errors),
    /// and every batch not yet durable is lost, except a seeded prefix (never the whole) of
    /// those a flush under way was writing.
    pub fn power_cut(&self) -> PowerCut {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(f) = st.flusher.take() {
            f.abort();
        }
        let n = st.pending.len();
        let during_flush = st.flushing.take().is_some();
        // A flush under way may have written some of its batches, in order, but never all of
        // them: the last write completes only when the flush does.
        let kept = if during_flush { st.rng.below(n as u64) as usize } else { 0 };
        let lost = st.pending.split_off(kept);
        for applied in lost.iter().rev() {
            for (key, before, after) in applied.writes.iter().rev() {
                if let Some(a) = after {
                    st.bytes -= pair_bytes(key, a);
                }
                match before {
                    Some(b) => {
                        st.bytes += pair_bytes(key, b);
                        st.visible.insert(key.clone(), b.clone());
                    }
                    None => {
                        st.visible.remove(key);
                    }
                }
            }
        }
        let kept_batches = std::mem::take(&mut st.pending);
        if let Some(observe) = st.observer.as_mut() {
            for applied in &kept_batches {
                for (key, _, after) in &applied.writes {
                    observe(key, after.as_deref());
                }
            }
        }
        st.stats.power_cuts += 1;
        st.stats.batches_kept_by_cuts += kept as u64;
        st.stats.batches_lost_by_cuts += lost.len() as u64;
        PowerCut { during_flush, batches_kept: kept, batches_lost: lost.len() }
    }

    /// Register the flusher task of a store opening on this disk. A disk has one store at a
    /// time: opening a second while the first runs is refused.
    pub(super) fn attach(&self, flusher: tokio::task::AbortHandle) -> Result<(), StoreError> {
        let mut st = self.lock();
        if st.flusher.as_ref().is_some_and(|f| !f.is_finished()) {
            return Err(StoreError::Open {
                path: "simulated disk".into(),
                detail: "a store is already open on this disk".into(),
            });
        }
        st.flusher = Some(flusher);
        Ok(())
    }

    /// Start flushing what is pending; returns when the flush completes.
    pub(super) fn begin_flush(&self, now: Instant) -> Instant {
        let due = {
            let mut st = self.lock();
            let (lo, hi) = st.faults.flush_latency;
            let span = (hi - lo).as_nanos() as u64;
            let latency = lo + Duration::from_nanos(if span == 0 { 0 } else { st.rng.below(span + 1) });
            let due = now + latency;
            st.flushing = Some((now, due));
            due
        };
        self.flush_began.notify_waiters();
        due
    }

    /// Complete the flush begun by [`SimDisk::begin_flush`]: everything applied before it is
    /// durable now, unless the disk fails flushes.
    pub(super) fn end_flush(&self) -> Result<(), StoreError> {
        let mut st = self.lock();
        let st = &mut *st;
        st.flushing = None;
        if st.faults.fail_flushes {
            st.stats.failed_flushes += 1;
            return Err(StoreError::Engine("I/O error: the flush failed (simulated disk fault)".into()));
        }
        st.stats.flushes += 1;
        let durable = std::mem::take(&mut st.pending);
        if let Some(observe) = st.observer.as_mut() {
            for applied in &durable {
                for (key, _, after) in &applied.writes {
                    observe(key, after.as_deref());
                }
            }
        }
        Ok(())
    }
}

/// The store's engine over a [`SimDisk`].
pub struct SimEngine {
    pub(super) disk: SimDisk,
}

impl Engine for SimEngine {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.disk.lock().visible.get(&full_key(tree, key)).cloned())
    }

    fn range(&self, tree: Tree, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> KvIter {
        let skip = super::engine::tree_prefix(tree).len();
        let (front, back) = full_bounds(tree, from, to);
        Box::new(Cursor { disk: self.disk.clone(), front, back, skip })
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut st = self.disk.lock();
        let st = &mut *st;
        if let Some(capacity) = st.faults.capacity {
            let adds: u64 = batch.writes.iter().map(|w| w.value.as_ref().map_or(0, |v| pair_bytes(&w.key, v))).sum();
            if st.bytes + adds > capacity {
                st.stats.full_disk_refusals += 1;
                return Err(StoreError::Engine(format!(
                    "no space left on device (simulated disk of {capacity} bytes holds {})",
                    st.bytes
                )));
            }
        }
        let mut applied = Applied { writes: Vec::with_capacity(batch.writes.len()) };
        for w in batch.writes {
            let key = w.key;
            let before = match &w.value {
                Some(v) => {
                    st.bytes += pair_bytes(&key, v);
                    st.visible.insert(key.clone(), v.clone())
                }
                None => st.visible.remove(&key),
            };
            if let Some(b) = &before {
                st.bytes -= pair_bytes(&key, b);
            }
            applied.writes.push((key, before, w.value));
        }
        st.pending.push(applied);
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.disk.bytes())
    }
}

/// A range read that takes the disk's lock for each step only, so it never holds it across
/// the caller's work: each step finds the next key past the last one returned.
struct Cursor {
    disk: SimDisk,
    front: Bound<Vec<u8>>,
    back: Bound<Vec<u8>>,
    skip: usize,
}

impl Cursor {
    fn step(&mut self, from_back: bool) -> Option<Result<Kv, StoreError>> {
        let st = self.disk.lock();
        let mut range = st.visible.range::<Vec<u8>, _>((self.front.as_ref(), self.back.as_ref()));
        let (k, v) = if from_back { range.next_back()? } else { range.next()? };
        let item = (k[self.skip..].to_vec(), v.clone());
        let bound = Bound::Excluded(k.clone());
        drop(st);
        if from_back {
            self.back = bound;
        } else {
            self.front = bound;
        }
        Some(Ok(item))
    }
}

impl Iterator for Cursor {
    type Item = Result<Kv, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Cursor {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
