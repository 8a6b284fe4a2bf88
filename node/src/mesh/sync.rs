//! Replication without I/O: what to send a peer, and what to accept from one.
//!
//! Each direction of a link has a sender ([`Outbound`]) and a receiver. The receiver opens with
//! its version vectors ([`SyncMsg::Want`]); the sender streams, kind by kind in priority order
//! and origin by origin in sequence order, every entry the receiver lacks, keeping at most a
//! window of batches unacknowledged; the receiver acknowledges each batch once it is durable.
//! Nothing is "delivered" until acknowledged: after a reconnect the receiver's new `Want` says
//! exactly where to resume, so the sender keeps no cursor of its own that could be lost.
//!
//! [`Replica`] is the receiving node's one view of what it holds, shared by all its links, so
//! an entry arriving by two paths is applied once.

use bytes::Bytes;
use proto::authz::{self, Direction, Refusal};
use proto::wire::{BatchFrame, SyncMsg, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use proto::{EntryBytes, Kind, NodeId, VersionVector};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Takes one stored entry's bytes; returns whether to go on reading.
pub type Take<'a> = dyn FnMut(&[u8]) -> bool + 'a;

/// What a node holds, as the sender reads it.
pub trait Holdings {
    type Error: std::fmt::Display;
    /// For each origin, the highest sequence of `kind` held durably. [`Outbound`] sends nothing
    /// past these heads, whatever [`Holdings::read`] would return.
    fn heads(&self, kind: Kind) -> Result<Arc<VersionVector>, Self::Error>;
    /// Hand `take` up to `max` entries of `kind` from `origin`, starting at `from_seq`, in
    /// order, as the bytes they are stored as (they go out as they are), until it says stop
    /// by returning false.
    fn read(
        &self,
        kind: Kind,
        origin: &NodeId,
        from_seq: u64,
        max: usize,
        take: &mut Take<'_>,
    ) -> Result<(), Self::Error>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("acknowledgement for batch {got}, expected {expected:?}")]
    UnexpectedAck { got: u64, expected: Option<u64> },
    #[error("peer sent {0} where it should not")]
    Unexpected(&'static str),
    #[error("cannot read entries to send: {0}")]
    Read(String),
}

struct InFlight {
    id: u64,
    /// The highest sequence sent per (kind, origin) in this batch.
    heads: Vec<(Kind, NodeId, u64)>,
}

/// A batch ready to go: its frame, entries as stored.
#[derive(Debug, Clone)]
pub struct OutBatch {
    pub id: u64,
    pub entries: usize,
    pub frame: Bytes,
}

/// Whose entries a sender offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Every origin's (going down).
    All,
    /// Only these origins' (going up: the sender's subtree, which is all a parent accepts from
    /// it). The sender looks at these origins only, however many the city has.
    Only(BTreeSet<NodeId>),
}

/// The sending half of one link direction.
pub struct Outbound {
    kinds: Vec<Kind>,
    origins: Origins,
    acked: HashMap<Kind, VersionVector>,
    sent: HashMap<Kind, VersionVector>,
    /// Per kind, the heads snapshot last found to hold nothing more to send. Holding it keeps
    /// the store from updating it in place (it copies on write), so the same snapshot means
    /// the same heads, and a sender woken again finds that out without scanning any origin.
    clean: HashMap<Kind, Arc<VersionVector>>,
    /// Per kind, the backlog last counted, against which heads snapshot and which `acked`
    /// (its epoch, bumped whenever `acked` moves): the link's status asks every second.
    backlogs: HashMap<Kind, (Arc<VersionVector>, u64, u64)>,
    acked_epoch: u64,
    in_flight: VecDeque<InFlight>,
    next_id: u64,
    window: usize,
    ready: bool,
}

impl Outbound {
    /// A sender of the kinds that travel `dir`, offering the entries of `origins`, with at most
    /// `window` batches unacknowledged.
    pub fn new(dir: Direction, window: usize, origins: Origins) -> Outbound {
        Outbound {
            kinds: authz::priority(dir).collect(),
            origins,
            acked: HashMap::new(),
            sent: HashMap::new(),
            clean: HashMap::new(),
            backlogs: HashMap::new(),
            acked_epoch: 0,
            in_flight: VecDeque::new(),
            next_id: 1,
            window: window.max(1),
            ready: false,
        }
    }

