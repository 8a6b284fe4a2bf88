//! What nodes say to each other over a mesh link.
//!
//! A link is one QUIC connection per neighbour, shared by several protocols: every
//! bidirectional stream starts with a one-byte [`StreamKind`] written by the side that opens
//! it, and the accepting side refuses kinds it does not serve with a [`StreamRefusal`] code.
//!
//! Replication ([`StreamKind::Sync`]) uses one stream per direction of the link, opened by the
//! receiver: after the kind byte the receiver first says what it holds ([`SyncMsg::Want`]),
//! the sender streams the gaps in batches, and the receiver acknowledges each batch once it is
//! durable. Messages travel as length-prefixed frames ([`crate::codec::frame`]) of the bounded
//! codec; a batch's entries travel as the bytes they are stored as ([`SyncMsg::to_frame`]).

use crate::codec::{self, CodecError, MAX_FRAME_BYTES};
use crate::entry::{Entry, EntryBytes, Kind};
use crate::ids::NodeId;
use crate::vv::VersionVector;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The ALPN protocol id of yiwang's mesh links. `/2`: every stream starts with its
/// [`StreamKind`]; a node speaking `/1` is refused at the handshake rather than misread.
pub const ALPN: &[u8] = b"yiwang/2";
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// Most encoded entry bytes in one batch; with the frame header this stays under the frame cap.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// What a bidirectional stream of a mesh connection carries: the first byte the opening side
/// writes on it. Values are fixed on the wire; a new kind takes a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// Replication: [`SyncMsg`]s, the receiver of entries opening the stream.
    Sync = 1,
    /// City-level consensus on sanctions lists, between voters' control planes.
    Raft = 2,
    /// Control messages from a child to its parent: [`ControlMsg`]s, the child opening the
    /// stream.
    Control = 3,
    /// A site's node reading committed list versions from its own site's control plane, to
    /// publish them down the mesh.
    ListsFeed = 4,
}

impl StreamKind {
    pub const ALL: [StreamKind; 4] = [StreamKind::Sync, StreamKind::Raft, StreamKind::Control, StreamKind::ListsFeed];

    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The kind a header byte names; `None` for a byte that names none.
    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|k| k.to_byte() == byte)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Sync => "sync",
            StreamKind::Raft => "raft",
            StreamKind::Control => "control",
            StreamKind::ListsFeed => "lists-feed",
        }
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a node refused a stream its peer opened: the QUIC application error code it stops
/// and resets the stream with. Values are fixed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum StreamRefusal {
    /// A kind this node does not serve (yet).
    NotServed = 1,
    /// A header byte that names no [`StreamKind`].
    UnknownKind = 2,
    /// A second stream of a kind a connection carries one of at a time (sync).
    Duplicate = 3,
    /// No header arrived in time.
    NoHeader = 4,
    /// The peer's certificate does not allow this kind (raft from a site that is not a voter).
    Unauthorized = 5,
    /// The stream's message could not be read.
    Malformed = 6,
}

impl StreamRefusal {
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The reason label in metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamRefusal::NotServed => "stream_not_served",
            StreamRefusal::UnknownKind => "stream_unknown_kind",
            StreamRefusal::Duplicate => "stream_duplicate",
            StreamRefusal::NoHeader => "stream_no_header",
            StreamRefusal::Unauthorized => "stream_unauthorized",
            StreamRefusal::Malformed => "stream_malformed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMsg {
    /// Receiver to sender: for each kind the sender may send, what the receiver already holds.
    Want { heads: Vec<(Kind, VersionVector)> },
    /// Sender to receiver: entries, in sequence order within each (kind, origin), each as the
    /// bytes its origin stored.
    Batch { id: u64, entries: Vec<EntryBytes> },
    /// Receiver to sender: batch `id` is durable here; `refused` of its entries were refused
    /// (counted and audited on this side).
    Ack { id: u64, refused: u32 },
}

/// [`SyncMsg`] as serde sees it, which fixes the encoding: a batch is the variant, its id, the
/// number of entries and then each [`Entry`]'s encoding, which is what [`EntryBytes`] holds, so
/// a batch is written by concatenating stored bytes and read by cutting them apart again.
#[derive(Serialize, Deserialize)]
enum Plain {
    Want { heads: Vec<(Kind, VersionVector)> },
    Batch { id: u64, entries: Vec<Entry> },
    Ack { id: u64, refused: u32 },
}

/// The variant index of [`Plain::Batch`].
const BATCH_VARIANT: u32 = 1;

/// Room left in front of a batch's entries for the frame's length and the message's header
/// (variant, id and count, each at its widest).
const BATCH_HEADROOM: usize = 4 + 5 + 9 + 9;

