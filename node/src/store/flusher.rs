//! The flusher: the only writer of the engine, the only one that makes writes durable, and the
//! owner of this node's sequence counters and hybrid logical clock.
//!
//! [`Flusher`] is the same for both engines: it numbers and encodes a group of commits, applies
//! them (one atomic batch per group of whole commits, so a crash keeps a commit whole or not at
//! all), and once its driver reports the flush done, publishes the new durable heads and
//! answers the writers. Two drivers move it: [`run_on_thread`] for sled (a thread blocking in
//! `flush`) and [`run_on_runtime`] for the simulated disk (a task whose flush takes virtual
//! time). Publishing only after the flush is what keeps replication to durable entries: a
//! sender reads the published heads, never what the engine merely shows.

use super::engine::{Engine, Tree, Write, WriteBatch};
use super::keys;
use super::sim::SimDisk;
use super::sled_engine::SledEngine;
use super::{entry_tree, Appended, InjectedBugs, Job, Op, Published, StoreConfig, StoreError, SweepOutcome};
use crate::audit_chain::{self, Link};
use crate::clock::SharedClock;
use crate::metrics::{KindLabels, Metrics};
use proto::{codec, EntryRef, Hlc, HlcClock, Kind, NodeId, VersionVector};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How far ahead of our physical clock a timestamp may be: a remote one the HLC observes, or
/// our own found on disk.
const MAX_CLOCK_LEAD_MS: u64 = crate::clock::MAX_CLOCK_JUMP_MS;
/// Most writes in one engine batch: sled 0.34 holds on to memory after very large batches (a
/// county draining a backlog grew by a kilobyte per entry with 16k-entry batches). A batch
/// always holds whole commits, so one commit larger than this is one batch of its own.
const APPLY_CHUNK: usize = 1024;
/// How often the size on disk is measured for the budget.
const SIZE_POLL: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;
type SweepReply = oneshot::Sender<Result<SweepOutcome, StoreError>>;

/// One commit's writes, encoded and numbered, not yet applied.
struct Staged {
    writes: Vec<Write>,
    appended: Vec<Appended>,
    /// `(kind, origin, seq)` of each entry of another origin stored.
    inserted: Vec<(Kind, NodeId, u64)>,
}

/// A group of jobs applied and waiting for the flush that makes them durable.
pub(super) struct InFlight {
    commits: Vec<(Reply, Vec<Appended>)>,
    sweeps: Vec<(SweepReply, SweepOutcome)>,
    /// What becomes durable with this flush, per kind and origin.
    heads: BTreeMap<Kind, VersionVector>,
    /// Entries of our own appended, per kind (for the metric).
    appended: BTreeMap<Kind, u64>,
    ops: usize,
    /// Whether anything reached the engine (else there is nothing to flush).
    wrote: bool,
    applied: Result<(), StoreError>,
    /// Heads were published at apply time (the injected bug), not to be published again.
    published_early: bool,
}

impl InFlight {
    /// Whether the driver must flush before [`Flusher::complete`].
    pub(super) fn needs_flush(&self) -> bool {
        self.wrote && self.applied.is_ok()
    }
}

pub(super) struct Flusher<E: Engine> {
    engine: Arc<E>,
    node: NodeId,
    /// `keys::origin_prefix(node)`, built once.
    prefix: Vec<u8>,
    /// Per kind, where this node's entries start in the keyspace: the tree's prefix and ours.
    own_keys: BTreeMap<Kind, Vec<u8>>,
    clock: SharedClock,
    hlc: HlcClock,
    /// The last sequence issued per kind.
    seqs: BTreeMap<Kind, u64>,
    /// The link this node's next audit record carries: the hash of its last one.
    audit_link: Link,
    config: StoreConfig,
    metrics: Metrics,
    published: Arc<Published>,
    bugs: InjectedBugs,
    last_size_poll: Option<Instant>,
    /// Counters ([`Op::Count`]) staged but not yet applied, so a later commit of the same
    /// group adds to them rather than to what the engine still shows.
    counts: BTreeMap<(&'static str, Vec<u8>), u64>,
}

/// The smallest key after every key of `origin` (its prefix, then 8 bytes of sequence).
fn past_origin(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&[0xff; 9]);
    k
}