    /// The receiver said what it holds: (re)start from there.
    pub fn on_want(&mut self, heads: Vec<(Kind, VersionVector)>) {
        self.acked = heads.into_iter().filter(|(k, _)| self.kinds.contains(k)).collect();
        self.sent = self.acked.clone();
        self.clean.clear();
        self.acked_epoch += 1;
        self.in_flight.clear();
        self.ready = true;
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether the window has room for another batch.
    pub fn can_send(&self) -> bool {
        self.ready && self.in_flight.len() < self.window
    }

    /// The kinds this sender sends, most urgent first.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next batch of entries the receiver lacks, most urgent kinds first; `None` when
    /// there is nothing to send or the window is full.
    pub fn next_batch<H: Holdings>(&mut self, src: &H) -> Result<Option<OutBatch>, ProtocolError> {
        if !self.can_send() {
            return Ok(None);
        }
        let mut batch = BatchFrame::new();
        let mut heads = Vec::new();
        'kinds: for &kind in &self.kinds {
            let held = src.heads(kind).map_err(|e| ProtocolError::Read(e.to_string()))?;
            if self.clean.get(&kind).is_some_and(|c| Arc::ptr_eq(c, &held)) {
                continue;
            }
            let sent = self.sent.entry(kind).or_default();
            let gaps = gaps(&self.origins, &held, sent);
            if gaps.is_empty() {
                self.clean.insert(kind, held);
                continue;
            }
            self.clean.remove(&kind);
            for (origin, from, head) in gaps {
                // Never past the head: the holdings may show entries that are not durable yet,
                // and an entry a power cut can still take away must not leave the node.
                let room =
                    (MAX_BATCH_ENTRIES - batch.entries()).min((head - from + 1).try_into().unwrap_or(usize::MAX));
                let mut last = None;
                let mut unreadable = None;
                let mut take = |stored: &[u8]| {
                    let seq = match EntryBytes::peek_seq(stored) {
                        Ok(seq) => seq,
                        Err(e) => {
                            unreadable = Some(e);
                            return false;
                        }
                    };
                    // Stop at a hole rather than send past it: the receiver could not apply it.
                    if seq != last.map_or(from, |l| l + 1) || seq > head {
                        return false;
                    }
                    batch.push(stored);
                    last = Some(seq);
                    batch.entry_bytes() < MAX_BATCH_BYTES
                };
                src.read(kind, &origin, from, room, &mut take).map_err(|e| ProtocolError::Read(e.to_string()))?;
                if let Some(e) = unreadable {
                    return Err(ProtocolError::Read(format!("a stored {kind} entry of {origin}: {e}")));
                }
                if let Some(l) = last {
                    sent.raise(&origin, l);
                    heads.push((kind, origin, l));
                }
                if batch.entries() >= MAX_BATCH_ENTRIES || batch.entry_bytes() >= MAX_BATCH_BYTES {
                    break 'kinds;
                }
            }
        }
        if batch.entries() == 0 {
            return Ok(None);
        }
        let id = self.next_id;
        let entries = batch.entries();
        let frame = batch.finish(id).map_err(|e| ProtocolError::Read(e.to_string()))?;
        self.next_id += 1;
        self.in_flight.push_back(InFlight { id, heads });
        Ok(Some(OutBatch { id, entries, frame }))
    }

    /// The receiver made batch `id` durable. Batches are acknowledged in order.
    pub fn on_ack(&mut self, id: u64) -> Result<(), ProtocolError> {
        match self.in_flight.front() {
            Some(f) if f.id == id => {
                let f = self.in_flight.pop_front().expect("front exists");
                for (kind, origin, seq) in f.heads {
                    self.acked.entry(kind).or_default().raise(&origin, seq);
                }
                self.acked_epoch += 1;
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedAck { got: id, expected: other.map(|f| f.id) }),
        }
    }

    /// Entries held that the receiver has not acknowledged: the link's backlog.
    pub fn backlog<H: Holdings>(&mut self, src: &H) -> Result<u64, ProtocolError> {
        let mut n = 0;
        let none = VersionVector::new();
        for &kind in &self.kinds {
            let held = src.heads(kind).map_err(|e| ProtocolError::Read(e.to_string()))?;
            if let Some((snapshot, epoch, count)) = self.backlogs.get(&kind) {
                if Arc::ptr_eq(snapshot, &held) && *epoch == self.acked_epoch {
                    n += count;
                    continue;
                }
            }
            let acked = self.acked.get(&kind).unwrap_or(&none);
            let count = gaps(&self.origins, &held, acked).iter().map(|(_, from, head)| head - from + 1).sum::<u64>();
            self.backlogs.insert(kind, (held, self.acked_epoch, count));
            n += count;
        }
        Ok(n)
    }
}