/// A [`SyncMsg::Batch`] frame built as its entries are read: each entry's stored bytes are
/// copied in once, and nothing else is made per entry.
pub struct BatchFrame {
    /// `BATCH_HEADROOM` bytes to fill in at the end, then the entries.
    buf: Vec<u8>,
    entries: usize,
}

impl Default for BatchFrame {
    fn default() -> Self {
        BatchFrame::new()
    }
}

impl BatchFrame {
    pub fn new() -> BatchFrame {
        let mut buf = Vec::with_capacity(BATCH_HEADROOM + (64 << 10));
        buf.resize(BATCH_HEADROOM, 0);
        BatchFrame { buf, entries: 0 }
    }

    /// Add an entry: its encoding, as stored (see [`EntryBytes`]).
    pub fn push(&mut self, stored: &[u8]) {
        self.buf.extend_from_slice(stored);
        self.entries += 1;
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The entries' bytes so far.
    pub fn entry_bytes(&self) -> usize {
        self.buf.len() - BATCH_HEADROOM
    }

    /// The frame of batch `id`: its length, then the message.
    pub fn finish(mut self, id: u64) -> Result<Bytes, CodecError> {
        // The empty batch's encoding ends with its count, zero, in one byte: the real count
        // goes in its place, and the entries follow.
        let mut head = codec::encode(&Plain::Batch { id, entries: Vec::new() })?;
        head.pop();
        head.extend_from_slice(&codec::encode(&(self.entries as u64))?);
        let len = head.len() + self.entry_bytes();
        if len > MAX_FRAME_BYTES {
            return Err(CodecError::FrameTooLarge { claimed: len, limit: MAX_FRAME_BYTES });
        }
        let start = BATCH_HEADROOM - head.len() - 4;
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        self.buf[start + 4..BATCH_HEADROOM].copy_from_slice(&head);
        Ok(Bytes::from(self.buf).slice(start..))
    }
}

impl SyncMsg {
    /// The message as one frame: its length (4 bytes, big-endian), then its encoding.
    pub fn to_frame(&self) -> Result<Bytes, CodecError> {
        let body = match self {
            SyncMsg::Want { heads } => codec::encode_frame_payload(&Plain::Want { heads: heads.clone() })?,
            SyncMsg::Ack { id, refused } => codec::encode_frame_payload(&Plain::Ack { id: *id, refused: *refused })?,
            SyncMsg::Batch { id, entries } => {
                let mut frame = BatchFrame::new();
                entries.iter().for_each(|e| frame.push(e.as_bytes()));
                return frame.finish(*id);
            }
        };
        Ok(codec::frame(&body)?.into())
    }

    /// Read one frame's body (its length already taken off). A batch's entries share `body`.
    pub fn decode(body: Bytes) -> Result<SyncMsg, CodecError> {
        if body.len() > MAX_FRAME_BYTES {
            return Err(CodecError::TooLarge { len: body.len(), limit: MAX_FRAME_BYTES });
        }
        let (variant, mut at) = codec::decode_prefix::<u32>(&body)?;
        if variant != BATCH_VARIANT {
            return Ok(match codec::decode_frame_payload::<Plain>(&body)? {
                Plain::Want { heads } => SyncMsg::Want { heads },
                Plain::Ack { id, refused } => SyncMsg::Ack { id, refused },
                Plain::Batch { .. } => unreachable!("variant {BATCH_VARIANT} is read below"),
            });
        }
        let (id, used) = codec::decode_prefix::<u64>(&body[at..])?;
        at += used;
        let (count, used) = codec::decode_prefix::<u64>(&body[at..])?;
        at += used;
        if count > MAX_BATCH_ENTRIES as u64 {
            return Err(CodecError::Malformed(format!("a batch of {count} entries; at most {MAX_BATCH_ENTRIES}")));
        }
        let mut entries: Vec<EntryBytes> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (e, used) = EntryBytes::read_from(&body, at, entries.last().map(EntryBytes::origin))?;
            at += used;
            entries.push(e);
        }
        if at != body.len() {
            return Err(CodecError::TrailingBytes(body.len() - at));
        }
        Ok(SyncMsg::Batch { id, entries })
    }
}

/// Most reports in one [`ControlMsg::Reports`]: one per site of the largest topology.
pub const MAX_REPORTS: usize = 4096;
/// Most links one report lists.
pub const MAX_REPORT_LINKS: usize = 4096;

/// One link as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBrief {
    pub peer: NodeId,
    /// `parent` or `child`.
    pub parent: bool,
    /// 0 up, 1 catching up, 2 degraded, 3 partitioned (the `link_state` metric's codes).
    pub state: u8,
    /// Entries the node holds that the peer has not acknowledged.
    pub backlog: u64,
}

