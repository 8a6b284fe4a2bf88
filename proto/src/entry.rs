//! The entry envelope: everything that crosses the network, and everything a node stores about
//! its own work, is an entry addressed by `(origin, seq)` within its kind.

use crate::codec::{self, CodecError};
use crate::hlc::Hlc;
use crate::ids::{NodeId, MAX_NODE_ID_LEN};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an entry carries. Each kind has its own sequence space per origin, its own sled tree and
/// its own version vector.
///
/// Encoded by position: append new kinds at the end, never reorder or remove one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A raw feed detection (plate read, vessel report, camera event). Kept on site for the
    /// retention period and never replicated.
    Detection,
    /// An alert raised by a rule at ingest (watchlist hit, fence, camera offline).
    Alert,
    /// A grid event or an alert event in the on-site workflow.
    Event,
    /// A workflow transition of an event.
    Transition,
    /// An escalation to a higher tier, or that tier's answer.
    Escalation,
    /// A command addressed to the owner of an event.
    Command,
    /// A per-window summary (idempotent upsert keyed by node and window).
    Summary,
    /// An append-only audit record.
    Audit,
    /// A watchlist change (add-wins set operation).
    Watchlist,
    /// Committed versions of the city's sanctions lists, published down the mesh by the sites
    /// whose control plane votes (see `node::sanctions::feed`).
    Sanctions,
    /// A plate read that matched no list: kept on site for its own, shorter retention
    /// (`store.plate_read_retention_hours`), or not at all, and never replicated. A read that
    /// hit is a [`Kind::Detection`], kept as long as the other raw detections.
    PlateRead,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Detection,
        Kind::Alert,
        Kind::Event,
        Kind::Transition,
        Kind::Escalation,
        Kind::Command,
        Kind::Summary,
        Kind::Audit,
        Kind::Watchlist,
        Kind::Sanctions,
        Kind::PlateRead,
    ];

    /// The kinds that cross links (every kind [`crate::authz::travels`] some way), in the
    /// order [`crate::authz::priority`] sends them.
    pub const REPLICATED: [Kind; 7] =
        [Kind::Alert, Kind::Escalation, Kind::Command, Kind::Sanctions, Kind::Watchlist, Kind::Summary, Kind::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Detection => "detection",
            Kind::Alert => "alert",
            Kind::Event => "event",
            Kind::Transition => "transition",
            Kind::Escalation => "escalation",
            Kind::Command => "command",
            Kind::Summary => "summary",
            Kind::Audit => "audit",
            Kind::Watchlist => "watchlist",
            Kind::Sanctions => "sanctions",
            Kind::PlateRead => "plate_read",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The address of an entry within its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryId {
    pub origin: NodeId,
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.origin, self.seq)
    }
}

/// The envelope. `payload` is the kind-specific body, itself encoded with [`crate::codec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub origin: NodeId,
    pub seq: u64,
    pub hlc: Hlc,
    pub kind: Kind,
    /// Read as one byte string, so the decoder's size limit applies to it as a whole.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn id(&self) -> EntryId {
        EntryId { origin: self.origin.clone(), seq: self.seq }
    }
}

/// An [`Entry`] by reference, for encoding without copying the origin or payload. Encodes to the
/// same bytes as the owned `Entry` (field order and types match), so it decodes as one.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EntryRef<'a> {
    pub origin: &'a NodeId,
    pub seq: u64,
    pub hlc: Hlc,
    pub kind: Kind,
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
}

/// An entry as it is stored and as it travels: its encoding (the bytes `codec::encode` makes
/// of the [`Entry`]) with the header read from it. Replication forwards these bytes from one
/// node's disk to the next one's untouched: a receiver judges an entry by its header and stores
/// the bytes it was sent, so the payload is never decoded or encoded again on the way.
///
/// Reading the header checks everything the envelope promises (a valid origin, a known kind,
/// a payload that ends where the entry does); the payload itself is the business of whoever
/// applies it, as it always was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBytes {
    origin: NodeId,
    seq: u64,
    hlc: Hlc,
    kind: Kind,
    /// Where the payload starts in `bytes`; it runs to the end.
    payload_at: usize,
    bytes: Bytes,
}