/// The link this node's next audit record carries, as the engine holds it. A store from
/// before the chain has no chain head: the chain starts from its last record (or from the
/// start, if it has none).
fn chain_head(engine: &dyn Engine, prefix: &[u8]) -> Result<Link, StoreError> {
    let tree = entry_tree(Kind::Audit);
    if let Some(v) = engine.get(tree, keys::CHAIN_HEAD)? {
        return Link::try_from(&v[..]).map_err(|_| StoreError::Corrupt {
            tree: tree.to_string(),
            detail: format!("chain head of {} bytes", v.len()),
        });
    }
    let last = engine.range(tree, Bound::Included(prefix.to_vec()), Bound::Excluded(past_origin(prefix))).next_back();
    Ok(last.transpose()?.map_or(audit_chain::GENESIS, |(_, stored)| audit_chain::link_to(&stored)))
}

/// For each origin, the highest sequence of `kind` in the engine: one seek per origin.
pub(super) fn scan_heads(engine: &dyn Engine, kind: Kind) -> Result<VersionVector, StoreError> {
    let tree = entry_tree(kind);
    let mut vv = VersionVector::new();
    // Metadata keys start with byte 0; entry keys with their origin's length.
    let mut from = vec![1u8];
    while let Some(kv) = engine.range(tree, Bound::Included(from.clone()), Bound::Unbounded).next() {
        let (key, _) = kv?;
        let origin = keys::origin_of(&key)
            .ok_or_else(|| StoreError::Corrupt { tree: tree.to_string(), detail: format!("bad key {key:?}") })?;
        let prefix = keys::origin_prefix(&origin);
        let end = past_origin(&prefix);
        if let Some(kv) = engine.range(tree, Bound::Included(prefix), Bound::Excluded(end.clone())).next_back() {
            if let Some(seq) = keys::seq_of(&kv?.0) {
                vv.raise(&origin, seq);
            }
        }
        from = end;
    }
    Ok(vv)
}

