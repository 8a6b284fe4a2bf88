//! Committed list versions on their way to every node: what travels, and how a node applies it.
//!
//! The raft group decides the lists; nodes are not raft members. A site whose control plane
//! votes (the city, the counties) reads the committed versions from its own voter
//! ([`FeedRequest`] / [`FeedReply`] on a `ListsFeed` stream) and publishes them as entries of
//! kind `Sanctions` ([`FeedEntry`]) under its own node id; the mesh carries them down to every
//! site below, as it carries everything, store and forward. A town thus receives the city's
//! stream and its county's: two copies of one log, so a county cut off from the city but in
//! the majority still brings its towns the versions the majority commits.
//!
//! Each origin's stream is self-contained: it starts with a snapshot of the lists (or at
//! version 0), and each [`FeedEntry::Changes`] builds on the version the one before it reached
//! (`prev`). A publisher whose voter no longer has the changes it needs (the voter caught up by
//! a snapshot: its *horizon*) publishes a snapshot instead, which is how a gap is bridged. So
//! a node can follow any one stream from its start, and following several only gets it there
//! sooner.
//!
//! [`Applier`] is the node's side, a plain state machine: it takes each origin's entries in
//! sequence order and applies a version only on top of the one before it, never going back.
//! An entry of a stream that is behind is skipped; one that is ahead of what this node holds
//! waits (the stream is blocked) until another stream brings the versions between.

use super::machine::Lists;
use super::Proposal;
use proto::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest payload of one `Sanctions` entry: a snapshot piece, or the changes one entry
/// carries (a single change larger than this still travels alone; the operator API proposes
/// imports in 32 KiB pieces). Well under the codec's value cap and the sync batch cap.
pub const MAX_FEED_ENTRY_BYTES: usize = 512 << 10;

/// Longest a [`FeedRequest::Changes`] waits at the voter for a new version.
pub const MAX_FEED_WAIT_MS: u32 = 30_000;

/// One entry of kind `Sanctions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedEntry {
    /// The committed changes after version `prev`, in version order; after them the lists are
    /// at `through` (log entries that carry no list command, raft's blank and membership
    /// entries, move the version without a change).
    Changes { prev: u64, through: u64, changes: Vec<(u64, Proposal)> },
    /// A piece of a snapshot. A snapshot's pieces follow one another in one origin's stream.
    Snapshot(SnapshotPiece),
}

/// Piece `piece` of `pieces` of the lists as of `version`, in the snapshot codec: as the voter
/// serves it and as the publisher appends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPiece {
    pub version: u64,
    pub piece: u32,
    pub pieces: u32,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A node's request to its own site's voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedRequest {
    /// Committed changes after `after`, at most about `max_bytes` of them; if there are none
    /// yet, wait up to `wait_ms` (capped at [`MAX_FEED_WAIT_MS`]) for one.
    Changes { after: u64, max_bytes: u32, wait_ms: u32 },
    /// Piece `piece` of the lists as of `version`; `version: None` starts a new snapshot of the
    /// voter's current lists (ask for piece 0 then).
    Snapshot { version: Option<u64>, piece: u32 },
}

/// The voter's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedReply {
    /// `changes` after the request's `after`, complete through `through`. `horizon` is the
    /// highest version whose change this voter may lack: when the request's `after` is below
    /// it, `changes` is empty and the caller needs a snapshot.
    Changes {
        version: u64,
        horizon: u64,
        through: u64,
        changes: Vec<(u64, Proposal)>,
    },
    Snapshot(SnapshotPiece),
    /// The snapshot asked for is not kept any more (the voter's lists moved on): start again.
    SnapshotGone,
    /// The voter cannot answer (it is still replaying its log, or its store failed).
    Unavailable(String),
}

/// What one entry did to a node's lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The lists moved from `from` to `to`.
    Advanced { from: u64, to: u64 },
    /// A snapshot piece was taken; the snapshot is not complete yet.
    Piece,
    /// Nothing this node does not already hold.
    Behind,
    /// The entry builds on version `prev`, above this node's: the stream waits for another to
    /// bring the versions between. The cursor does not move.
    Blocked { prev: u64 },
    /// The entry is unreadable or inconsistent (skipped; the stream may block after it).
    Malformed(String),
}

/// A snapshot being put together from its pieces.
#[derive(Debug)]
struct Assembly {
    version: u64,
    pieces: u32,
    next: u32,
    bytes: Vec<u8>,
}

/// One origin's stream, as far as this node has taken it.
#[derive(Debug, Default)]
struct Stream {
    /// Sequence of the next entry to take.
    next_seq: u64,
    assembly: Option<Assembly>,
}

/// A node's sanctions lists, fed by the origins' streams. No I/O: the caller reads the stored
/// entries and offers them in order.
#[derive(Debug, Default)]
pub struct Applier {
    lists: Lists,
    streams: BTreeMap<NodeId, Stream>,
}

impl Applier {
    pub fn new() -> Applier {
        Applier::default()
    }

    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    pub fn version(&self) -> u64 {
        self.lists.version()
    }