/// What a node says of itself up the mesh, for the city's view of every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: NodeId,
    /// The node's clock when it made the report, ms since the epoch.
    pub at_ms: u64,
    /// Version of the sanctions lists it enforces.
    pub lists_version: u64,
    pub open_events: u64,
    pub overdue_events: u64,
    pub links: Vec<LinkBrief>,
    /// Filled in by the parent that took the report from the node itself: that parent, its
    /// clock then, and the node's clock minus the parent's (ms, half the round trip allowed
    /// for). Zero and `None` as the node sends it.
    pub via: Option<NodeId>,
    pub seen_ms: u64,
    pub clock_offset_ms: i64,
}

/// A message on a [`StreamKind::Control`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    /// The sender's own report first, then the latest it holds of each site below it.
    Reports(Vec<NodeReport>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hlc;
    use proptest::prelude::*;

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        let entry = ("[a-c]", 1u64..400, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
            |(origin, seq, wall, payload)| Entry {
                origin: NodeId::new(format!("town-{origin}")).unwrap(),
                seq,
                hlc: Hlc::new(wall, 0),
                kind: Kind::Alert,
                payload,
            },
        );
        proptest::collection::vec(entry, 0..300)
    }

    fn body(frame: &Bytes) -> Bytes {
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
        frame.slice(4..)
    }

    proptest! {
        /// A batch made of stored bytes is the frame serde makes of the entries: nodes built
        /// before entries travelled as bytes read it, and it reads back as they wrote it.
        #[test]
        fn a_batch_of_stored_bytes_is_the_batch_serde_writes(id: u64, plain in entries()) {
            let stored: Vec<EntryBytes> = plain.iter().map(|e| EntryBytes::encode(e).unwrap()).collect();
            let frame = SyncMsg::Batch { id, entries: stored.clone() }.to_frame().unwrap();
            let serde = codec::encode_frame_payload(&Plain::Batch { id, entries: plain.clone() }).unwrap();
            prop_assert_eq!(&frame[4..], &serde[..]);
            let SyncMsg::Batch { id: got, entries } = SyncMsg::decode(body(&frame)).unwrap() else { panic!("not a batch") };
            prop_assert_eq!(got, id);
            prop_assert_eq!(entries, stored);
        }

        #[test]
        fn every_truncated_batch_is_refused(plain in entries()) {
            let stored: Vec<EntryBytes> = plain.iter().map(|e| EntryBytes::encode(e).unwrap()).collect();
            let frame = SyncMsg::Batch { id: 7, entries: stored }.to_frame().unwrap();
            let whole = body(&frame);
            for cut in (0..whole.len()).step_by(7) {
                prop_assert!(SyncMsg::decode(whole.slice(..cut)).is_err());
            }
            let mut longer = whole.to_vec();
            longer.push(0);
            prop_assert!(matches!(SyncMsg::decode(longer.into()), Err(CodecError::TrailingBytes(1))));
        }
    }

    #[test]
    fn wants_and_acks_round_trip_and_oversized_batches_are_refused() {
        let mut vv = VersionVector::new();
        vv.raise(&NodeId::new("town-a").unwrap(), 9);
        for msg in [SyncMsg::Want { heads: vec![(Kind::Audit, vv)] }, SyncMsg::Ack { id: 3, refused: 1 }] {
            assert_eq!(SyncMsg::decode(body(&msg.to_frame().unwrap())).unwrap(), msg);
        }
        let e = Entry {
            origin: NodeId::new("town-a").unwrap(),
            seq: 1,
            hlc: Hlc::ZERO,
            kind: Kind::Alert,
            payload: vec![],
        };
        let too_many = Plain::Batch { id: 1, entries: vec![e; MAX_BATCH_ENTRIES + 1] };
        let err = SyncMsg::decode(codec::encode_frame_payload(&too_many).unwrap().into()).unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn stream_kinds_round_trip_and_unknown_bytes_name_none() {
        for kind in StreamKind::ALL {
            assert_eq!(StreamKind::from_byte(kind.to_byte()), Some(kind));
        }
        assert_eq!([StreamKind::Sync, StreamKind::Raft, StreamKind::Control].map(StreamKind::to_byte), [1, 2, 3]);
        let named = (0..=u8::MAX).filter(|b| StreamKind::from_byte(*b).is_some()).count();
        assert_eq!(named, StreamKind::ALL.len());
        assert_eq!(StreamKind::from_byte(0), None);
        assert_eq!(StreamKind::from_byte(5), None);
    }
}