/// The `Want` for the kinds that travel `dir`, from `durable`: what the store has made
/// durable, never what is only accepted and queued. A peer told we hold an entry never sends
/// it again, so an entry a power cut then takes away would be missing here for good.
pub fn want(dir: Direction, durable: impl Fn(Kind) -> VersionVector) -> SyncMsg {
    SyncMsg::Want { heads: authz::priority(dir).map(|k| (k, durable(k))).collect() }
}

/// `(origin, first, last)` of what `held` has beyond `sent`, among `origins`.
fn gaps(origins: &Origins, held: &VersionVector, sent: &VersionVector) -> Vec<(NodeId, u64, u64)> {
    match origins {
        Origins::All => held.ahead_of(sent).map(|(o, from, head)| (o.clone(), from, head)).collect(),
        Origins::Only(set) => set
            .iter()
            .filter_map(|o| {
                let (head, have) = (held.get(o), sent.get(o));
                (head > have).then(|| (o.clone(), have + 1, head))
            })
            .collect(),
    }
}

/// What a node holds of every kind that travels, shared by all its links.
pub struct Replica {
    me: NodeId,
    heads: HashMap<Kind, VersionVector>,
}

/// The verdict on one received entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New and next in line: store it.
    Accept,
    /// Already held (or our own): drop it silently.
    Duplicate,
    /// Not contiguous with what we hold; the sender will resend after the next `Want`.
    Gap,
    /// Not allowed: count and audit it.
    Refuse(Refusal),
}

impl Replica {
    pub fn new(me: NodeId, heads: HashMap<Kind, VersionVector>) -> Replica {
        Replica { me, heads }
    }

    /// What this replica has accepted of `kind`: what is durable plus what is queued for the
    /// disk. Judging uses it; a `Want` must not (see [`want`]).
    pub fn accepted(&self, kind: Kind) -> VersionVector {
        self.heads.get(&kind).cloned().unwrap_or_default()
    }

    /// Judge one entry a sender sent; `authorize` applies the topology rules
    /// (see [`proto::authz::check`]). An accepted entry advances the heads at once: the caller
    /// must queue it for storage before judging anything else (see the link's receive loop).
    pub fn judge(&mut self, e: &EntryBytes, authorize: impl Fn(&EntryBytes) -> Result<(), Refusal>) -> Verdict {
        if let Err(r) = authorize(e) {
            return Verdict::Refuse(r);
        }
        // A frame may carry more than one stored value may hold; such an entry could never be
        // stored, and would fail every commit it was in.
        if e.payload().len() + 1024 > proto::codec::MAX_VALUE_BYTES {
            return Verdict::Refuse(Refusal::TooLarge);
        }
        if *e.origin() == self.me {
            return Verdict::Duplicate;
        }
        match self.heads.entry(e.kind()).or_default().offer(e.origin(), e.seq()) {
            proto::vv::Offer::Next => Verdict::Accept,
            proto::vv::Offer::Duplicate => Verdict::Duplicate,
            proto::vv::Offer::Gap { .. } => Verdict::Gap,
        }
    }

    /// Judge a batch in order, each entry as [`Replica::judge`] does; `authorize(origin, kind)`
    /// is asked once per run of entries of one origin and kind (a batch runs origin by
    /// origin), not once per entry. The same caller rules apply: queue the accepted entries
    /// before judging anything else.
    pub fn judge_batch(
        &mut self,
        entries: &[EntryBytes],
        mut authorize: impl FnMut(&NodeId, Kind) -> Result<(), Refusal>,
    ) -> Vec<Verdict> {
        let mut run: Option<(NodeId, Kind, Result<(), Refusal>)> = None;
        entries
            .iter()
            .map(|e| {
                let allowed = match &run {
                    Some((origin, kind, allowed)) if origin == e.origin() && *kind == e.kind() => *allowed,
                    _ => {
                        let allowed = authorize(e.origin(), e.kind());
                        run = Some((e.origin().clone(), e.kind(), allowed));
                        allowed
                    }
                };
                self.judge(e, |_| allowed)
            })
            .collect()
    }

    /// Raise our own origin's head (our own appends, which the flusher numbers).
    pub fn set_own(&mut self, kind: Kind, seq: u64) {
        let me = self.me.clone();
        self.heads.entry(kind).or_default().raise(&me, seq);
    }
}

#[cfg(test)]
mod tests;