    /// Sequence of the next entry of `origin` to offer (sequences start at 1).
    pub fn next_seq(&self, origin: &NodeId) -> u64 {
        self.streams.get(origin).map_or(1, |s| s.next_seq)
    }

    /// Offer entry `seq` of `origin`'s stream, which must be [`Applier::next_seq`] (anything
    /// else is ignored as [`Step::Behind`] or refused as malformed). The cursor moves past
    /// the entry unless the step is [`Step::Blocked`].
    pub fn offer(&mut self, origin: &NodeId, seq: u64, payload: &[u8]) -> Step {
        let stream = self.streams.entry(origin.clone()).or_insert_with(|| Stream { next_seq: 1, assembly: None });
        if seq < stream.next_seq {
            return Step::Behind;
        }
        if seq > stream.next_seq {
            return Step::Malformed(format!("entry {seq} offered before entry {}", stream.next_seq));
        }
        let step = match proto::codec::decode::<FeedEntry>(payload) {
            Err(e) => Step::Malformed(format!("unreadable: {e}")),
            Ok(FeedEntry::Changes { prev, through, changes }) => apply_changes(&mut self.lists, prev, through, changes),
            Ok(FeedEntry::Snapshot(piece)) => take_piece(&mut self.lists, &mut stream.assembly, piece),
        };
        if !matches!(step, Step::Blocked { .. }) {
            stream.next_seq += 1;
        }
        step
    }
}

fn apply_changes(lists: &mut Lists, prev: u64, through: u64, changes: Vec<(u64, Proposal)>) -> Step {
    let mut last = prev;
    for (v, _) in &changes {
        if *v <= last || *v > through {
            return Step::Malformed(format!("change {v} out of order in ({prev}, {through}]"));
        }
        last = *v;
    }
    let from = lists.version();
    if through <= from {
        return Step::Behind;
    }
    if prev > from {
        return Step::Blocked { prev };
    }
    for (v, proposal) in changes.iter().filter(|(v, _)| *v > from) {
        // Every replica re-executes the committed proposal and reaches the voters' outcome:
        // the state machine is a function of the log alone.
        lists.apply(*v, proposal);
    }
    lists.skip_to(through);
    Step::Advanced { from, to: through }
}

fn take_piece(lists: &mut Lists, assembly: &mut Option<Assembly>, p: SnapshotPiece) -> Step {
    let SnapshotPiece { version, piece, pieces, bytes } = p;
    if piece == 0 {
        *assembly = Some(Assembly { version, pieces, next: 0, bytes: Vec::new() });
    }
    let Some(a) = assembly.as_mut().filter(|a| a.version == version && a.pieces == pieces && a.next == piece) else {
        *assembly = None;
        return Step::Malformed(format!("snapshot piece {piece}/{pieces} of version {version} out of order"));
    };
    if a.bytes.len() + bytes.len() > proto::codec::MAX_SNAPSHOT_BYTES {
        *assembly = None;
        return Step::Malformed(format!("snapshot of version {version} larger than any node takes"));
    }
    a.bytes.extend_from_slice(&bytes);
    a.next += 1;
    if a.next < a.pieces {
        return Step::Piece;
    }
    let Some(done) = assembly.take() else { return Step::Piece };
    let from = lists.version();
    if done.version <= from {
        return Step::Behind;
    }
    match proto::codec::decode_snapshot::<Lists>(&done.bytes) {
        Ok(taken) if taken.version() == done.version => {
            *lists = taken;
            Step::Advanced { from, to: done.version }
        }
        Ok(taken) => Step::Malformed(format!("snapshot says version {} but holds {}", done.version, taken.version())),
        Err(e) => Step::Malformed(format!("unreadable snapshot of version {}: {e}", done.version)),
    }
}

/// How many pieces the encoded lists of `len` bytes make (at least one, for empty lists).
fn piece_count(len: usize) -> u32 {
    len.div_ceil(MAX_FEED_ENTRY_BYTES).max(1) as u32
}

/// Piece `piece` of the encoded lists `bytes` of `version`; `None` past the last.
pub fn snapshot_piece(version: u64, bytes: &[u8], piece: u32) -> Option<SnapshotPiece> {
    let pieces = piece_count(bytes.len());
    if piece >= pieces {
        return None;
    }
    let start = piece as usize * MAX_FEED_ENTRY_BYTES;
    let end = (start + MAX_FEED_ENTRY_BYTES).min(bytes.len());
    Some(SnapshotPiece { version, piece, pieces, bytes: bytes[start..end].to_vec() })
}

/// Every piece of one snapshot of the encoded lists `bytes` of `version`.
pub fn snapshot_entries(version: u64, bytes: &[u8]) -> Vec<FeedEntry> {
    (0..piece_count(bytes.len())).filter_map(|i| snapshot_piece(version, bytes, i)).map(FeedEntry::Snapshot).collect()
}

#[cfg(test)]
mod tests;