impl<E: Engine> Flusher<E> {
    /// Rebuild counters, clock and durable heads from what the engine holds (all of it durable
    /// at open).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recover(
        engine: Arc<E>,
        node: NodeId,
        clock: SharedClock,
        config: StoreConfig,
        metrics: Metrics,
        published: Arc<Published>,
        bugs: InjectedBugs,
    ) -> Result<Flusher<E>, StoreError> {
        let mut hlc = HlcClock::new(MAX_CLOCK_LEAD_MS);
        let mut seqs = BTreeMap::new();
        let prefix = keys::origin_prefix(&node);
        let mut durable = BTreeMap::new();
        for kind in Kind::ALL {
            let tree = entry_tree(kind);
            let (hw_seq, hw_hlc) =
                engine.get(tree, keys::HIGH_WATER)?.and_then(|v| keys::decode_high_water(&v)).unwrap_or((0, Hlc::ZERO));
            // The last key is a second witness in case the high-water mark is older than the
            // entries (it is written in the same batch, so this is belt and braces).
            let last_key_seq = engine
                .range(tree, Bound::Included(prefix.clone()), Bound::Excluded(past_origin(&prefix)))
                .next_back()
                .transpose()?
                .and_then(|(k, _)| keys::seq_of(&k))
                .unwrap_or(0);
            seqs.insert(kind, hw_seq.max(last_key_seq));
            // Stamps from a clock that was once far ahead are not resumed from: the HLC would
            // stamp every later entry at that future time until the real time caught up.
            if hw_hlc.wall_ms > clock.now_ms().saturating_add(MAX_CLOCK_LEAD_MS) {
                metrics.clock_future_stamps.inc();
                tracing::error!(
                    %kind, stamp = %hw_hlc, now_ms = clock.now_ms(),
                    "the last stamp on disk is ahead of the clock; stamping from the clock, not after it"
                );
            } else {
                hlc.resume_after(hw_hlc);
            }
            durable.insert(kind, Arc::new(scan_heads(&*engine, kind)?));
        }
        let audit_link = chain_head(&*engine, &prefix)?;
        *published.durable.lock().unwrap_or_else(|p| p.into_inner()) = durable;
        let size = engine.size_on_disk().unwrap_or(0);
        published.size_bytes.store(size, Ordering::Relaxed);
        metrics.store_budget_bytes.set(config.disk_budget_bytes());
        metrics.store_size_bytes.set(size);
        metrics.store_budget_state.set(config.budget_state(size) as i64);
        let own_keys = Kind::ALL.into_iter().map(|k| (k, super::engine::full_key(entry_tree(k), &prefix))).collect();
        Ok(Flusher {
            engine,
            node,
            prefix,
            own_keys,
            clock,
            hlc,
            seqs,
            audit_link,
            config,
            metrics,
            published,
            bugs,
            last_size_poll: None,
            counts: BTreeMap::new(),
        })
    }

    /// Apply a group of jobs, in order, without flushing.
    pub(super) fn apply(&mut self, jobs: Vec<Job>) -> InFlight {
        let mut f = InFlight {
            commits: Vec::new(),
            sweeps: Vec::new(),
            heads: BTreeMap::new(),
            appended: BTreeMap::new(),
            ops: 0,
            wrote: false,
            applied: Ok(()),
            published_early: false,
        };
        if self.published.failed.load(Ordering::Relaxed) {
            for job in jobs {
                match job {
                    Job::Commit { reply, .. } => {
                        let _ = reply.send(Err(StoreError::Failed("an earlier flush failed".into())));
                    }
                    Job::Sweep { reply, .. } => {
                        let _ = reply.send(Err(StoreError::Failed("an earlier flush failed".into())));
                    }
                }
            }
            return f;
        }
        let mut batch = WriteBatch::default();
        // The last (seq, hlc) appended per kind in the batch being built.
        let mut high_water: BTreeMap<Kind, (u64, Hlc)> = BTreeMap::new();
        for job in jobs {
            match job {
                Job::Commit { ops, reply } => match self.stage(ops) {
                    Ok(staged) => {
                        f.ops += staged.writes.len();
                        batch.writes.extend(staged.writes);
                        for a in &staged.appended {
                            high_water.insert(a.kind, (a.seq, a.hlc));
                            *f.appended.entry(a.kind).or_default() += 1;
                            f.heads.entry(a.kind).or_default().raise(&self.node, a.seq);
                        }
                        for (kind, origin, seq) in &staged.inserted {
                            f.heads.entry(*kind).or_default().raise(origin, *seq);
                        }
                        f.commits.push((reply, staged.appended));
                        if batch.len() >= APPLY_CHUNK {
                            self.apply_batch(&mut batch, &mut high_water, &mut f);
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Job::Sweep { kind, cutoff_ms, max, reply } => {
                    // Everything queued before the sweep is applied first: it reads the engine.
                    self.apply_batch(&mut batch, &mut high_water, &mut f);
                    let outcome = self.sweep(kind, cutoff_ms, max, &mut f);
                    match outcome {
                        Ok(o) => f.sweeps.push((reply, o)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        self.apply_batch(&mut batch, &mut high_water, &mut f);
        if self.bugs.replicate_before_durable && f.applied.is_ok() {
            // The bug the simulator proves it can see: senders learn of entries a power cut can
            // still take away.
            self.publish(&f.heads);
            f.published_early = true;
        }
        f
    }

    /// Apply the batch built so far, with the high-water marks of what it appends.
    fn apply_batch(&mut self, batch: &mut WriteBatch, high_water: &mut BTreeMap<Kind, (u64, Hlc)>, f: &mut InFlight) {
        if batch.is_empty() {
            return;
        }
        for (kind, (seq, hlc)) in std::mem::take(high_water) {
            batch.writes.push(Write::put(
                entry_tree(kind),
                keys::HIGH_WATER,
                keys::encode_high_water(seq, hlc).to_vec(),
            ));
        }
        let batch = std::mem::take(batch);
        // Applied (or the store has failed): the engine holds the counters now.
        self.counts.clear();
        if f.applied.is_err() {
            return;
        }
        f.wrote = true;
        f.applied = if self.bugs.commit_per_tree {
            // The bug the torn-commit crash proves it can see: one batch per tree, so a power
            // cut can keep an alert and lose its audit record.
            let mut per_tree: BTreeMap<Tree, WriteBatch> = BTreeMap::new();
            for w in batch.writes {
                per_tree.entry(w.tree).or_default().writes.push(w);
            }
            per_tree.into_values().try_for_each(|b| self.engine.apply(b))
        } else {
            self.engine.apply(batch)
        };
    }

    /// The flush of `f` ended with `flushed` after `took`: publish and answer.
    pub(super) fn complete(&mut self, f: InFlight, flushed: Result<(), StoreError>, took: Duration, now: Instant) {
        let result = f.applied.and(flushed);
        if f.wrote {
            self.metrics.flush_seconds.observe(took.as_secs_f64());
            self.metrics.flush_batch_ops.observe(f.ops as f64);
        }
        let swept = !f.sweeps.is_empty();
        match result {
            Ok(()) => {
                for (kind, count) in &f.appended {
                    self.metrics.entries_written.get_or_create(&KindLabels { kind: kind.as_str() }).inc_by(*count);
                }
                // Wake replication before the writers, so nothing a writer does next can race
                // ahead of the news that these entries exist.
                if !f.published_early {
                    self.publish(&f.heads);
                }
                for (reply, appended) in f.commits {
                    let _ = reply.send(Ok(appended));
                }
                for (reply, outcome) in f.sweeps {
                    self.metrics.retention_deleted.inc_by(outcome.deleted as u64);
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store flush failed; refusing further writes");
                self.published.failed.store(true, Ordering::Relaxed);
                self.published.failure.notify_waiters();
                for (reply, _) in f.commits {
                    let _ = reply.send(Err(e.clone()));
                }
                for (reply, _) in f.sweeps {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        // Retention is what brings a full store back under budget: measure right after it.
        self.poll_size(now, swept);
    }

    /// Make `heads` the durable heads replication reads, and wake the senders.
    fn publish(&self, heads: &BTreeMap<Kind, VersionVector>) {
        if heads.is_empty() {
            return;
        }
        let mut durable = self.published.durable.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, vv) in heads {
            Arc::make_mut(durable.entry(*kind).or_default()).merge(vv);
        }
        drop(durable);
        self.published.changed.send_modify(|c| heads.keys().for_each(|&k| c.bump(k)));
    }

    /// Number and encode one commit's appends. Counters move only if the whole commit stages,
    /// so a refused commit leaves no gap in the sequences.
    fn stage(&mut self, ops: Vec<Op>) -> Result<Staged, StoreError> {
        let mut staged =
            Staged { writes: Vec::with_capacity(ops.len()), appended: Vec::with_capacity(ops.len()), inserted: vec![] };
        let mut seqs = BTreeMap::new();
        let mut hlc = self.hlc.clone();
        let mut audit_link = None;
        let mut counted = BTreeMap::new();
        for op in ops {
            match op {
                Op::Append { kind, mut payload } => {
                    // An audit record carries the hash of this node's record before it.
                    let link = (kind == Kind::Audit).then(|| audit_link.unwrap_or(self.audit_link));
                    if let Some(link) = &link {
                        payload.extend_from_slice(link);
                    }
                    let seq = seqs.entry(kind).or_insert_with(|| self.seqs[&kind]);
                    *seq += 1;
                    let stamp = hlc.now(self.clock.now_ms()).map_err(|e| StoreError::Codec(e.to_string()))?;
                    let entry = EntryRef { origin: &self.node, seq: *seq, hlc: stamp, kind, payload: &payload };
                    let bytes = codec::encode(&entry).map_err(|e| StoreError::Codec(e.to_string()))?;
                    if link.is_some() {
                        audit_link = Some(audit_chain::link_to(&bytes));
                    }
                    // The whole key in one allocation: the tree's prefix and ours, built once.
                    let prefix = &self.own_keys[&kind];
                    let mut key = Vec::with_capacity(prefix.len() + 8);
                    key.extend_from_slice(prefix);
                    key.extend_from_slice(&seq.to_be_bytes());
                    staged.writes.push(Write { tree: entry_tree(kind), key, value: Some(bytes) });
                    staged.appended.push(Appended { kind, seq: *seq, hlc: stamp });
                }
                Op::Put { tree, key, value } => staged.writes.push(Write::put(Tree::State(tree), &key, value)),
                Op::Remove { tree, key } => staged.writes.push(Write::remove(Tree::State(tree), &key)),
                Op::Count { tree, key, add } => {
                    let at = (tree, key);
                    let before = match counted.get(&at).or_else(|| self.counts.get(&at)) {
                        Some(n) => *n,
                        None => self.stored_count(tree, &at.1)?,
                    };
                    let now = before.saturating_add(add);
                    staged.writes.push(Write::put(Tree::State(tree), &at.1, now.to_be_bytes().to_vec()));
                    counted.insert(at, now);
                }
                Op::Insert(entry) => {
                    // The clock is hybrid: whatever this node stamps next orders after every
                    // entry it has taken in. A stamp too far ahead is not followed (the link
                    // flags its sender); the entry is stored all the same.
                    let _ = hlc.observe(entry.hlc(), self.clock.now_ms());
                    let key = keys::entry_key(entry.origin(), entry.seq());
                    staged.writes.push(Write::put(entry_tree(entry.kind()), &key, entry.as_bytes().to_vec()));
                    staged.inserted.push((entry.kind(), entry.origin().clone(), entry.seq()));
                }
            }
        }
        if let Some(link) = audit_link {
            // Beside the records, in the same commit: the chain resumes from it after a restart.
            staged.writes.push(Write::put(entry_tree(Kind::Audit), keys::CHAIN_HEAD, link.to_vec()));
            self.audit_link = link;
        }
        self.seqs.extend(seqs);
        self.hlc = hlc;
        self.counts.extend(counted);
        Ok(staged)
    }

    fn stored_count(&self, tree: &'static str, key: &[u8]) -> Result<u64, StoreError> {
        match self.engine.get(Tree::State(tree), key)? {
            None => Ok(0),
            Some(v) => super::decode_count(&v).ok_or_else(|| StoreError::Corrupt {
                tree: tree.to_string(),
                detail: format!("counter of {} bytes", v.len()),
            }),
        }
    }

    /// Delete this node's entries of `kind` stamped before `cutoff_ms`, oldest first. Sequence
    /// order is time order for one origin, so the scan stops at the first entry to keep; but
    /// an entry stamped ahead of the clock (a clock that once jumped, see `recover`) is no
    /// sign of what follows it. Such an entry is passed over, and deleted with the first later
    /// entry that is deleted: it was written before that one.
    fn sweep(&mut self, kind: Kind, cutoff_ms: u64, max: usize, f: &mut InFlight) -> Result<SweepOutcome, StoreError> {
        let tree = entry_tree(kind);
        let mut batch = WriteBatch::default();
        let mut out = SweepOutcome::default();
        let future = self.clock.now_ms().saturating_add(MAX_CLOCK_LEAD_MS);
        let mut passed_over: Vec<Vec<u8>> = Vec::new();
        let range =
            self.engine.range(tree, Bound::Included(self.prefix.clone()), Bound::Excluded(past_origin(&self.prefix)));
        for kv in range {
            let (key, value) = kv?;
            let stamp = match codec::decode_prefix::<(NodeId, u64, Hlc)>(&value) {
                Ok(((_, _, hlc), _)) => hlc,
                Err(e) => {
                    tracing::warn!(tree = %kind, error = %e, "unreadable entry left in place by retention");
                    continue;
                }
            };
            if stamp.wall_ms > future {
                if passed_over.len() < max {
                    passed_over.push(key);
                }
                continue;
            }
            if stamp.wall_ms >= cutoff_ms {
                break;
            }
            if out.deleted + passed_over.len() >= max {
                out.more = true;
                break;
            }
            for older in passed_over.drain(..) {
                self.metrics.clock_future_stamps.inc();
                batch.writes.push(Write::remove(tree, &older));
                out.deleted += 1;
            }
            batch.writes.push(Write::remove(tree, &key));
            out.deleted += 1;
        }
        if !batch.is_empty() {
            f.wrote = true;
            self.engine.apply(batch)?;
        }
        Ok(out)
    }

    fn poll_size(&mut self, now: Instant, force: bool) {
        if !force && self.last_size_poll.is_some_and(|last| now.duration_since(last) < SIZE_POLL) {
            return;
        }
        self.last_size_poll = Some(now);
        if let Ok(size) = self.engine.size_on_disk() {
            self.published.size_bytes.store(size, Ordering::Relaxed);
            self.metrics.store_size_bytes.set(size);
            self.metrics.store_budget_state.set(self.config.budget_state(size) as i64);
        }
    }
}

/// The first job and every one already waiting behind it, up to the cap on writes per flush.
fn gather(first: Job, max_ops: usize, mut try_next: impl FnMut() -> Option<Job>) -> Vec<Job> {
    let mut jobs = vec![first];
    let mut ops = 0;
    loop {
        if let Some(Job::Commit { ops: o, .. }) = jobs.last() {
            ops += o.len();
        }
        if ops >= max_ops {
            return jobs;
        }
        match try_next() {
            Some(job) => jobs.push(job),
            None => return jobs,
        }
    }
}

/// sled's driver: a thread that blocks in `flush`, so a flush never holds up the runtime.
pub(super) fn run_on_thread(mut flusher: Flusher<SledEngine>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        let jobs = gather(job, flusher.config.max_ops_per_flush, || rx.try_recv().ok());
        let started = Instant::now();
        let f = flusher.apply(jobs);
        let flushed = if f.needs_flush() { flusher.engine.flush() } else { Ok(()) };
        flusher.complete(f, flushed, started.elapsed(), Instant::now());
    }
    // Every handle is gone: whatever was applied is already flushed.
}

/// The simulated disk's driver: a task on the runtime whose flush takes the disk's virtual
/// latency, with no thread for a paused clock to miss.
pub(super) async fn run_on_runtime(
    mut flusher: Flusher<super::sim::SimEngine>,
    mut rx: mpsc::Receiver<Job>,
    disk: SimDisk,
) {
    while let Some(job) = rx.recv().await {
        let jobs = gather(job, flusher.config.max_ops_per_flush, || rx.try_recv().ok());
        let started = tokio::time::Instant::now();
        let f = flusher.apply(jobs);
        let flushed = if f.needs_flush() {
            tokio::time::sleep_until(disk.begin_flush(started)).await;
            disk.end_flush()
        } else {
            Ok(())
        };
        let now = tokio::time::Instant::now();
        flusher.complete(f, flushed, now - started, now.into_std());
    }
}