impl EntryBytes {
    /// The stored form of `entry`.
    pub fn encode(entry: &Entry) -> Result<EntryBytes, CodecError> {
        EntryBytes::decode(Bytes::from(codec::encode(entry)?))
    }

    /// Read exactly one entry's encoding (a value from the store).
    pub fn decode(bytes: Bytes) -> Result<EntryBytes, CodecError> {
        let (entry, used) = EntryBytes::read_from(&bytes, 0, None)?;
        if used != bytes.len() {
            return Err(CodecError::TrailingBytes(bytes.len() - used));
        }
        Ok(entry)
    }

    /// Read the entry that starts at `at` in `bytes` (entries back to back, as in a batch);
    /// returns it, sharing `bytes`, and the bytes it takes. An origin equal to `previous`
    /// shares that id rather than making a new one: a batch runs origin by origin.
    pub fn read_from(bytes: &Bytes, at: usize, previous: Option<&NodeId>) -> Result<(EntryBytes, usize), CodecError> {
        let input = bytes.get(at..).ok_or(CodecError::Truncated)?;
        let input = &input[..input.len().min(codec::MAX_VALUE_BYTES)];
        // Field by field, as bincode lays an `Entry` out: the origin's length and bytes, the
        // sequence, the stamp's two parts, the kind's index, the payload's length and bytes.
        let mut c = Cursor { input, pos: 0 };
        let len = c.varint(MAX_NODE_ID_LEN as u64)? as usize;
        let name = input.get(c.pos..c.pos + len).ok_or(CodecError::Truncated)?;
        let origin = match previous {
            Some(p) if p.as_str().as_bytes() == name => p.clone(),
            _ => new_origin(name)?,
        };
        c.pos += len;
        let seq = c.varint(u64::MAX)?;
        let hlc = Hlc::new(c.varint(u64::MAX)?, c.varint(u64::from(u32::MAX))? as u32);
        let index = c.varint(u64::from(u32::MAX))?;
        let kind = *Kind::ALL.get(index as usize).ok_or_else(|| unknown_kind(index))?;
        let len = c.varint(u64::MAX)?;
        let payload_at = c.pos;
        let end = usize::try_from(len).ok().and_then(|l| payload_at.checked_add(l)).ok_or(CodecError::Truncated)?;
        if end > input.len() {
            return Err(if input.len() == codec::MAX_VALUE_BYTES {
                CodecError::LimitExceeded { limit: codec::MAX_VALUE_BYTES }
            } else {
                CodecError::Truncated
            });
        }
        let bytes = bytes.slice(at..at + end);
        Ok((EntryBytes { origin, seq, hlc, kind, payload_at, bytes }, end))
    }

    /// The sequence number of the entry whose encoding `stored` is, read without the rest:
    /// a sender checks no more than that its entries follow one another.
    pub fn peek_seq(stored: &[u8]) -> Result<u64, CodecError> {
        let (len, used) = codec::varint(stored, MAX_NODE_ID_LEN as u64)?;
        let rest = stored.get(used + len as usize..).ok_or(CodecError::Truncated)?;
        Ok(codec::varint(rest, u64::MAX)?.0)
    }

    pub fn origin(&self) -> &NodeId {
        &self.origin
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn hlc(&self) -> Hlc {
        self.hlc
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_at..]
    }

    /// The whole encoding, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entry, its payload copied out.
    pub fn to_entry(&self) -> Entry {
        Entry {
            origin: self.origin.clone(),
            seq: self.seq,
            hlc: self.hlc,
            kind: self.kind,
            payload: self.payload().to_vec(),
        }
    }
}

/// Reads the codec's integers one after another.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    #[inline(always)]
    fn varint(&mut self, max: u64) -> Result<u64, CodecError> {
        let (v, used) = codec::varint(&self.input[self.pos..], max)?;
        self.pos += used;
        Ok(v)
    }
}

#[cold]
fn new_origin(name: &[u8]) -> Result<NodeId, CodecError> {
    let name = std::str::from_utf8(name).map_err(|e| CodecError::Malformed(e.to_string()))?;
    NodeId::new(name).map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cold]
