//! The flusher thread: the only writer of the database, the only caller of `flush`, and the
//! owner of this node's sequence counters and hybrid logical clock.

use super::keys;
use super::{Appended, Job, Op, StoreConfig, StoreError, SweepOutcome};
use crate::clock::SharedClock;
use crate::metrics::{KindLabels, Metrics};
use proto::{codec, EntryRef, Hlc, HlcClock, Kind, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How far ahead of our physical clock a remote timestamp may be before it is refused.
const MAX_CLOCK_LEAD_MS: u64 = 60_000;
/// Most writes to one tree in one `apply_batch`.
const APPLY_CHUNK: usize = 1024;
/// How often the size on disk is measured for the budget.
const SIZE_POLL: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;

/// Which tree a batch goes to: an entry tree by kind, or a named state tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Entries(Kind),
    State(&'static str),
}

pub(super) struct Flusher {
    db: sled::Db,
    node: NodeId,
    /// `keys::origin_prefix(node)`, built once: every appended key starts with it.
    prefix: Vec<u8>,
    entry_trees: HashMap<Kind, sled::Tree>,
    state_trees: HashMap<&'static str, sled::Tree>,
    clock: SharedClock,
    hlc: HlcClock,
    heads: HashMap<Kind, u64>,
    config: StoreConfig,
    metrics: Metrics,
    size_bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    last_size_poll: Instant,
    changed: tokio::sync::watch::Sender<u64>,
}

/// One write, encoded: a value to set, or `None` to remove the key.
struct Write {
    target: Target,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// One commit's writes, encoded and numbered, not yet applied.
struct Staged {
    writes: Vec<Write>,
    appended: Vec<Appended>,
    /// Entries of other origins stored.
    inserted: usize,
}

impl Flusher {
    /// Rebuild counters and clock from what is on disk.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recover(
        db: sled::Db,
        node: NodeId,
        entry_trees: HashMap<Kind, sled::Tree>,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
        size_bytes: Arc<AtomicU64>,
        failed: Arc<AtomicBool>,
        changed: tokio::sync::watch::Sender<u64>,
    ) -> Result<Flusher, StoreError> {
        let mut hlc = HlcClock::new(MAX_CLOCK_LEAD_MS);
        let mut heads = HashMap::new();
        let prefix = keys::origin_prefix(&node);
        for (&kind, tree) in &entry_trees {
            let (hw_seq, hw_hlc) =
                tree.get(keys::HIGH_WATER)?.and_then(|v| keys::decode_high_water(&v)).unwrap_or((0, Hlc::ZERO));
            // The last key is a second witness in case the high-water mark is older than the
            // entries (it is written in the same batch, so this is belt and braces).
            let last_key_seq =
                tree.scan_prefix(&prefix).next_back().transpose()?.and_then(|(k, _)| keys::seq_of(&k)).unwrap_or(0);
            heads.insert(kind, hw_seq.max(last_key_seq));
            hlc.resume_after(hw_hlc);
        }
        Ok(Flusher {
            db,
            prefix,
            node,
            entry_trees,
            state_trees: HashMap::new(),
            clock,
            hlc,
            heads,
            config,
            metrics,
            size_bytes,
            failed,
            last_size_poll: Instant::now(),
            changed,
        })
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.blocking_recv() {
            let mut commits = Vec::new();
            let mut ops = 0;
            let mut next = Some(job);
            // Gather every commit already waiting, up to the cap, into one flush.
            while let Some(job) = next.take() {
                match job {
                    Job::Commit { ops: o, reply } => {
                        ops += o.len();
                        commits.push((o, reply));
                    }
                    Job::Sweep { kind, cutoff_ms, max, reply } => {
                        self.group_commit(std::mem::take(&mut commits));
                        let _ = reply.send(self.sweep(kind, cutoff_ms, max));
                    }
                }
                if ops < self.config.max_ops_per_flush {
                    next = rx.try_recv().ok();
                }
            }
            self.group_commit(commits);
        }
        // Every handle is gone: whatever was applied is already flushed.
    }

    fn group_commit(&mut self, commits: Vec<(Vec<Op>, Reply)>) {
        if commits.is_empty() {
            return;
        }
        if self.failed.load(Ordering::Relaxed) {
            for (_, reply) in commits {
                let _ = reply.send(Err(StoreError::Failed("an earlier flush failed".into())));
            }
            return;
        }
        let started = Instant::now();
        let mut batches: BTreeMap<Target, (sled::Batch, usize)> = BTreeMap::new();
        let mut applied: Result<(), StoreError> = Ok(());
        // Per kind: the last (seq, hlc) appended, and how many were.
        let mut high_water: HashMap<Kind, (u64, Hlc, u64)> = HashMap::new();
        let mut waiting = Vec::with_capacity(commits.len());
        let mut op_count = 0usize;
        let mut stored_entries = 0usize;
        for (ops, reply) in commits {
            match self.stage(ops) {
                Ok(staged) => {
                    op_count += staged.writes.len();
                    stored_entries += staged.appended.len() + staged.inserted;
                    for w in staged.writes {
                        let (b, n) = batches.entry(w.target).or_default();
                        match w.value {
                            Some(v) => b.insert(w.key, v),
                            None => b.remove(w.key),
                        }
                        *n += 1;
                        // sled 0.34 holds on to memory after very large batches (a county
                        // draining a backlog grew by a kilobyte per entry with 16k-entry
                        // batches): apply in chunks; the flush below still covers them all.
                        if *n >= APPLY_CHUNK && applied.is_ok() {
                            let (full, _) = batches.remove(&w.target).expect("present");
                            applied = self.apply_one(w.target, full);
                        }
                    }
                    for a in &staged.appended {
                        high_water.entry(a.kind).or_insert((0, Hlc::ZERO, 0)).2 += 1;
                        let hw = high_water.get_mut(&a.kind).expect("just inserted");
                        (hw.0, hw.1) = (a.seq, a.hlc);
                    }
                    waiting.push((reply, staged.appended));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        for (&kind, &(seq, hlc, _)) in &high_water {
            batches
                .entry(Target::Entries(kind))
                .or_default()
                .0
                .insert(keys::HIGH_WATER, keys::encode_high_water(seq, hlc).to_vec());
        }
        let result = applied
            .and_then(|_| batches.into_iter().try_for_each(|(target, (b, _))| self.apply_one(target, b)))
            .and_then(|_| self.db.flush().map(|_| ()).map_err(StoreError::from));
        self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.flush_batch_ops.observe(op_count as f64);
        match result {
            Ok(_) => {
                for (kind, (_, _, count)) in high_water {
                    self.metrics.entries_written.get_or_create(&KindLabels { kind: kind.as_str() }).inc_by(count);
                }
                // Wake replication before the writers, so nothing a writer does next can race
                // ahead of the news that these entries exist.
                if stored_entries > 0 {
                    self.changed.send_modify(|n| *n += 1);
                }
                for (reply, appended) in waiting {
                    let _ = reply.send(Ok(appended));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store flush failed; refusing further writes");
                self.failed.store(true, Ordering::Relaxed);
                for (reply, _) in waiting {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        self.poll_size();
    }

    /// Number and encode one commit's appends. Counters move only if the whole commit stages,
    /// so a refused commit leaves no gap in the sequences.
    fn stage(&mut self, ops: Vec<Op>) -> Result<Staged, StoreError> {
        let mut staged =
            Staged { writes: Vec::with_capacity(ops.len()), appended: Vec::with_capacity(ops.len()), inserted: 0 };
        let mut heads = HashMap::new();
        let mut hlc = self.hlc.clone();
        for op in ops {
            match op {
                Op::Append { kind, payload } => {
                    let head = heads.entry(kind).or_insert_with(|| self.heads[&kind]);
                    *head += 1;
                    let stamp = hlc.now(self.clock.now_ms()).map_err(|e| StoreError::Codec(e.to_string()))?;
                    let entry = EntryRef { origin: &self.node, seq: *head, hlc: stamp, kind, payload: &payload };
                    let bytes = codec::encode(&entry).map_err(|e| StoreError::Codec(e.to_string()))?;
                    let mut key = Vec::with_capacity(self.prefix.len() + 8);
                    key.extend_from_slice(&self.prefix);
                    key.extend_from_slice(&head.to_be_bytes());
                    staged.writes.push(Write { target: Target::Entries(kind), key, value: Some(bytes) });
                    staged.appended.push(Appended { kind, seq: *head, hlc: stamp });
                }
                Op::Put { tree, key, value } => {
                    staged.writes.push(Write { target: Target::State(tree), key, value: Some(value) })
                }
                Op::Remove { tree, key } => staged.writes.push(Write { target: Target::State(tree), key, value: None }),
                Op::Insert(entry) => {
                    let bytes = codec::encode(&entry).map_err(|e| StoreError::Codec(e.to_string()))?;
                    let key = keys::entry_key(&entry.origin, entry.seq);
                    staged.writes.push(Write { target: Target::Entries(entry.kind), key, value: Some(bytes) });
                    staged.inserted += 1;
                }
            }
        }
        self.heads.extend(heads);
        self.hlc = hlc;
        Ok(staged)
    }

    fn apply_one(&mut self, target: Target, batch: sled::Batch) -> Result<(), StoreError> {
        match target {
            Target::Entries(kind) => self.entry_trees[&kind].apply_batch(batch)?,
            Target::State(tree) => self.state_tree(tree)?.apply_batch(batch)?,
        }
        Ok(())
    }

    fn state_tree(&mut self, name: &'static str) -> Result<&sled::Tree, StoreError> {
        if !self.state_trees.contains_key(name) {
            let tree = self.db.open_tree(name)?;
            self.state_trees.insert(name, tree);
        }
        Ok(&self.state_trees[name])
    }

    /// Delete this node's entries of `kind` stamped before `cutoff_ms`, oldest first. Sequence
    /// order is time order for one origin, so the scan stops at the first entry to keep.
    fn sweep(&mut self, kind: Kind, cutoff_ms: u64, max: usize) -> Result<SweepOutcome, StoreError> {
        let tree = &self.entry_trees[&kind];
        let mut batch = sled::Batch::default();
        let mut out = SweepOutcome::default();
        for kv in tree.scan_prefix(keys::origin_prefix(&self.node)) {
            let (key, value) = kv?;
            let stamp = match codec::decode_prefix::<(NodeId, u64, Hlc)>(&value) {
                Ok(((_, _, hlc), _)) => hlc,
                Err(e) => {
                    tracing::warn!(tree = %kind, error = %e, "unreadable entry left in place by retention");
                    continue;
                }
            };
            if stamp.wall_ms >= cutoff_ms {
                break;
            }
            if out.deleted == max {
                out.more = true;
                break;
            }
            batch.remove(key);
            out.deleted += 1;
        }
        if out.deleted > 0 {
            tree.apply_batch(batch)?;
            self.db.flush()?;
            self.metrics.retention_deleted.inc_by(out.deleted as u64);
        }
        // Retention is what brings a full store back under budget: measure right away.
        self.last_size_poll = Instant::now() - SIZE_POLL;
        self.poll_size();
        Ok(out)
    }

    fn poll_size(&mut self) {
        if self.last_size_poll.elapsed() < SIZE_POLL {
            return;
        }
        self.last_size_poll = Instant::now();
        if let Ok(size) = self.db.size_on_disk() {
            self.size_bytes.store(size, Ordering::Relaxed);
            self.metrics.store_size_bytes.set(size);
            let state = self.config.budget_state(size);
            self.metrics.store_budget_state.set(state as i64);
        }
    }
}