fn unknown_kind(index: u64) -> CodecError {
    CodecError::Malformed(format!("kind {index}: there are {}", Kind::ALL.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(origin: &str, seq: u64, payload: Vec<u8>) -> Entry {
        Entry {
            origin: NodeId::new(origin).unwrap(),
            seq,
            hlc: Hlc::new(1_764_000_000_000 + seq, 3),
            kind: Kind::Audit,
            payload,
        }
    }

    #[test]
    fn entries_back_to_back_are_read_one_by_one_sharing_their_origin() {
        let a = entry("town-a", 1, vec![1; 300]);
        let b = entry("town-a", 2, vec![]);
        let c = entry("town-b", 9, vec![7; 3]);
        let all: Vec<u8> = [&a, &b, &c].iter().flat_map(|e| codec::encode(e).unwrap()).collect();
        let all = Bytes::from(all);
        let (x, n) = EntryBytes::read_from(&all, 0, None).unwrap();
        let (y, m) = EntryBytes::read_from(&all, n, Some(x.origin())).unwrap();
        let (z, k) = EntryBytes::read_from(&all, n + m, Some(y.origin())).unwrap();
        assert_eq!(n + m + k, all.len());
        assert_eq!([x.to_entry(), y.to_entry(), z.to_entry()], [a.clone(), b, c]);
        assert_eq!(x.as_bytes(), codec::encode(&a).unwrap());
        assert_eq!(x.payload(), &a.payload[..]);
        assert_eq!(z.origin().as_str(), "town-b");
        assert_eq!(EntryBytes::peek_seq(z.as_bytes()).unwrap(), 9);
    }

    #[test]
    fn kinds_are_read_by_their_position() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(codec::encode(&kind).unwrap(), [i as u8], "Kind::ALL must list the kinds in declaration order");
        }
    }

    #[test]
    fn a_malformed_origin_or_kind_is_refused() {
        let mut bad_origin = codec::encode(&entry("town-a", 1, vec![])).unwrap();
        bad_origin[1] = b'A';
        assert!(matches!(EntryBytes::decode(bad_origin.into()), Err(CodecError::Malformed(_))));
        let mut bad_kind = codec::encode(&entry("town-a", 1, vec![])).unwrap();
        let at = bad_kind.len() - 2;
        bad_kind[at] = 200;
        assert!(EntryBytes::decode(bad_kind.into()).is_err());
    }

    proptest! {
        #[test]
        fn bytes_read_back_as_the_entry_they_encode(
            origin in "[a-z0-9-]{1,64}", seq: u64, wall: u64, logical: u32,
            kind in proptest::sample::select(Kind::ALL.to_vec()),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let e = Entry { origin: NodeId::new(origin).unwrap(), seq, hlc: Hlc::new(wall, logical), kind, payload };
            let b = EntryBytes::encode(&e).unwrap();
            prop_assert_eq!(b.to_entry(), e.clone());
            prop_assert_eq!(b.as_bytes(), &codec::encode(&e).unwrap()[..]);
            let whole = codec::encode(&e).unwrap();
            for cut in 0..whole.len() {
                prop_assert!(EntryBytes::decode(Bytes::copy_from_slice(&whole[..cut])).is_err());
            }
        }

        /// The hand-written reader and the codec agree on every encoding an entry's can be
        /// turned into by one changed byte: both refuse it, or both read the same entry.
        #[test]
        fn the_header_reader_agrees_with_the_codec(
            origin in "[a-z0-9-]{1,8}", seq: u64, wall: u64, logical: u32,
            kind in proptest::sample::select(Kind::ALL.to_vec()),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            at: proptest::sample::Index, value: u8,
        ) {
            let e = Entry { origin: NodeId::new(origin).unwrap(), seq, hlc: Hlc::new(wall, logical), kind, payload };
            let mut bytes = codec::encode(&e).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = value;
            let ours = EntryBytes::decode(Bytes::from(bytes.clone())).map(|b| b.to_entry()).ok();
            prop_assert_eq!(ours, codec::decode::<Entry>(&bytes).ok());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let bytes = Bytes::from(bytes);
            if let Ok(b) = EntryBytes::decode(bytes.clone()) {
                // Whatever reads as an entry is one.
                prop_assert_eq!(codec::decode::<Entry>(&bytes).unwrap(), b.to_entry());
            }
        }
    }
}
